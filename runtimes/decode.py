"""The one FCOS decode: per-level threshold and top-k, box decoding, class-aware NMS, top-N over levels.

Only the candidates are computed on: the threshold is applied to the raw logits (sigmoid is monotonic), so
the sigmoid, the boxes and the locations are evaluated for the few cells that pass, not for every cell and
class of the map. The results are those of the dense formulation, bit for bit (tests/previous_host.py).
"""
from __future__ import annotations

import math
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
    return cell_centres(np.arange(h * w), w, stride)


def cell_centres(flat_idx: np.ndarray, w: int, stride: int) -> np.ndarray:
    """Centres of the cells at row-major indices `flat_idx` of a map `w` cells wide, (n, 2) float32."""
    f32 = np.float32
    xs = (flat_idx % w).astype(f32) * f32(stride) + f32(stride // 2)
    ys = (flat_idx // w).astype(f32) * f32(stride) + f32(stride // 2)
    return np.stack([xs, ys], axis=1)


def _logit_floor(p: float) -> np.float32:
    """A float32 logit x0 with sigmoid(x) <= p for every x <= x0 (sigmoid in float32 errs by an ulp or two;
    the margin, 1e-3 in logit space, is ~5e-5 in probability near 0.05, thousands of ulps)."""
    if p <= 0:
        return np.float32(-np.inf)
    return np.float32(math.log(p / (1 - p)) - 1e-3)


def decode_level(logits: np.ndarray, bbox_reg: np.ndarray, ctrness: np.ndarray, stride: int,
                 score_thresh: float, pre_nms_topk: int) -> Proposals:
    """One level of one image. logits (K, H, W), bbox_reg (4, H, W) in stride units, ctrness (1, H, W)."""
    k, h, w = logits.shape
    flat = logits.reshape(k, h * w)
    cls_idx, loc_idx = np.divmod(np.flatnonzero(flat > _logit_floor(score_thresh)), h * w)  # a superset
    prob = sigmoid(flat[cls_idx, loc_idx])
    ok = prob > score_thresh  # the exact test, on the few
    order = np.argsort(loc_idx[ok] * k + cls_idx[ok], kind="stable")  # row-major (location, class), as official
    loc_idx, cls_idx, prob = loc_idx[ok][order], cls_idx[ok][order], prob[ok][order]
    cand = prob * sigmoid(ctrness.reshape(h * w)[loc_idx])
    if len(cand) > pre_nms_topk:
        keep = np.argpartition(-cand, pre_nms_topk - 1)[:pre_nms_topk]
        keep.sort()
        loc_idx, cls_idx, cand = loc_idx[keep], cls_idx[keep], cand[keep]
    reg = bbox_reg.reshape(4, h * w)[:, loc_idx].T * np.float32(stride)
    loc = cell_centres(loc_idx, w, stride)
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

    Each class is suppressed on its own with OpenCV's NMS (its cost grows with the square of the boxes in a
    class, not of all boxes). Boxes of zero area never suppress and are never suppressed (their IoU is 0, or
    0/0 for two of them, as in the official torchvision NMS); OpenCV would count two such boxes as IoU 1, so
    they bypass it. Ties in score keep the lower index first.
    """
    b = boxes.astype(np.float64)
    flat = ((b[:, 2] - b[:, 0]) <= 0) | ((b[:, 3] - b[:, 1]) <= 0)
    idx = np.nonzero(~flat)[0]
    kept = [np.nonzero(flat)[0]]
    if len(idx):
        b = b[idx] - min(b[idx, :2].min(), 0.0)
        xywh = np.stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], axis=1)
        s = scores[idx].astype(np.float32)
        cls = classes[idx]
        by_class = np.argsort(cls, kind="stable")
        bounds = np.flatnonzero(np.diff(cls[by_class])) + 1
        # top_k=0: OpenCV truncates to top_k *before* suppressing, so the top-N cut is done afterwards.
        found = []
        for group in np.split(by_class, bounds):
            k = cv2.dnn.NMSBoxes(xywh[group], s[group], 0.0, float(iou_thresh), 1.0, 0)
            found.append(group[np.asarray(k, np.int64).reshape(-1)])
        nonflat = idx[np.concatenate(found)]
        kept.insert(0, nonflat[np.lexsort((nonflat, -scores[nonflat]))])
    keep = np.concatenate(kept)
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
    kept = allp.take(nms_top(allp.boxes, allp.scores, allp.classes, nms_thresh, post_nms_topk))
    return kept.take(select_top(kept.scores, post_nms_topk))


def nms_top(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou_thresh: float, n: int) -> np.ndarray:
    """What batched_nms keeps that select_top(n) can keep, suppressing among the best candidates only.

    Greedy NMS decides each box by the boxes that score higher, so it runs on a prefix of the candidates in
    score order (ties never split), grown until it keeps n: the boxes after the prefix score below the n-th
    kept one and cannot enter the top n. Thousands of candidates cost what a few hundred do."""
    order = np.lexsort((np.arange(len(scores)), -scores))  # score descending, ties by index
    size = 4 * n
    while True:
        if size >= len(order) or n <= 0:
            return batched_nms(boxes, scores, classes, iou_thresh)
        last = scores[order[size - 1]]
        end = size + int(np.count_nonzero(scores[order[size:]] == last))  # ties at the cut stay together
        prefix = np.sort(order[:end])
        keep = prefix[batched_nms(boxes[prefix], scores[prefix], classes[prefix], iou_thresh)]
        if len(keep) >= n:
            return keep
        size = max(2 * size, int(1.5 * size * n / max(len(keep), 1)))  # enough, at the rate this prefix kept
