"""Calibration inputs for both graphs, made by the runtime itself from calibration frames.

Graph 1's inputs are exactly what the runtime feeds it (`runtimes.preprocess` at the graph's own size, fixed or
dynamic); graph 2's are the pooled RoI features and one-hot classes the FP32 pipeline feeds it on the same frames,
so the mask head is calibrated on what it will see. Any Segmenter (the FP32 twin of the graph being quantized)
makes them; nothing here needs torch.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from cmlite.runtimes.errors import CmliteError
from cmlite.runtimes.pipeline import Segmenter


@dataclass
class GraphSamples:
    dense: list[dict[str, np.ndarray]]  # {"image": (1, 3, H, W)} per frame
    masks: list[dict[str, np.ndarray]]  # {"rois": (N, C, 14, 14), "classes_onehot": (N, K)} per frame with detections

    @property
    def num_rois(self) -> int:
        return sum(len(s["rois"]) for s in self.masks)


def _batches(rois: np.ndarray, onehot: np.ndarray, batch: int | None) -> list[dict[str, np.ndarray]]:
    """One sample per frame, or fixed-size batches; a short last batch repeats real RoIs (zeros would skew ranges)."""
    if batch is None:
        return [{"rois": rois, "classes_onehot": onehot}]
    out = []
    for i in range(0, len(rois), batch):
        idx = np.arange(i, i + batch) % len(rois)
        out.append({"rois": rois[idx], "classes_onehot": onehot[idx]})
    return out


def collect(seg: Segmenter, frames: list[np.ndarray], progress: bool = True) -> GraphSamples:
    """Run `seg` (FP32) on every frame and keep both graphs' inputs, at `seg`'s input size and mask batch."""
    from cmlite.runtimes.progress import progress_bar

    dense, masks = [], []
    for frame in progress_bar(frames, desc="calibration inputs", unit="frame", disable=not progress or len(frames) < 2,
                      file=sys.stderr):
        trace: dict = {}
        seg.predict(frame, trace)
        dense.append({"image": trace["preprocessed"].tensor})
        props = trace["proposals"]
        if len(props):
            k = trace["dense"].levels[0][0].shape[0]
            onehot = np.eye(k, dtype=np.float32)[props.classes]
            masks += _batches(trace["pooled"], onehot, seg.mask_batch)
    if not masks:
        raise CmliteError(f"the model detects nothing in any of the {len(frames)} calibration frames, so the mask "
                          "head cannot be calibrated: give frames that show the objects the model was trained on")
    return GraphSamples(dense, masks)
