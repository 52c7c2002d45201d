"""Training losses and targets (lite/losses.py, lite/training_targets.py) against plain float64 transcriptions of their
formulas: the focal loss (Lin et al.), FCOS's GIoU and centerness, FCOS's targets with centre sampling and sizes
of interest, detectron2's proposal matching, the mask and MaskIoU targets."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cmlite.lite.losses import fcos_losses, giou_loss, mask_losses, sigmoid_focal_loss
from cmlite.lite.training_targets import fcos_targets, match_proposals, mask_targets

# FCOS's settings (AdelaiDet's defaults: CENTER_SAMPLE, POS_RADIUS 1.5, SIZES_OF_INTEREST [64, 128, 256, 512])
CENTER_RADIUS = 1.5
SIZES_OF_INTEREST = ((0, 64), (64, 128), (128, 256), (256, 512), (512, float("inf")))


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


@pytest.mark.parametrize("alpha, gamma", [(0.25, 2.0), (0.5, 0.0), (0.75, 1.5)])
def test_focal_loss_is_the_formula(alpha, gamma):
    rng = np.random.default_rng(0)
    x = rng.normal(0, 3, (200, 5))
    t = (rng.random((200, 5)) < 0.2).astype(np.float64)
    p = _sigmoid(x)
    p_t = np.where(t == 1, p, 1 - p)
    a_t = np.where(t == 1, alpha, 1 - alpha)
    want = -a_t * (1 - p_t) ** gamma * np.log(p_t)  # FL(p_t) = -alpha_t (1 - p_t)^gamma log(p_t)
    got = sigmoid_focal_loss(torch.tensor(x, dtype=torch.float64), torch.tensor(t), alpha, gamma).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_giou_loss_is_the_formula():
    """Distances (l, t, r, b) from a location -> boxes; 1 - GIoU with FCOS's +1 smoothing of the IoU."""
    rng = np.random.default_rng(1)
    pred, tgt = rng.uniform(0, 50, (300, 4)), rng.uniform(0, 50, (300, 4))
    pred[:5] = tgt[:5]  # identical boxes: loss ~0

    def box(d):
        return np.stack([-d[:, 0], -d[:, 1], d[:, 2], d[:, 3]], 1)

    a, b = box(pred), box(tgt)
    iw = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = iw * ih
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    union = area(a) + area(b) - inter
    c = (np.maximum(a[:, 2], b[:, 2]) - np.minimum(a[:, 0], b[:, 0])) * \
        (np.maximum(a[:, 3], b[:, 3]) - np.minimum(a[:, 1], b[:, 1]))
    want = 1 - ((inter + 1) / (union + 1) - (c - union) / c)
    got = giou_loss(torch.tensor(pred), torch.tensor(tgt)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-9)
    assert np.abs(got[:5]).max() < 1e-6


def test_fcos_losses_normalise_and_weight_as_fcos():
    """cls: focal summed / #positives; box: GIoU weighted by the centerness targets (their sum normalises);
    ctr: BCE summed over positives / #positives."""
    rng = np.random.default_rng(2)
    n, k = 60, 3
    logits, reg, ctr = rng.normal(0, 2, (n, k)), rng.uniform(0.1, 5, (n, 4)), rng.normal(0, 1, n)
    labels = rng.integers(0, k + 1, n)  # k = background
    reg_t, ctr_t = rng.uniform(0.1, 5, (n, 4)), rng.uniform(0, 1, n)
    T = lambda a: torch.tensor(a)  # noqa: E731
    got = {key: v.item() for key, v in fcos_losses(T(logits), T(reg), T(ctr), T(labels), T(reg_t), T(ctr_t), k).items()}
    pos = labels < k
    onehot = np.zeros((n, k))
    onehot[pos, labels[pos]] = 1
    p = _sigmoid(logits)
    p_t = np.where(onehot == 1, p, 1 - p)
    focal = -np.where(onehot == 1, 0.25, 0.75) * (1 - p_t) ** 2 * np.log(p_t)
    assert got["loss_cls"] == pytest.approx(focal.sum() / pos.sum(), rel=1e-9)
    g = giou_loss(T(reg[pos]), T(reg_t[pos])).numpy()
    assert got["loss_box"] == pytest.approx((g * ctr_t[pos]).sum() / ctr_t[pos].sum(), rel=1e-9)
    q = _sigmoid(ctr[pos])
    bce = -(ctr_t[pos] * np.log(q) + (1 - ctr_t[pos]) * np.log(1 - q))
    assert got["loss_ctr"] == pytest.approx(bce.sum() / pos.sum(), rel=1e-9)


