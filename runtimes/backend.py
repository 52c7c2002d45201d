"""What every converted-model backend shares: reading the manifest into the Segmenter's settings."""
from __future__ import annotations

import importlib
import platform
from pathlib import Path

import numpy as np

from .errors import CmliteError, SettingsError, error_line
from .manifest import GRAPH_KINDS, Manifest
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
    held: tuple[str, ...] = ()  # the attributes holding the loaded graphs: what release() lets go of
    released = False

    def __init__(self, manifest: Manifest, folder: Path, threads: int | None = None, maskiou: bool = True,
                 graphs: tuple[str, ...] = GRAPH_KINDS, **overrides):
        """graphs: which of graph 1 ("dense") and graph 2 ("masks") to open; a Triton Python-backend model serves
        one of them (converters/triton_repo.py), and the other's run then fails."""
        if not graphs or not set(graphs) <= set(GRAPH_KINDS):
            raise SettingsError(f"graphs {graphs!r}: give one or both of {', '.join(GRAPH_KINDS)}")
        self.kinds = tuple(k for k in GRAPH_KINDS if k in graphs)
        self.manifest = manifest
        self.folder = Path(folder)
        self.maskiou = bool(maskiou) and bool(manifest.model.get("maskiou", True))
        # graph 2 without the MaskIoU head: when asked to skip a head the model has
        self.mask_kind = "masks" if self.maskiou or not manifest.model.get("maskiou", True) else "masks_noiou"
        self.config = manifest.pipeline.with_(**overrides)
        self.class_names = manifest.class_names
        self.category_ids = tuple(manifest.model["category_ids"])
        self.fixed_hw = manifest.fixed_hw
        self.mask_batch = manifest.graphs["masks"].batch
        self.threads = threads
        try:
            self.open()
        except CmliteError:
            raise
        except Exception as e:  # the runtime refused the graphs: a line naming model, runtime and device
            raise self.refused(e) from None

    def refused(self, e: Exception) -> CmliteError:
        from . import target_table

        row = target_table.get(self.manifest.target, "runtime")
        device = {"cpu": "CPU"}.get(row.device, row.device)
        where = f"{device} ({platform.machine() or 'unknown machine'})"
        return CmliteError(
            f"{self.folder}: {row.runtime} could not load this {self.manifest.target} {self.manifest.precision} model "
            f"on {where}: {error_line(e)}; make it again with this cmlite and runtime (cmlite convert / quantize), "
            f"or pick a target that runs here (cmlite bench compares them)")

    def replica(self, threads: int | None) -> "ConvertedSegmenter":
        """A new load of the folder with `threads` threads, with this one's graphs and settings."""
        return type(self)(self.manifest, self.folder, threads=threads, maskiou=self.maskiou,
                          graphs=self.kinds).settings_from(self)

    def replicas(self, n: int, threads: int | None) -> list[Segmenter]:
        """n independent loads of the folder with `threads` threads each, with this one's settings."""
        return [self.replica(threads) for _ in range(n)]

    def open(self) -> None:
        """Load the graphs (called from __init__, and again after release())."""
        raise NotImplementedError

    def release(self) -> None:
        """Let go of the loaded graphs (their memory back): the throughput mode's lanes hold replicas of their own,
        so the model they were made from need not hold a copy beside them. The next inference loads them again."""
        if self.held and not self.released:
            for name in self.held:
                setattr(self, name, None)
            self.released = True

    def _reopen(self) -> None:
        if self.released:
            self.released = False
            self.open()

    def run_dense(self, tensor: np.ndarray):
        self._reopen()
        return super().run_dense(tensor)

    def run_masks(self, pooled: np.ndarray, onehot: np.ndarray):
        self._reopen()
        return super().run_masks(pooled, onehot)

    def check_precision(self, kinds: dict[str, set[str]]) -> None:
        """kinds: graph file -> the number formats its weights and ops hold ({"fp32", "fp16", "int8"}), as the
        backend read them. The manifest's precision must be what the graphs are: a manifest edited to say fp16
        over fp32 graphs (or the reverse) would label every figure wrongly."""
        found = set().union(*kinds.values())
        want = self.manifest.precision
        ok = {"int8": "int8" in found, "fp16": "fp16" in found and "int8" not in found,
              "fp32": found == {"fp32"}, "bf16": found == {"fp32"}}.get(want, True)
        if not ok:
            what = ", ".join(f"{f}: {'/'.join(sorted(k)) or 'no weights'}" for f, k in kinds.items())
            raise CmliteError(f"{self.folder}: the manifest says {want} but the graphs hold {what}; restore "
                              f"manifest.json or {self.manifest.remake_hint(self.folder)}")

    @property
    def open_kinds(self) -> tuple[str, ...]:
        """The graphs to open, graph 2 as the file that runs it (masks or masks_noiou)."""
        return tuple(self.mask_kind if k == "masks" else k for k in self.kinds)

    def graph_path(self, kind: str) -> Path:
        return self.folder / self.manifest.graphs[kind].file

    def no_graph(self, kind: str) -> CmliteError:
        """The one line when a folder lacks a graph it was asked for (masks_noiou: made since cmlite 0.2)."""
        if kind == "masks_noiou":
            return CmliteError(f"{self.folder}: no graph 2 without the MaskIoU head here (the folder was converted by "
                               f"an older cmlite): convert it again, or keep the head (--maskiou on)")
        return CmliteError(f"{self.folder}: the manifest names no {kind!r} graph; "
                           f"{self.manifest.remake_hint(self.folder)}")

    @property
    def device(self) -> str:
        return f"{self.manifest.target} {self.manifest.precision} on CPU"

