"""`runtimes.load(folder)`: a converted model -> a Segmenter on its backend (imported only when used)."""
from __future__ import annotations

import importlib
from pathlib import Path

from .host_setup import prepare_process
from .errors import CmliteError
from .manifest import read_manifest
from .pipeline import Segmenter

# target -> (module, class); one file per backend
BACKENDS = {
    "onnx": ("cmlite.runtimes.ort_backend", "OrtSegmenter"),
    "openvino": ("cmlite.runtimes.openvino_backend", "OpenVinoSegmenter"),
    "tflite": ("cmlite.runtimes.litert_backend", "LiteRtSegmenter"),
    "tensorrt": ("cmlite.runtimes.tensorrt_backend", "TensorRtSegmenter"),
}


def load(path: str | Path, threads: int | None = None, verify: bool = True, backend: str | None = None,
         maskiou: bool = True, **overrides) -> Segmenter:
    """Open a folder written by `cmlite convert` or `cmlite quantize`. overrides: PipelineConfig fields.

    backend="onnx" runs a TensorRT folder's ONNX graphs in ONNX Runtime (its reference off the device).
    maskiou=False runs graph 2 without the MaskIoU head (mask score = score, as models without the head): the head
    only ranks masks (COCO results, AP), and skipping it saves a third of graph 2."""
    folder = Path(path)
    manifest = read_manifest(folder)
    folder = folder if folder.is_dir() else folder.parent
    if verify:
        manifest.verify_files(folder)
    backend = backend or manifest.target
    if backend != manifest.target and not (backend == "onnx" and all(
            g.file.endswith(".onnx") for g in manifest.graphs.values())):
        raise CmliteError(f"{folder}: a {manifest.target} model cannot run on {backend}; convert it for {backend}"
                          + (" (--backend onnx runs only the ONNX graphs of onnx and tensorrt folders)"
                             if backend == "onnx" else ""))
    if backend not in BACKENDS:
        raise CmliteError(f"{folder}: no runtime for target {backend!r}")
    module, cls = BACKENDS[backend]
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name != module:
            raise
        alt = (" or run its ONNX graphs in ONNX Runtime: --backend onnx, or runtimes.load(folder, backend='onnx')"
               if all(
            g.file.endswith(".onnx") for g in manifest.graphs.values()) else "")
        raise CmliteError(f"{folder}: this cmlite has no {backend} runtime (no {module}); upgrade cmlite{alt}") \
            from None
    prepare_process()
    return getattr(mod, cls)(manifest, folder, threads, maskiou, **overrides)
