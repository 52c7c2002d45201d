"""The manifest: the one contract between converters and runtimes (manifest.json beside the graph files).

A runtime reads only this file and the graph files it lists. Schema (version 1):

    schema        "cmlite.manifest/1"
    target        a row of runtimes/target_table.py: "onnx" (ONNX Runtime) | "openvino" | "tflite" (LiteRT) | "tensorrt"
    precision     "fp32" | "fp16" | "bf16" | "int8"
    model         variant, num_classes, class_names, category_ids, maskiou
    input         colour "BGR", layout "NCHW", dtype, mean/std (applied inside graph 1), pad "mean",
                  resize "pil_bilinear_shortest_edge", min_size, max_size, size_divisibility,
                  fixed_hw [H, W] or null (dynamic)
    pipeline      PipelineConfig (thresholds, strides, pooler settings)
    graphs        dense / masks (/ masks_noiou: graph 2 without the MaskIoU head, where the model has one and
                  the target cannot drop it at load; OpenVINO can): file, sha256, bytes, inputs [{name, shape, dtype}],
                  outputs [{name, shape, layout}], batch (fixed RoI count for masks, or null),
                  aux_files {name: sha256} (e.g. an IR's .bin)
    provenance    source checkpoint name and sha256, tool versions, date, command
    tensorrt      (target tensorrt only) min_version, typing, graph_precision, profiles {graph: {input: {min,
                  opt, max}}}, engines (null until `cmlite build-engine` ran on the device: then files {graph:
                  {file, sha256, bytes}}, tensorrt_version, device {gpu, compute_capability, jetson_model},
                  settings {workspace_mb, dla_core, timing_cache}, layer_precisions {graph: {type: count}})
    quantization  (int8 only) calibration source, frame count and hash of the frame list, method, the plan
                  (module names kept float, how it was chosen), per-backend settings, and FP32/INT8 mask and
                  box AP when a validation set was given
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from . import target_table
from .config import PipelineConfig
from .errors import CmliteError

SCHEMA = "cmlite.manifest/1"
MANIFEST = "manifest.json"
TARGETS = target_table.NAMES  # runtimes/target_table.py: one row per target
PRECISIONS = target_table.PRECISIONS
GRAPHS = ("dense", "masks", "masks_noiou")  # masks_noiou: graph 2 without the MaskIoU head (models with one)
GRAPH_KINDS = ("dense", "masks")  # graph 1 and graph 2 (which masks_noiou stands in for when the head is skipped)


def graph_kind(name: str) -> str:
    """The graph a manifest entry serves: "dense" (graph 1) or "masks" (graph 2; masks_noiou stands in for it)."""
    return name.split("_")[0]


GRAPH_SUFFIXES = {".onnx", ".xml", ".bin", ".tflite", ".engine", ".plan", ".pth", ".pt"}


class ManifestError(CmliteError):
    pass


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class GraphSpec:
    file: str
    sha256: str
    inputs: list[dict]
    outputs: list[dict]
    bytes: int = 0
    batch: int | None = None  # masks graph: fixed RoI count (padded/chunked by the runtime), None = dynamic
    aux_files: dict[str, str] = field(default_factory=dict)  # other files the graph needs -> sha256 (IR .bin)

    def output_names(self) -> list[str]:
        return [o["name"] for o in self.outputs]


@dataclass
class Manifest:
    target: str
    precision: str
    model: dict
    input: dict
    pipeline: PipelineConfig
    graphs: dict[str, GraphSpec]
    provenance: dict
    schema: str = SCHEMA
    quantization: dict | None = None
    tensorrt: dict | None = None

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.model["class_names"])

    @property
    def fixed_hw(self) -> tuple[int, int] | None:
        hw = self.input.get("fixed_hw")
        return tuple(hw) if hw else None

    def to_dict(self) -> dict:
        return {"schema": self.schema, "target": self.target, "precision": self.precision, "model": self.model,
                "input": self.input, "pipeline": self.pipeline.to_dict(),
                "graphs": {k: vars(g) for k, g in self.graphs.items()},
                "provenance": self.provenance, **({"quantization": self.quantization} if self.quantization else {}),
                **({"tensorrt": self.tensorrt} if self.tensorrt else {})}

    def write(self, folder: Path) -> Path:
        """Written beside under another name and renamed: a manifest is never half-written."""
        path = Path(folder) / MANIFEST
        tmp = path.with_name(f".{MANIFEST}.partial")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        tmp.replace(path)
        return path

    @property
    def engines(self) -> dict | None:
        """TensorRT engines built on the device (`cmlite build-engine`), or None."""
        return (self.tensorrt or {}).get("engines")

    def size_bytes(self, folder: Path) -> int:
        """Bytes on disk of every file the graphs need (an IR's weights are its .bin, not the .xml)."""
        engines = [e["file"] for e in ((self.engines or {}).get("files") or {}).values()]
        return sum((Path(folder) / f).stat().st_size
                   for f in [*(f for g in self.graphs.values() for f in (g.file, *g.aux_files)), *engines])

    def remake_hint(self, folder: Path) -> str:
        return remake_hint(self.to_dict(), folder)

    def verify_files(self, folder: Path, engines: bool = True, graphs: tuple[str, ...] = GRAPH_KINDS) -> None:
        """Every graph file (and TensorRT engine, when built) is present and has the recorded hash; graphs: only
        those of graph 1 ("dense") or graph 2 ("masks", with masks_noiou), for a folder that serves one of them."""
        for name, g in self.graphs.items():
            if graph_kind(name) not in graphs:
                continue
            for file, digest in {g.file: g.sha256, **g.aux_files}.items():
                path = Path(folder) / file
                if not path.is_file():
                    raise ManifestError(f"{folder}: {file} (graph {name}) is missing; {self.remake_hint(folder)}")
                if sha256(path) != digest:
                    raise ManifestError(f"{path}: sha256 differs from the manifest (file damaged or replaced); "
                                        f"{self.remake_hint(folder)}")
        for name, e in ((self.engines or {}).get("files") or {}).items() if engines else ():
            if graph_kind(name) not in graphs:
                continue
            path = Path(folder) / e["file"]
            if not path.is_file() or sha256(path) != e["sha256"]:
                raise ManifestError(f"{path}: engine {'missing' if not path.is_file() else 'damaged or replaced'} "
                                    f"(sha256 differs from the manifest); build it again: cmlite build-engine {folder}")


def remake_hint(d: dict, folder: Path) -> str:
    """How to make a model folder again, from what its manifest (`d`, read as far as it could be) says: the command
    that made it where recorded (`cmlite quantize ...`, or `cmlite demo ...`, which made both kinds), else the one
    that would: an INT8 folder is quantized, the others converted."""
    d = d if isinstance(d, dict) else {}
    recorded = (d.get("provenance") if isinstance(d.get("provenance"), dict) else {}).get("command")
    target, precision = d.get("target", "TARGET"), d.get("precision")
    out = Path(folder).parent
    if precision == "int8":
        cmd = recorded if recorded and " convert " not in f"{recorded} " else \
            f"cmlite quantize --calib IMAGES --targets {target} --out {out}"
        return f"quantize it again: {cmd}"
    cmd = recorded if recorded and " quantize " not in f"{recorded} " else \
        f"cmlite convert --targets {target} --precision {precision or 'fp32'} --out {out}"
    return f"convert it again: {cmd}"


def _check_inside(path: Path, d: dict) -> None:
    """Every file a manifest names (graphs, their aux files, TensorRT engines) is a plain name inside its folder:
    '../x.onnx', '/etc/x', 'C:\\x' or a link out of the folder is refused before anything is read."""
    names = [(f"graph {k}", g.get("file")) for k, g in d.get("graphs", {}).items()]
    names += [(f"graph {k}", a) for k, g in d.get("graphs", {}).items() for a in (g.get("aux_files") or {})]
    names += [(f"engine {k}", e.get("file")) for k, e in
              ((((d.get("tensorrt") or {}).get("engines") or {}).get("files")) or {}).items()]
    folder = path.parent.resolve()
    for what, name in names:
        if not isinstance(name, str) or not name:
            raise ManifestError(f"{path}: {what} has no file name; convert the model again")
        p = Path(name)
        bad = p.is_absolute() or p.drive or ".." in p.parts or "\\" in name or \
            not (folder / p).resolve().is_relative_to(folder)
        if bad:
            raise ManifestError(f"{path}: {what} names {name!r}, outside the model's folder: a manifest names only "
                                f"files inside its own folder; restore manifest.json or convert the model again")


def _check_classes(path: Path, model: dict, graphs: dict[str, GraphSpec]) -> None:
    """class_names, category_ids, num_classes and the graphs' class dimension must agree."""
    counts = {"num_classes": model["num_classes"], "class_names": len(model["class_names"]),
              "category_ids": len(model["category_ids"])}
    onehot = next((i for i in graphs["masks"].inputs if i.get("name") == "classes_onehot"), None)
    if onehot and isinstance(onehot.get("shape", [None])[-1], int):
        counts["the mask graph's classes_onehot"] = onehot["shape"][-1]
    logits = next((o for o in graphs["dense"].outputs if o.get("name") == "logits_0"), None)
    if logits and len(logits.get("shape", [])) > 1 and isinstance(logits["shape"][1], int):
        counts["graph 1's logits"] = logits["shape"][1]
    if len(set(counts.values())) > 1:
        raise ManifestError(f"{path}: the class counts disagree ({', '.join(f'{k} {v}' for k, v in counts.items())}):"
                            f" class_names and category_ids need one entry per class the graphs were made for; "
                            f"restore the file or convert the model again")


def read_manifest(folder: str | Path) -> Manifest:
    folder = Path(folder)
    path = folder / MANIFEST if folder.is_dir() else folder
    if path.is_file() and path.name != MANIFEST and path.suffix.lower() in GRAPH_SUFFIXES:
        where = (f"{path.parent}" if (path.parent / MANIFEST).is_file() else
                 "the folder `cmlite convert` wrote, e.g. out/onnx-fp32")
        raise ManifestError(f"{path} is a graph file; a model is its folder with {MANIFEST} (the graphs' "
                            f"preprocessing, classes and hashes): give {where}")
    if not path.is_file():
        hint = " (a folder written by `cmlite convert`, e.g. out/onnx-fp32)"
        raise ManifestError(f"no {MANIFEST} in {folder}{hint}" if folder.is_dir() else f"not found: {folder}{hint}")
    try:
        d = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ManifestError(f"{path} is not valid JSON ({e}); convert the model again") from None
    return parse_manifest(d, path)


def parse_manifest(d, path: Path) -> Manifest:
    """A manifest's JSON (read from `path`, or a server's copy named by it) checked and read."""
    if not isinstance(d, dict) or d.get("schema") != SCHEMA:
        raise ManifestError(f"{path}: unknown manifest schema {d.get('schema') if isinstance(d, dict) else None!r}"
                            f" (this cmlite reads {SCHEMA}); convert the model again with this version")
    try:
        if d["target"] not in TARGETS or d["precision"] not in PRECISIONS:
            raise ManifestError(f"{path}: unknown target/precision {d['target']}/{d['precision']} (this cmlite runs "
                                f"{', '.join(TARGETS)} in {', '.join(PRECISIONS)}); convert the model again with "
                                f"`cmlite convert --targets ...` or upgrade cmlite")
        _check_inside(path, d)
        graphs = {k: GraphSpec(**g) for k, g in d["graphs"].items()}
        if not {"dense", "masks"} <= set(graphs) <= set(GRAPHS):
            raise ManifestError(f"{path}: expected graphs 'dense' and 'masks' (and 'masks_noiou'), found "
                                f"{sorted(graphs)}")
        _check_classes(path, d["model"], graphs)
        return Manifest(target=d["target"], precision=d["precision"], model=d["model"], input=d["input"],
                        pipeline=PipelineConfig.from_dict(d["pipeline"]), graphs=graphs,
                        provenance=d.get("provenance", {}), schema=d["schema"], quantization=d.get("quantization"),
                        tensorrt=d.get("tensorrt"))
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        what = f"no {e.args[0]!r} entry" if isinstance(e, KeyError) else f"{type(e).__name__}: {e}"
        raise ManifestError(f"{path} is incomplete or malformed ({what}); {remake_hint(d, path.parent)}") from None
