"""`cmlite convert`: one folder per target and precision, each with its graphs and manifest.json.

Every folder is built under a hidden temporary folder and renamed into place only when all of them are
complete, so a failed or interrupted conversion leaves the output folder as it was, byte for byte.
"""
from __future__ import annotations

import datetime as _dt
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from cmlite.lite.model import CenterMaskLite
from cmlite.runtimes.config import PipelineConfig
from cmlite.runtimes.errors import CmliteError
from cmlite.runtimes.manifest import SCHEMA, GraphSpec, Manifest, sha256
from cmlite.runtimes.versions import package_versions

from .folders import check_dir_path, output_dir, refuse_to_replace, staging_dir

# target -> precisions it can be converted to here
SUPPORTED = {"onnx": ("fp32", "fp16"), "openvino": ("fp32", "fp16", "bf16"), "tflite": ("fp32", "fp16"),
             "tensorrt": ("fp32", "fp16")}


@dataclass(frozen=True)
class Job:
    target: str
    precision: str

    @property
    def name(self) -> str:
        return f"{self.target}-{self.precision}"


def _available() -> str:
    """'onnx fp32/fp16, openvino fp32/fp16/bf16, ...' for error lines."""
    return ", ".join(f"{t} {'/'.join(p)}" for t, p in SUPPORTED.items())


def plan(targets: list[str], precisions: list[str]) -> list[Job]:
    known = {p for ps in SUPPORTED.values() for p in ps}
    for p in precisions:
        if p == "int8":
            raise CmliteError("int8 needs calibration data: `cmlite quantize --calib IMAGES --targets ...`, not "
                              "`convert`")
        if p not in known:
            raise CmliteError(f"unknown precision {p!r}; choose from {', '.join(sorted(known))} (int8: cmlite "
                              f"quantize)")
    jobs = []
    for t in targets:
        if t not in SUPPORTED:
            raise CmliteError(f"unknown target {t!r}; choose from {', '.join(SUPPORTED)}")
        jobs += [Job(t, p) for p in precisions if p in SUPPORTED[t]]  # e.g. bf16 is an OpenVINO-only precision
    if not jobs:
        raise CmliteError(f"nothing to convert: {', '.join(precisions)} is not available for "
                          f"{', '.join(targets)} (available: {_available()})")
    return jobs


