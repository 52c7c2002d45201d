"""FCOS decoding and class-aware NMS against plain transcriptions of the official semantics."""
from __future__ import annotations

import numpy as np
import pytest

from cmlite.runtimes.decode import batched_nms, decode, decode_level, locations, select_top


def greedy_nms(boxes, scores, classes, thresh):
    """torchvision semantics: per class, highest score first, suppress IoU > thresh (0/0 never suppresses)."""
    order = np.argsort(-scores, kind="stable")
    keep, removed = [], np.zeros(len(boxes), bool)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    for i in order:
        if removed[i]:
            continue
        keep.append(i)
        for j in order:
            if j == i or removed[j] or classes[j] != classes[i]:
                continue
            iw = max(min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0]), 0)
            ih = max(min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1]), 0)
            union = area[i] + area[j] - iw * ih
            if union > 0 and iw * ih / union > thresh:
                removed[j] = True
    return np.array(keep, np.int64)


@pytest.mark.parametrize("seed", range(5))
def test_nms_matches_greedy_reference(seed):
    rng = np.random.default_rng(seed)
    n = 400
    xy = rng.uniform(-80, 500, (n, 2))
    wh = rng.uniform(0, 120, (n, 2))
    wh[rng.random(n) < 0.05] = 0  # zero-area boxes, as ReLU regression can give
    boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    boxes[rng.random(n) < 0.3] = boxes[0] + rng.normal(0, 4, 4).astype(np.float32)  # dense overlaps
    scores = rng.random(n).astype(np.float32)
    classes = rng.integers(0, 4, n)
    np.testing.assert_array_equal(batched_nms(boxes, scores, classes, 0.6), greedy_nms(boxes, scores, classes, 0.6))


def test_nms_does_not_cross_classes_with_negative_coordinates():
    boxes = np.array([[-100, -100, -10, -10], [-100, -100, -10, -10], [-99, -99, -11, -11]], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    np.testing.assert_array_equal(batched_nms(boxes, scores, np.array([0, 1, 0]), 0.6), [0, 1])


def test_select_top_keeps_ties_at_the_cut():
    scores = np.array([0.9, 0.5, 0.5, 0.5, 0.1], np.float32)
    np.testing.assert_array_equal(select_top(scores, 2), [0, 1, 2, 3])
    np.testing.assert_array_equal(select_top(scores, 10), np.arange(5))


def test_locations_are_cell_centres():
    loc = locations(2, 3, 16)
    np.testing.assert_array_equal(loc, [[8, 8], [24, 8], [40, 8], [8, 24], [24, 24], [40, 24]])


def _logit(p):
    return np.log(p / (1 - p)).astype(np.float32)


def test_pre_nms_topk_ranks_by_score_times_centerness():
    """FCOS keeps the top-k candidates by class score x centerness; the threshold is on the class score alone.
    Ranking by the class score would keep the 0.9 and 0.5 candidates here, not the 0.5 and 0.3 ones."""
    logits = np.full((2, 3, 3), -10, np.float32)
    ctr = np.full((1, 3, 3), _logit(0.5), np.float32)
    for (c, y, x), p, q in zip([(0, 0, 0), (1, 1, 1), (0, 2, 2)], (0.9, 0.5, 0.3), (0.04, 0.9, 0.8)):
        logits[c, y, x], ctr[0, y, x] = _logit(p), _logit(q)  # products 0.036, 0.45, 0.24
    reg = np.ones((4, 3, 3), np.float32)
    top2 = decode_level(logits, reg, ctr, 8, 0.05, 2)
    np.testing.assert_array_equal(top2.locations, [[12, 12], [20, 20]])
    np.testing.assert_allclose(top2.scores, np.sqrt([0.45, 0.24]), rtol=1e-6)
    every = decode_level(logits, reg, ctr, 8, 0.05, 1000)  # 0.9 x 0.04 = 0.036 < 0.05 still passes the threshold
    np.testing.assert_allclose(every.scores, np.sqrt([0.036, 0.45, 0.24]), rtol=1e-6)
    ranked = decode([(logits, reg, ctr)], (8,), 0.05, 2, 0.6, 10)
    np.testing.assert_allclose(ranked.scores, np.sqrt([0.45, 0.24]), rtol=1e-6)


def test_decode_level_threshold_topk_and_boxes():
    k, h, w, stride = 3, 4, 5, 8
    logits = np.full((k, h, w), -10, np.float32)
    logits[1, 2, 3] = _logit(0.5)  # candidate
    logits[2, 0, 0] = _logit(0.049)  # below the 0.05 threshold (centerness not in the threshold)
    logits[0, 3, 4] = _logit(0.9)
    ctr = np.full((1, h, w), _logit(0.25), np.float32)
    reg = np.ones((4, h, w), np.float32) * np.array([1, 2, 3, 4], np.float32)[:, None, None]
    p = decode_level(logits, reg, ctr, stride, 0.05, 1000)
    assert len(p) == 2
    np.testing.assert_array_equal(p.classes, [1, 0])  # row-major order of the locations
    np.testing.assert_allclose(p.scores, np.sqrt([0.5 * 0.25, 0.9 * 0.25]), rtol=1e-6)
    x, y = 3 * 8 + 4, 2 * 8 + 4
    np.testing.assert_allclose(p.boxes[0], [x - 8, y - 16, x + 24, y + 32])
    top1 = decode_level(logits, reg, ctr, stride, 0.05, 1)
    np.testing.assert_array_equal(top1.classes, [0])


def test_decode_with_no_candidates_is_empty():
    levels = [(np.full((2, s, s), -20, np.float32), np.zeros((4, s, s), np.float32), np.zeros((1, s, s), np.float32))
              for s in (8, 4, 2, 1, 1)]
    p = decode(levels, (8, 16, 32, 64, 128), 0.05, 1000, 0.6, 50)
    assert len(p) == 0 and p.boxes.shape == (0, 4)

