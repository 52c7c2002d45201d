"""What every converted-model backend shares: reading the manifest into the Segmenter's settings."""
from __future__ import annotations

import importlib
from pathlib import Path

from .errors import CmliteError
from .manifest import Manifest
from .pipeline import Segmenter


def require(module: str, install: str):
    """Import a backend package, or fail with one line saying what to install."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise CmliteError(f"this model needs {module.split('.')[0]}, which is not installed ({e}): "
                          f"pip install {install}") from None


class ConvertedSegmenter(Segmenter):
    """A Segmenter whose two graphs come from a converted-model folder."""

    def __init__(self, manifest: Manifest, folder: Path, threads: int | None = None, **overrides):
        self.manifest = manifest
        self.folder = Path(folder)
        self.config = manifest.pipeline.with_(**overrides)
        self.class_names = manifest.class_names
        self.category_ids = tuple(manifest.model["category_ids"])
        self.fixed_hw = manifest.fixed_hw
        self.mask_batch = manifest.graphs["masks"].batch
        self.threads = threads
        self.open()

    def open(self) -> None:
        """Load the graphs (called once from __init__)."""
        raise NotImplementedError

    def graph_path(self, kind: str) -> Path:
        return self.folder / self.manifest.graphs[kind].file

    @property
    def device(self) -> str:
        return f"{self.manifest.target} {self.manifest.precision} on CPU"