def _fcos_targets_reference(shapes, strides, boxes, classes, k):
    """FCOS's target assignment, location by location, as the paper and AdelaiDet describe it."""
    labels, regs, ctrs = [], [], []
    for (h, w), s, (lo, hi) in zip(shapes, strides, SIZES_OF_INTEREST):
        for row in range(h):
            for col in range(w):
                x, y = col * s + s // 2, row * s + s // 2
                best, best_area = None, np.inf
                for g, (x0, y0, x1, y1) in enumerate(boxes):
                    ltrb = (x - x0, y - y0, x1 - x, y1 - y)
                    cx, cy, r = (x0 + x1) / 2, (y0 + y1) / 2, s * CENTER_RADIUS
                    in_centre = max(cx - r, x0) < x < min(cx + r, x1) and max(cy - r, y0) < y < min(cy + r, y1)
                    area = (x1 - x0) * (y1 - y0)
                    if in_centre and lo <= max(ltrb) <= hi and area < best_area:
                        best, best_area = g, area
                if best is None:
                    labels.append(k)
                    regs.append(None)
                    ctrs.append(None)
                    continue
                x0, y0, x1, y1 = boxes[best]
                l, t, r, b = x - x0, y - y0, x1 - x, y1 - y
                labels.append(classes[best])
                regs.append(np.array([l, t, r, b]) / s)
                ctrs.append(np.sqrt(min(l, r) / max(l, r) * min(t, b) / max(t, b)))
    return labels, regs, ctrs


def test_fcos_targets_match_the_assignment_rules():
    rng = np.random.default_rng(3)
    shapes, strides = [(16, 20), (8, 10), (4, 5), (2, 3), (1, 2)], (8, 16, 32, 64, 128)
    xy = rng.uniform(0, 120, (12, 2))
    wh = rng.uniform(6, 150, (12, 2))
    boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    boxes[-2:] = [[20, 20, 300, 140], [0, 0, 40, 30]]  # a large one (upper levels) and an overlapping small one
    classes = rng.integers(0, 4, 12)
    labels, reg, ctr = fcos_targets(shapes, strides, torch.from_numpy(boxes), torch.from_numpy(classes), 4)
    want_l, want_r, want_c = _fcos_targets_reference(shapes, strides, boxes.astype(np.float64), classes, 4)
    np.testing.assert_array_equal(labels.numpy(), want_l)
    pos = [i for i, v in enumerate(want_r) if v is not None]
    assert len(pos) > 30 and len(set(np.asarray(want_l)[pos])) > 2
    np.testing.assert_allclose(reg.numpy()[pos], np.stack([want_r[i] for i in pos]), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(ctr.numpy()[pos], [want_c[i] for i in pos], rtol=1e-5, atol=1e-6)


def test_proposal_matching_and_mask_targets():
    """Proposals (and the gt boxes, appended) with IoU >= 0.5 to a gt are foreground, matched to their best gt;
    mask targets are the matched gt mask cropped to the proposal."""
    rng = np.random.default_rng(4)
    gt = np.array([[10, 10, 50, 60], [40, 30, 90, 80]], np.float32)
    props = np.concatenate([gt + rng.normal(0, 4, (2, 4)), gt + rng.normal(0, 25, (2, 4)),
                            rng.uniform(0, 100, (20, 4))]).astype(np.float32)
    props[:, 2:] = np.maximum(props[:, 2:], props[:, :2] + 1)
    boxes, idx = match_proposals(props, gt, 100, np.random.default_rng(0))
    cand = np.concatenate([props, gt])
    want = []
    for i, c in enumerate(cand):
        ious = []
        for g in gt:
            iw = max(min(c[2], g[2]) - max(c[0], g[0]), 0)
            ih = max(min(c[3], g[3]) - max(c[1], g[1]), 0)
            inter = iw * ih
            ious.append(inter / ((c[2] - c[0]) * (c[3] - c[1]) + (g[2] - g[0]) * (g[3] - g[1]) - inter))
        if max(ious) >= 0.5:
            want.append((i, int(np.argmax(ious))))
    assert len(want) >= 4 and [tuple(b) for b in boxes] == [tuple(cand[i]) for i, _ in want]
    np.testing.assert_array_equal(idx, [g for _, g in want])
    few, _ = match_proposals(props, gt, 2, np.random.default_rng(0))
    assert len(few) == 2
    masks = np.zeros((2, 100, 100), bool)
    masks[0, 10:60, 10:30] = True  # the left half of gt box 0
    t = mask_targets(masks, gt[:1], np.array([0]))[0]
    assert t[:, :13].all() and not t[:, 15:].any()  # 28 columns over 40 px: the left 20 px are 14 columns


def test_mask_and_maskiou_losses():
    rng = np.random.default_rng(5)
    logits = torch.tensor(rng.normal(0, 2, (6, 3, 28, 28)))
    classes = torch.tensor([0, 2, 1, 1, 0, 2])
    targets = torch.tensor((rng.random((6, 28, 28)) < 0.4).astype(np.float64))
    iou_pred = torch.tensor(rng.uniform(0, 1, (6, 3)))
    got = mask_losses(logits, classes, targets, iou_pred)
    sel = logits.numpy()[np.arange(6), classes.numpy()]
    q, t = _sigmoid(sel), targets.numpy()
    assert got["loss_mask"].item() == pytest.approx(np.mean(-(t * np.log(q) + (1 - t) * np.log(1 - q))), rel=1e-9)
    pred = sel > 0
    iou = (pred & (t > 0.5)).sum((1, 2)) / (pred | (t > 0.5)).sum((1, 2))
    want = np.mean((iou_pred.numpy()[np.arange(6), classes.numpy()] - iou) ** 2)
    assert got["loss_maskiou"].item() == pytest.approx(want, rel=1e-6)  # the IoU target is computed in float32
