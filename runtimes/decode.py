"""The one FCOS decode: per-level threshold and top-k, box decoding, class-aware NMS, top-N over levels."""
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
