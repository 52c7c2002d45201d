"""Differentiable RoIAlign for training: the weight matrices of runtimes/roi_align.py applied in torch.

The matrices depend only on the boxes (no gradient flows to boxes, as in the original), so the one
implementation of the sampling lives in runtimes/; here it is a pair of matrix products per RoI.
"""
from __future__ import annotations

import numpy as np
import torch

from cmlite.runtimes.roi_align import roi_align_weights


def roi_align(features: list[torch.Tensor], boxes: np.ndarray, levels: np.ndarray, batch_idx: np.ndarray,
              strides, out: int = 14) -> torch.Tensor:
    """features: per level (N, C, H, W); boxes (R, 4) in the input frame -> (R, C, out, out)."""
    c = features[0].shape[1]
    rows = []
    for box, level, b in zip(boxes, levels, batch_idx):
        feat = features[level][b]
        ay, y0, ax, x0 = roi_align_weights(box, 1.0 / strides[level], tuple(feat.shape[1:]), out)
        crop = feat[:, y0:y0 + ay.shape[1], x0:x0 + ax.shape[1]]
        rows.append(torch.from_numpy(ay).to(feat) @ crop @ torch.from_numpy(ax).to(feat).T)
    if not rows:
        return features[0].new_zeros((0, c, out, out))
    return torch.stack(rows)
