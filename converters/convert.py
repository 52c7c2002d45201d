"""`cmlite convert`: one folder per target and precision, each with its graphs and manifest.json.

The targets and what each converts to are rows of runtimes/target_table.py; each row names its exporter
(converters/<exporter>.py, whose build() writes the folder's graphs). Every folder is built in a staging folder
and renamed into place only when all of them are complete (converters/folders.py), so a failed or interrupted
conversion leaves the output folder as it was, byte for byte.
"""
from __future__ import annotations

import datetime as _dt
import importlib
from dataclasses import dataclass
from pathlib import Path

from cmlite.lite.model import CenterMaskLite
from cmlite.runtimes.config import PipelineConfig
from cmlite.runtimes.errors import CmliteError
from cmlite.runtimes.manifest import SCHEMA, GraphSpec, Manifest, sha256
from cmlite.runtimes.target_table import convert_precisions, describe
from cmlite.runtimes.target_table import folder_name
from cmlite.runtimes.target_table import get as target_row
from cmlite.runtimes.versions import package_versions

from .folders import command_line, model_folders
from .fp32_graphs import Fp32Graphs, default_fixed_hw, input_hw  # noqa: F401  (default_fixed_hw: part of the API)


@dataclass(frozen=True)
class Job:
    target: str
    precision: str

    @property
    def name(self) -> str:
        return folder_name(self.target, self.precision)


def plan(targets: list[str], precisions: list[str]) -> list[Job]:
    known = convert_precisions()
    for p in precisions:
        if p == "int8":
            raise CmliteError("int8 needs calibration data: `cmlite quantize --calib IMAGES --targets ...`, not "
                              "`convert`")
        if p not in known:
            raise CmliteError(f"unknown precision {p!r}; choose from {', '.join(sorted(known))} (int8: cmlite "
                              f"quantize)")
    jobs = []
    for t in targets:
        row = target_row(t)
        jobs += [Job(t, p) for p in precisions if p in row.precisions]  # e.g. bf16 is an OpenVINO-only precision
    if not jobs:
        raise CmliteError(f"nothing to convert: {', '.join(precisions)} is not available for "
                          f"{', '.join(targets)} (available: {describe()})")
    return jobs


def target_hw(target: str, cfg: PipelineConfig, fixed_hw) -> tuple[int, int] | None:
    """The graph input a `target` folder gets: --input-size, else dynamic; a fixed-input target always has one."""
    return input_hw(target_row(target), cfg, fixed_hw)


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
    if model.variant.maskiou and not target_row(m.target).drops_maskiou_at_load and "masks_noiou" not in m.graphs:
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
    return add_target_section(m)


def add_target_section(m: Manifest) -> Manifest:
    """The section a target with rules of its own writes under its name (`tensorrt`: TensorRT's profiles), made
    from the rest of the manifest."""
    rules = target_row(m.target).rules
    if rules:
        setattr(m, m.target, importlib.import_module(f"cmlite.converters.{rules}").section(m))
    return m


def convert(model: CenterMaskLite, out_dir: str | Path, targets: list[str], precisions: list[str],
            fixed_hw: tuple[int, int] | None = None, source: Path | None = None, mask_batch: int = 10,
            log=print, overwrite: bool = False) -> list[Path]:
    """Convert `model` for every target x precision; returns the written folders. Existing folders of the same
    names are refused unless overwrite (then each replacement is logged)."""
    from . import spawn_helper_processes

    spawn_helper_processes()
    jobs = plan(targets, precisions)
    provenance = {"source_checkpoint": source.name if source else None,
                  "source_sha256": sha256(source) if source else None,
                  "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                  "command": command_line(), "tools": package_versions(*CONVERT_TOOLS)}
    with model_folders(out_dir, [j.name for j in jobs], "convert", overwrite, log) as folders:
        fp32 = Fp32Graphs(model, folders.work, fixed_hw, mask_batch, log)
        for i, job in enumerate(jobs, 1):
            log(f"[{i}/{len(jobs)}] {job.name}")
            folder = folders.new(job.name)
            row = target_row(job.target)
            graphs = importlib.import_module(f"cmlite.converters.{row.exporter}").build(fp32, job.precision, folder,
                                                                                        row)
            _manifest(model, job, model.config, graphs, fp32.input_hw(row), provenance).write(folder)
            folders.stage(folder)
    return folders.written

