"""`runtimes.load(folder)`: a converted model -> a Segmenter on its backend (imported only when used)."""
from __future__ import annotations

import importlib
from pathlib import Path

from .errors import CmliteError
from .manifest import read_manifest
from .pipeline import Segmenter

# target -> (module, class); one file per backend
BACKENDS = {
    "onnx": ("runtimes.ort_backend", "OrtSegmenter"),
    "openvino": ("runtimes.openvino_backend", "OpenVinoSegmenter"),
    "tflite": ("runtimes.litert_backend", "LiteRtSegmenter"),
    "tensorrt": ("runtimes.tensorrt_backend", "TensorRtSegmenter"),
}


def load(path: str | Path, threads: int | None = None, verify: bool = True, **overrides) -> Segmenter:
    """Open a folder written by `cmlite convert`. overrides: PipelineConfig fields (score_thresh=...)."""
    folder = Path(path)
    manifest = read_manifest(folder)
    folder = folder if folder.is_dir() else folder.parent
    if verify:
        manifest.verify_files(folder)
    if manifest.target not in BACKENDS:
        raise CmliteError(f"{folder}: no runtime for target {manifest.target!r}")
    module, cls = BACKENDS[manifest.target]
    return getattr(importlib.import_module(module), cls)(manifest, folder, threads, **overrides)
