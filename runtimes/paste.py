"""The one mapping back to the original frame: scale and clip boxes, drop empty ones, paste masks.

Each 28x28 mask probability map is pasted into its clipped box by bilinear sampling at pixel centres
(grid_sample, align_corners=False, zero padding), over the box grown by one pixel as detectron2 does
on CPU, and thresholded. Bilinear sampling is separable, so a paste is Ry @ mask @ Rx.T.
"""
from __future__ import annotations

import numpy as np


def scale_clip_boxes(boxes: np.ndarray, from_hw: tuple[int, int], to_hw: tuple[int, int]):
    """Scale boxes from the resized frame to the output frame and clip; returns (boxes, keep mask)."""
    sx = to_hw[1] / from_hw[1]
    sy = to_hw[0] / from_hw[0]
    b = boxes.astype(np.float32) * np.array([sx, sy, sx, sy], np.float32)
    b[:, 0::2] = np.clip(b[:, 0::2], 0, to_hw[1])
    b[:, 1::2] = np.clip(b[:, 1::2], 0, to_hw[0])
    keep = ((b[:, 2] - b[:, 0]) > 0) & ((b[:, 3] - b[:, 1]) > 0)
    return b, keep


def _sample_matrix(start: np.float32, end: np.float32, lo: int, hi: int, m: int) -> np.ndarray:
    """(hi-lo, m) bilinear weights of pixel centres lo..hi-1 over an m-cell map spanning [start, end]."""
    f32 = np.float32
    centres = np.arange(lo, hi, dtype=np.float32) + f32(0.5)
    g = (centres - start) / (end - start) * f32(2) - f32(1)  # normalised grid, as detectron2 builds it
    pos = ((g + f32(1)) * f32(m) - f32(1)) / f32(2)  # grid_sample unnormalise, align_corners=False
    i0 = np.floor(pos).astype(np.int64)
    frac = (pos - i0).astype(np.float32)
    r = np.zeros((hi - lo, m), np.float32)
    rows = np.arange(hi - lo)
    for idx, wgt in ((i0, f32(1) - frac), (i0 + 1, frac)):
        ok = (idx >= 0) & (idx < m)  # zero padding
        r[rows[ok], idx[ok]] += wgt[ok]
    return r


def paste_masks(probs: np.ndarray, boxes: np.ndarray, image_hw: tuple[int, int], thresh: float = 0.5) -> np.ndarray:
    """(N, M, M) probability maps -> (N, H, W) bool masks, each inside its box (x1y1x2y2, output frame)."""
    h, w = image_hw
    out = np.zeros((len(boxes), h, w), bool)
    for i, (prob, box) in enumerate(zip(probs, boxes)):
        x0, y0, x1, y1 = (np.float32(v) for v in box)
        xa, ya = max(int(np.floor(x0)) - 1, 0), max(int(np.floor(y0)) - 1, 0)
        xb, yb = min(int(np.ceil(x1)) + 1, w), min(int(np.ceil(y1)) + 1, h)
        if xb <= xa or yb <= ya:
            continue
        ry = _sample_matrix(y0, y1, ya, yb, prob.shape[0])
        rx = _sample_matrix(x0, x1, xa, xb, prob.shape[1])
        out[i, ya:yb, xa:xb] = (ry @ prob.astype(np.float32) @ rx.T) >= np.float32(thresh)
    return out
