"""The one mapping back to the original frame: scale and clip boxes, drop empty ones, paste masks.

Each 28x28 mask probability map is pasted into its clipped box by bilinear sampling at pixel centres
(grid_sample, align_corners=False, zero padding), over the box grown by one pixel as detectron2 does
on CPU, and thresholded. Bilinear sampling is separable, so a paste is Ry @ mask @ Rx.T. The result is
kept as each box's region (`BoxMasks`): drawing and RLE need no more, and full-frame masks are made only
when asked for.
"""
from __future__ import annotations

import numpy as np

from .instances import BoxMasks


def scale_clip_boxes(boxes: np.ndarray, from_hw: tuple[int, int], to_hw: tuple[int, int]):
    """Scale boxes from the resized frame to the output frame and clip; returns (boxes, keep mask)."""
    sx = to_hw[1] / from_hw[1]
    sy = to_hw[0] / from_hw[0]
    b = boxes.astype(np.float32) * np.array([sx, sy, sx, sy], np.float32)
    b[:, 0::2] = np.clip(b[:, 0::2], 0, to_hw[1])
    b[:, 1::2] = np.clip(b[:, 1::2], 0, to_hw[0])
    keep = ((b[:, 2] - b[:, 0]) > 0) & ((b[:, 3] - b[:, 1]) > 0)
    return b, keep


def paste_regions(boxes: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
    """(N, 4) int64 y0, y1, x0, x1 of the pixels each box's paste covers: the box grown by one pixel, clipped."""
    b = boxes.astype(np.float32)
    h, w = image_hw
    return np.stack([np.maximum(np.floor(b[:, 1]).astype(np.int64) - 1, 0),
                     np.minimum(np.ceil(b[:, 3]).astype(np.int64) + 1, h),
                     np.maximum(np.floor(b[:, 0]).astype(np.int64) - 1, 0),
                     np.minimum(np.ceil(b[:, 2]).astype(np.int64) + 1, w)], axis=1).reshape(-1, 4)


def sample_matrices(start: np.ndarray, end: np.ndarray, lo: np.ndarray, hi: np.ndarray, m: int) -> np.ndarray:
    """Bilinear weights of the pixel centres lo[i]..hi[i]-1 over an m-cell map spanning [start[i], end[i]], for
    every i at once: (sum(hi - lo), m) float32, box i's rows following box i-1's."""
    f32 = np.float32
    counts = np.maximum(hi - lo, 0)
    owner = np.repeat(np.arange(len(lo)), counts)
    first = np.cumsum(counts) - counts
    centres = (lo[owner] + np.arange(counts.sum()) - first[owner]).astype(f32) + f32(0.5)
    s, e = start.astype(f32)[owner], end.astype(f32)[owner]
    g = (centres - s) / (e - s) * f32(2) - f32(1)  # normalised grid, as detectron2 builds it
    pos = ((g + f32(1)) * f32(m) - f32(1)) / f32(2)  # grid_sample unnormalise, align_corners=False
    i0 = np.floor(pos).astype(np.int64)
    frac = (pos - i0).astype(f32)
    r = np.zeros((len(pos), m), f32)
    flat, row_start = r.reshape(-1), np.arange(len(pos)) * m
    for idx, wgt in ((i0, f32(1) - frac), (i0 + 1, frac)):
        ok = (idx >= 0) & (idx < m)  # zero padding
        flat[(row_start + idx)[ok]] = wgt[ok]
    return r


def paste_masks(probs: np.ndarray, boxes: np.ndarray, image_hw: tuple[int, int], thresh: float = 0.5) -> BoxMasks:
    """(N, M, M) probability maps -> each box's mask in its region of the image (x1y1x2y2, output frame)."""
    regions = paste_regions(boxes, image_hw)
    b = boxes.astype(np.float32).reshape(-1, 4)
    ry = sample_matrices(b[:, 1], b[:, 3], regions[:, 0], regions[:, 1], probs.shape[1])
    rx = sample_matrices(b[:, 0], b[:, 2], regions[:, 2], regions[:, 3], probs.shape[2])
    ys = np.cumsum(np.maximum(regions[:, 1] - regions[:, 0], 0))
    xs = np.cumsum(np.maximum(regions[:, 3] - regions[:, 2], 0))
    t = np.float32(thresh)
    probs = probs.astype(np.float32, copy=False)
    ys, xs = np.concatenate([[0], ys]).tolist(), np.concatenate([[0], xs]).tolist()
    crops = [(ry[ys[i]:ys[i + 1]] @ probs[i] @ rx[xs[i]:xs[i + 1]].T) >= t for i in range(len(probs))]
    return BoxMasks(crops, regions[:, [0, 2]], image_hw)
