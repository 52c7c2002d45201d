"""`runtimes.load(folder)`: a converted model -> a Segmenter on its backend (imported only when used)."""
from __future__ import annotations

import importlib
from pathlib import Path

from . import target_table
from .errors import CmliteError
from .host_setup import prepare_process
from .manifest import GRAPH_KINDS, read_manifest
from .pipeline import Segmenter

TRITON_SCHEME = "triton://"  # a model on a Triton server (runtimes/triton_backend.py)


def load(path: str | Path, threads: int | None = None, verify: bool = True, backend: str | None = None,
         maskiou: bool = True, graphs: tuple[str, ...] = GRAPH_KINDS, **overrides) -> Segmenter:
    """Open a folder written by `cmlite convert` or `cmlite quantize`, or a model on a Triton server
    (`triton://HOST:PORT/NAME`: its graphs run there, the host work here). overrides: PipelineConfig fields.

    backend="onnx" runs a TensorRT folder's ONNX graphs in ONNX Runtime (its reference off the device).
    maskiou=False runs graph 2 without the MaskIoU head (mask score = score, as models without the head): the head
    only ranks masks (COCO results, AP), and skipping it saves a third of graph 2. graphs: open only graph 1
    ("dense") or graph 2 ("masks")."""
    if str(path).startswith(TRITON_SCHEME):
        if backend:
            raise CmliteError(f"--backend {backend} chooses the runtime of a model folder; {path} runs on its server")
        from .triton_backend import TritonSegmenter

        return TritonSegmenter(str(path), maskiou=maskiou, **overrides)
    folder = Path(path)
    manifest = read_manifest(folder)
    folder = folder if folder.is_dir() else folder.parent
    if verify:
        manifest.verify_files(folder, graphs=graphs)
    row = target_table.get(backend or manifest.target, "backend")
    onnx_only = all(g.file.endswith(".onnx") for g in manifest.graphs.values())
    if row.name != manifest.target and not (row.runs_onnx_graphs and onnx_only):
        ran = " and ".join(t.name for t in target_table.TARGETS.values() if t.onnx_graphs)
        raise CmliteError(f"{folder}: a {manifest.target} model cannot run on {row.name}; convert it for {row.name}"
                          + (f" (--backend {row.name} runs only the ONNX graphs of {ran} folders)"
                             if row.runs_onnx_graphs else ""))
    module = f"cmlite.runtimes.{row.backend}"
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name != module:
            raise
        alt = (" or run its ONNX graphs in ONNX Runtime: --backend onnx, or runtimes.load(folder, backend='onnx')"
               if onnx_only else "")
        raise CmliteError(f"{folder}: this cmlite has no {row.name} runtime (no {module}); upgrade cmlite{alt}") \
            from None
    prepare_process()
    return getattr(mod, row.segmenter)(manifest, folder, threads, maskiou, graphs=graphs, **overrides)