def default_fixed_hw(cfg: PipelineConfig) -> tuple[int, int]:
    """Fixed-shape targets default to a 4:3 landscape frame at the test size, padded."""
    d = cfg.size_divisibility
    short = cfg.min_size
    long = min(int(short * 4 / 3 + 0.5), cfg.max_size)
    return -(-short // d) * d, -(-long // d) * d


def target_hw(target: str, cfg: PipelineConfig, fixed_hw) -> tuple[int, int] | None:
    """The graph input a `target` folder gets: --input-size, else dynamic; TFLite always has one (the default
    frame when none was asked)."""
    return fixed_hw or (default_fixed_hw(cfg) if target == "tflite" else None)


CONVERT_TOOLS = ("cmlite", "torch", "onnx", "onnxslim", "onnxruntime", "openvino", "litert-torch", "ai-edge-litert",
                 "numpy")


def up_to_date(folder: Path, model: CenterMaskLite, source: Path | None, fixed_hw) -> str | None:
    """Why `folder` is not what converting `model` (from the checkpoint `source`) at `fixed_hw` would write now, or
    None when it is: the same checkpoint (sha256), test size and settings, graphs (graph 2 without the MaskIoU head
    included), the same cmlite and converter versions, every file intact."""
    from cmlite.runtimes.manifest import read_manifest

    try:
        m = read_manifest(folder)
        m.verify_files(folder)
    except CmliteError as e:
        return str(e)
    p = m.provenance or {}
    if source is None or p.get("source_sha256") != sha256(source):
        return "another checkpoint"
    if m.fixed_hw != (tuple(fixed_hw) if fixed_hw else None):
        return f"input {m.fixed_hw or 'dynamic'}, not {tuple(fixed_hw) if fixed_hw else 'dynamic'}"
    if m.pipeline != model.config:
        return "other test settings"
    if model.variant.maskiou and m.target != "openvino" and "masks_noiou" not in m.graphs:
        return "made before graph 2 without the MaskIoU head"
    tools = package_versions(*CONVERT_TOOLS)
    if (p.get("tools") or {}) != tools:
        return "made with other tool versions"
    return None


def _manifest(model: CenterMaskLite, job: Job, cfg: PipelineConfig, graphs: dict[str, GraphSpec],
              fixed_hw, provenance: dict) -> Manifest:
    model_info = {"variant": model.variant.name, "num_classes": model.variant.num_classes,
                  "class_names": list(model.class_names), "category_ids": list(model.category_ids),
                  "maskiou": model.variant.maskiou}
    input_info = {"colour": "BGR", "layout": "NCHW", "dtype": "float32", "value_range": [0, 255],
                  "mean": list(cfg.pixel_mean), "std": list(cfg.pixel_std), "normalization": "inside graph 1",
                  "pad": "mean (the normalised zero)", "resize": "shortest edge, PIL bilinear (antialiased)",
                  "min_size": cfg.min_size, "max_size": cfg.max_size, "size_divisibility": cfg.size_divisibility,
                  "fixed_hw": list(fixed_hw) if fixed_hw else None,
                  "fit": "images whose resize exceeds fixed_hw are scaled down to fit, aspect kept" if fixed_hw
                         else None}
    m = Manifest(target=job.target, precision=job.precision, model=model_info, input=input_info, pipeline=cfg,
                 graphs=graphs, provenance=provenance, schema=SCHEMA)
    if job.target == "tensorrt":
        from . import tensorrt_export

        m.tensorrt = tensorrt_export.section(m)
    return m


def _graph_spec(folder: Path, file: str, io, batch: int | None = None) -> GraphSpec:
    path = folder / file
    inputs, outputs = io(path)
    return GraphSpec(file=file, sha256=sha256(path), bytes=path.stat().st_size, inputs=inputs, outputs=outputs,
                     batch=batch)


def convert(model: CenterMaskLite, out_dir: str | Path, targets: list[str], precisions: list[str],
            fixed_hw: tuple[int, int] | None = None, source: Path | None = None, mask_batch: int = 10,
            log=print, overwrite: bool = False) -> list[Path]:
    """Convert `model` for every target x precision; returns the written folders. Existing folders of the same
    names are refused unless overwrite (then each replacement is logged)."""
    from . import spawn_helper_processes

    spawn_helper_processes()
    jobs = plan(targets, precisions)
    out_dir = check_dir_path(out_dir)
    replaced = refuse_to_replace(out_dir, [j.name for j in jobs], overwrite, "convert")
    cfg = model.config
    provenance = {"source_checkpoint": source.name if source else None,
                  "source_sha256": sha256(source) if source else None,
                  "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                  "command": " ".join(["cmlite", *sys.argv[1:]]) if sys.argv[0].endswith("cmlite") else None,
                  "tools": package_versions(*CONVERT_TOOLS)}
    written = []
    with output_dir(out_dir), staging_dir(out_dir, "convert", log) as work:
        work = Path(work)
        exported: dict[str, Path] = {}
        tflite_files: dict[tuple[int, int], dict[str, Path]] = {}

        def onnx_fp32(kind: str) -> Path:
            if kind not in exported:
                from . import onnx_export

                log(f"  exporting graph {1 if kind == 'dense' else 2} ({kind}) to ONNX ...")
                path = work / f"{kind}.onnx"
                (onnx_export.export_dense(model, path, fixed_hw) if kind == "dense"
                 else onnx_export.export_masks(model, path))
                exported[kind] = path
            return exported[kind]

        staged = []
        for i, job in enumerate(jobs, 1):
            log(f"[{i}/{len(jobs)}] {job.name}")
            final = out_dir / job.name
            partial = work / job.name
            partial.mkdir()
            hw = target_hw(job.target, cfg, fixed_hw)
            if job.target in ("onnx", "tensorrt"):
                graphs = _build_onnx(job, partial, onnx_fp32, model.variant.maskiou)
            elif job.target == "openvino":
                graphs = _build_openvino(job, partial, onnx_fp32)
            else:
                from . import tflite_export

                if hw not in tflite_files:
                    tflite_files[hw] = tflite_export.convert_fp32(model, work, hw, mask_batch, log)
                graphs = tflite_export.build(job.precision, partial, tflite_files[hw], mask_batch)
            _manifest(model, job, cfg, graphs, hw, provenance).write(partial)
            staged.append((partial, final))
        for partial, final in staged:  # only when every folder is complete: a failure changes nothing
            if final.exists():
                final.rename(work / f"{final.name}.old")
            partial.rename(final)
            written.append(final)
            log(f"  -> {final}" + (" (replaced the folder that was there)" if final in replaced else ""))
    return written


def _build_onnx(job: Job, folder: Path, onnx_fp32, maskiou: bool) -> dict[str, GraphSpec]:
    from . import onnx_export

    graphs = {}
    for kind in ("dense", "masks"):
        dst = folder / f"{kind}.onnx"
        if job.precision == "fp32":
            shutil.copyfile(onnx_fp32(kind), dst)
        else:
            onnx_export.to_fp16(onnx_fp32(kind), dst)
        graphs[kind] = finish_onnx_graph(folder, dst, job.target)
    if maskiou:  # ONNX Runtime cannot skip the MaskIoU head at load: graph 2 without it, beside
        graphs["masks_noiou"] = finish_onnx_graph(folder, onnx_export.masks_only(folder / "masks.onnx",
                                                                                  folder / "masks_noiou.onnx"),
                                                  job.target)
    return graphs


def finish_onnx_graph(folder: Path, path: Path, target: str) -> GraphSpec:
    """A written ONNX graph's manifest entry; TensorRT's are checked against its parser first (and rewritten)."""
    from . import onnx_export

    if target == "tensorrt":
        from . import tensorrt_export

        tensorrt_export.write(path, path)
    return _graph_spec(folder, path.name, onnx_export.io_spec)


def _build_openvino(job: Job, folder: Path, onnx_fp32) -> dict[str, GraphSpec]:
    from . import openvino_export

    graphs = {}
    for kind in ("dense", "masks"):
        xml = folder / f"{kind}.xml"
        openvino_export.onnx_to_ir(onnx_fp32(kind), xml, fp16_weights=job.precision == "fp16")
        graphs[kind] = _graph_spec(folder, xml.name, openvino_export.io_spec)
        graphs[kind].aux_files = {xml.with_suffix(".bin").name: sha256(xml.with_suffix(".bin"))}
    return graphs
