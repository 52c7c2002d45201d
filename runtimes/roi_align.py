"""CenterMask's RoI level assignment and the one RoIAlign (aligned, adaptive sampling).

RoIAlign's bilinear sampling is separable: for one RoI and one level,
    pooled[c] = Ay @ feature[c] @ Ax.T
where Ay (14, H) and Ax (14, W) hold the averaged bilinear weights of the sample rows and columns
(zero for samples outside the map, exactly as the official ROIAlignV2 kernel). `roi_align_weights`
builds those small matrices (cropped to the rows/columns they touch) in float32, following the
kernel's arithmetic; numpy here and torch in lite/ (for training) apply them.
"""
from __future__ import annotations

import numpy as np


def assign_levels(boxes: np.ndarray, image_hw: tuple[int, int], min_level: int = 3, max_level: int = 5) -> np.ndarray:
    """Eq. 2 of CenterMask: ceil(max_level - log2(A_img / A_box + eps)), clamped; 0 = min_level.

    A_img is the resized, unpadded image; A_box the unclipped box. Computed in float32 like the original.
    """
    b = boxes.astype(np.float32)
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.float32(image_hw[0] * image_hw[1]) / area + np.float32(np.finfo(np.float64).eps)
        level = np.ceil(np.float32(max_level) - np.log2(ratio))
    level = np.clip(np.nan_to_num(level, nan=min_level), min_level, max_level)
    return level.astype(np.int64) - min_level


def _axis_weights(start: np.float32, size: np.float32, n_out: int, length: int) -> tuple[np.ndarray, int]:
    """Averaged bilinear weights (n_out, span) along one axis, and the first index they touch."""
    f32 = np.float32
    bin_size = f32(size / f32(n_out))
    grid = int(np.ceil(f32(size / f32(n_out))))
    if grid <= 0:
        return np.zeros((n_out, 1), np.float32), 0
    p = np.arange(n_out, dtype=np.float32)[:, None]
    i = (np.arange(grid, dtype=np.float32) + f32(0.5))[None, :]
    y = start + p * bin_size + i * bin_size / f32(grid)  # (n_out, grid) sample coordinates
    valid = (y >= -1.0) & (y <= length)
    y = np.maximum(y, f32(0.0))
    low = y.astype(np.int64)
    top = low >= length - 1
    low = np.where(top, length - 1, low)
    high = np.where(top, length - 1, low + 1)
    y = np.where(top, low.astype(np.float32), y)
    ly = (y - low).astype(np.float32)
    hy = f32(1.0) - ly
    if not valid.any():
        return np.zeros((n_out, 1), np.float32), 0
    rows = np.broadcast_to(np.arange(n_out)[:, None], y.shape)[valid]
    low, high, ly, hy = low[valid], high[valid], ly[valid], hy[valid]
    lo_i = int(low.min())
    w = np.zeros((n_out, int(high.max()) - lo_i + 1), np.float32)
    inv = np.float32(1.0 / grid)
    np.add.at(w, (rows, low - lo_i), hy * inv)
    np.add.at(w, (rows, high - lo_i), ly * inv)
    return w, lo_i


def roi_align_weights(box: np.ndarray, spatial_scale: float, feat_hw: tuple[int, int], out: int = 14):
    """(ay, y0, ax, x0) for one box: pooled = ay @ feature[:, y0:y0+len(ay[0]), x0:...] @ ax.T."""
    f32 = np.float32
    x1, y1, x2, y2 = (f32(v) * f32(spatial_scale) - f32(0.5) for v in box)
    ay, y0 = _axis_weights(y1, f32(y2 - y1), out, feat_hw[0])
    ax, x0 = _axis_weights(x1, f32(x2 - x1), out, feat_hw[1])
    return ay, y0, ax, x0


def roi_align(features: list[np.ndarray], boxes: np.ndarray, levels: np.ndarray, strides, out: int = 14) -> np.ndarray:
    """features: per level (C, H, W) float32; boxes (N, 4) in the input frame -> (N, C, out, out)."""
    c = features[0].shape[0]
    pooled = np.zeros((len(boxes), c, out, out), np.float32)
    for n, (box, level) in enumerate(zip(boxes, levels)):
        feat = features[level]
        ay, y0, ax, x0 = roi_align_weights(box, 1.0 / strides[level], feat.shape[1:], out)
        crop = feat[:, y0:y0 + ay.shape[1], x0:x0 + ax.shape[1]]
        pooled[n] = ay @ crop @ ax.T  # broadcast over channels
    return pooled
