"""CenterMask's RoI level assignment and the one RoIAlign (aligned, adaptive sampling).

RoIAlign's bilinear sampling is separable: for one RoI and one level,
    pooled[c] = Ay @ feature[c] @ Ax.T
where Ay (14, H) and Ax (14, W) hold the averaged bilinear weights of the sample rows and columns
(zero for samples outside the map, exactly as the official ROIAlignV2 kernel). `axis_weights` builds
those small matrices (cropped to the rows/columns they touch) for all RoIs at once, in float32, following
the kernel's arithmetic; numpy here and torch in lite/ (for training, `roi_align_weights`) apply them.
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


def axis_weights(start: np.ndarray, size: np.ndarray, n_out: int, length: np.ndarray):
    """Averaged bilinear weights along one axis for N RoIs at once: (w (N, n_out, span) float32, first (N,),
    width (N,)): RoI n's weights are w[n, :, :width[n]] over input indices first[n] .. first[n] + width[n] - 1.

    The kernel's arithmetic in float32, sample by sample: a grid of ceil(size / n_out) samples per bin, samples
    outside [-1, length] dropped, clamped to the last row or column at the far edge."""
    f32 = np.float32
    start, size = np.asarray(start, f32), np.asarray(size, f32)
    length = np.asarray(length, np.int64)
    n = len(start)
    bin_size = (size / f32(n_out)).astype(f32)
    grid = np.ceil(bin_size).astype(np.int64)
    g = max(int(grid.max(initial=0)), 1)
    p = np.arange(n_out, dtype=f32)[None, :, None]
    i = (np.arange(g, dtype=f32) + f32(0.5))[None, None, :]
    bs, gr = bin_size[:, None, None], np.maximum(grid, 1).astype(f32)[:, None, None]
    y = start[:, None, None] + p * bs + i * bs / gr  # (N, n_out, g) sample coordinates
    ln = length[:, None, None]
    valid = (np.arange(g)[None, None, :] < grid[:, None, None]) & (y >= -1.0) & (y <= ln)
    y = np.maximum(y, f32(0.0))
    low = y.astype(np.int64)
    top = low >= ln - 1
    low = np.where(top, ln - 1, low)
    high = np.where(top, ln - 1, low + 1)
    y = np.where(top, low.astype(f32), y)
    ly = (y - low).astype(f32)
    hy = f32(1.0) - ly
    any_valid = valid.any(axis=(1, 2))
    big = np.iinfo(np.int64).max
    first = np.where(any_valid, np.where(valid, low, big).min(axis=(1, 2)), 0)
    last = np.where(any_valid, np.where(valid, high, -1).max(axis=(1, 2)), 0)
    width = last - first + 1
    w = np.zeros((n, n_out, int(width.max(initial=1))), f32)
    nb, rb, ib = np.nonzero(valid)
    inv = (f32(1.0) / np.maximum(grid, 1).astype(f32))[nb]
    off = first[nb]
    # in the kernel's order for each weight: every low tap of a bin, then every high tap
    np.add.at(w, (nb, rb, low[nb, rb, ib] - off), hy[nb, rb, ib] * inv)
    np.add.at(w, (nb, rb, high[nb, rb, ib] - off), ly[nb, rb, ib] * inv)
    return w, first, width


def roi_align_weights(box: np.ndarray, spatial_scale: float, feat_hw: tuple[int, int], out: int = 14):
    """(ay, y0, ax, x0) for one box: pooled = ay @ feature[:, y0:y0+len(ay[0]), x0:...] @ ax.T."""
    (ay, y0, hy), (ax, x0, wx) = _box_weights(np.asarray(box, np.float32)[None], np.float32(spatial_scale),
                                               np.array([feat_hw]), out)
    return ay[0, :, :hy[0]], int(y0[0]), ax[0, :, :wx[0]], int(x0[0])


def _box_weights(boxes: np.ndarray, scales: np.ndarray, feat_hw: np.ndarray, out: int):
    f32 = np.float32
    b = boxes.astype(f32) * np.asarray(scales, f32).reshape(-1, 1) - f32(0.5)
    x1, y1, x2, y2 = b.T
    return (axis_weights(y1, (y2 - y1).astype(f32), out, feat_hw[:, 0]),
            axis_weights(x1, (x2 - x1).astype(f32), out, feat_hw[:, 1]))


def roi_align(features: list[np.ndarray], boxes: np.ndarray, levels: np.ndarray, strides, out: int = 14) -> np.ndarray:
    """features: per level (C, H, W) float32; boxes (N, 4) in the input frame -> (N, C, out, out).

    pooled = ay @ feature @ ax.T per RoI and channel, as two matrix products over all channels at once: the
    levels that RoIs use are laid out HWC once, so a RoI's crop is one (rows, cols x C) matrix."""
    c = features[0].shape[0]
    pooled = np.empty((len(boxes), c, out, out), np.float32)
    if not len(boxes):
        return pooled
    scales = np.array([np.float32(1.0 / strides[lv]) for lv in levels], np.float32)
    hw = np.array([features[lv].shape[1:] for lv in levels], np.int64)
    (ay, y0, hy), (ax, x0, wx) = _box_weights(boxes, scales, hw, out)
    hwc = {lv: np.ascontiguousarray(features[lv].transpose(1, 2, 0)) for lv in np.unique(levels).tolist()}
    for n, (level, top, h, left, w) in enumerate(zip(levels.tolist(), y0.tolist(), hy.tolist(), x0.tolist(),
                                                     wx.tolist())):
        crop = hwc[level][top:top + h, left:left + w].reshape(h, w * c)
        rows = (ay[n, :, :h] @ crop).reshape(out, w, c)  # (out, w, C): the rows pass
        pooled[n] = np.matmul(rows.transpose(0, 2, 1), ax[n, :, :w].T).transpose(1, 0, 2)  # the columns pass
    return pooled
