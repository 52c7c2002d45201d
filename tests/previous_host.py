"""The host work as it was before issue 20 (commit 3dedd31), frozen as the oracle for the rewritten runtimes/.

decode (threshold, top-k, boxes, class-aware NMS, top-N), level assignment, RoIAlign and the mask paste,
verbatim: `test_host_equivalence.py` runs both on recorded cases and requires the same results.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np



@dataclass
class Proposals:
    boxes: np.ndarray  # (N, 4) float32 x1y1x2y2 in the resized frame, unclipped
    scores: np.ndarray  # (N,) float32 sqrt(cls * ctr)
    classes: np.ndarray  # (N,) int64
    locations: np.ndarray  # (N, 2) float32

    def __len__(self) -> int:
        return len(self.scores)

    def take(self, idx: np.ndarray) -> "Proposals":
        return Proposals(self.boxes[idx], self.scores[idx], self.classes[idx], self.locations[idx])


def sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-x.astype(np.float32)))).astype(np.float32)


def locations(h: int, w: int, stride: int) -> np.ndarray:
    """Centres of the feature map cells: x = j*s + s//2, y = i*s + s//2, row-major, (h*w, 2) float32."""
    ys, xs = np.meshgrid(np.arange(h, dtype=np.float32) * stride, np.arange(w, dtype=np.float32) * stride,
                         indexing="ij")
    return np.stack([xs.ravel(), ys.ravel()], axis=1) + np.float32(stride // 2)


def decode_level(logits: np.ndarray, bbox_reg: np.ndarray, ctrness: np.ndarray, stride: int,
                 score_thresh: float, pre_nms_topk: int) -> Proposals:
    """One level of one image. logits (K, H, W), bbox_reg (4, H, W) in stride units, ctrness (1, H, W)."""
    k, h, w = logits.shape
    cls = sigmoid(logits.reshape(k, h * w).T)  # (HW, K)
    ctr = sigmoid(ctrness.reshape(h * w))
    loc_idx, cls_idx = np.nonzero(cls > score_thresh)  # row-major, as torch.nonzero
    cand = cls[loc_idx, cls_idx] * ctr[loc_idx]
    if len(cand) > pre_nms_topk:
        keep = np.argpartition(-cand, pre_nms_topk - 1)[:pre_nms_topk]
        keep.sort()
        loc_idx, cls_idx, cand = loc_idx[keep], cls_idx[keep], cand[keep]
    reg = bbox_reg.reshape(4, h * w).T[loc_idx] * np.float32(stride)
    loc = locations(h, w, stride)[loc_idx]
    boxes = np.stack([loc[:, 0] - reg[:, 0], loc[:, 1] - reg[:, 1], loc[:, 0] + reg[:, 2], loc[:, 1] + reg[:, 3]],
                     axis=1).astype(np.float32)
    return Proposals(boxes, np.sqrt(cand).astype(np.float32), cls_idx.astype(np.int64), loc)


def box_iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU; two zero-area boxes count as IoU 1 when they coincide (FCOS can output point boxes)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=1)  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    same = np.abs(a[:, None, :] - b[None, :, :]).max(axis=2) <= 1e-3
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), same.astype(np.float64))


def batched_nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou_thresh: float) -> np.ndarray:
    """Class-aware NMS (suppress IoU > thresh within a class); indices in decreasing score order.

    Boxes of zero area never suppress and are never suppressed (their IoU is 0, or 0/0 for two of
    them, as in the official torchvision NMS); OpenCV would count two such boxes as IoU 1, so they
    bypass it.
    """
    b = boxes.astype(np.float64)
    flat = ((b[:, 2] - b[:, 0]) <= 0) | ((b[:, 3] - b[:, 1]) <= 0)
    idx = np.nonzero(~flat)[0]
    keep = np.nonzero(flat)[0]
    if len(idx):
        b = b[idx] - min(b[idx, :2].min(), 0.0)  # OpenCV offsets classes by the max coordinate: needs >= 0
        xywh = np.stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], axis=1)
        # top_k=0: OpenCV truncates to top_k *before* suppressing, so the top-N cut is done afterwards.
        kept = cv2.dnn.NMSBoxesBatched(xywh.tolist(), scores[idx].astype(np.float32).tolist(),
                                       classes[idx].astype(np.int32).tolist(), 0.0, float(iou_thresh), 1.0, 0)
        keep = np.concatenate([idx[np.asarray(kept, np.int64).reshape(-1)], keep])
    return keep[np.argsort(-scores[keep], kind="stable")]


def select_top(scores: np.ndarray, n: int) -> np.ndarray:
    """Keep scores >= the n-th largest (ties at the n-th may keep more), preserving order."""
    if n <= 0 or len(scores) <= n:
        return np.arange(len(scores))
    kth = np.partition(scores, len(scores) - n)[len(scores) - n]
    return np.nonzero(scores >= kth)[0]


def decode(levels: list[tuple[np.ndarray, np.ndarray, np.ndarray]], strides, score_thresh: float,
           pre_nms_topk: int, nms_thresh: float, post_nms_topk: int) -> Proposals:
    """All levels of one image -> proposals sorted by score (the official FCOS inference)."""
    parts = [decode_level(lg, rg, ct, s, score_thresh, pre_nms_topk) for (lg, rg, ct), s in zip(levels, strides)]
    allp = Proposals(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                       ("boxes", "scores", "classes", "locations")))
    kept = allp.take(batched_nms(allp.boxes, allp.scores, allp.classes, nms_thresh))
    return kept.take(select_top(kept.scores, post_nms_topk))


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

