"""The rewritten host work (runtimes/decode.py, roi_align.py, paste.py) against the implementation it replaced
(tests/previous_host.py), on recorded cases: the official reference's graph outputs (V-19-eSE, 80 classes, 608x800,
50 detections, boxes across the border), a recorded frame of the embedded default model (8 classes, 16 detections,
tests/data), and random stress cases (thousands of candidates, tied scores, zero-area boxes, boxes off the map).

Decode, level assignment and paste must give the same results bit for bit. RoIAlign sums the same products in
another order (two matrix products over all channels instead of one per channel), so it agrees to float32
rounding."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cmlite.runtimes.decode import decode
from cmlite.runtimes.paste import paste_masks, scale_clip_boxes
from cmlite.runtimes.roi_align import assign_levels, roi_align
from tests import previous_host as old

STRIDES, POOLER = (8, 16, 32, 64, 128), (8, 16, 32)
DATA = Path(__file__).parent / "data"


def _reference_case(reference):
    r = reference
    levels = [(r[f"fcos.logits.l{i}"][0], r[f"fcos.bbox_reg.l{i}"][0], r[f"fcos.ctrness.l{i}"][0]) for i in range(5)]
    return dict(levels=levels, features=[r[f"fpn.p{i}"][0] for i in (3, 4, 5)], resized=(600, 800),
                original=(480, 640), topn=50, probs=r["raw.mask_probs"][:, 0])


def _default_case():
    d = {k: v.astype(np.float32) if v.dtype == np.float16 else v
         for k, v in np.load(DATA / "default_dense_320x448.npz").items()}
    levels = [(d[f"logits_{i}"], d[f"bbox_reg_{i}"], d[f"ctrness_{i}"]) for i in range(5)]
    return dict(levels=levels, features=[d[f"p{i}"] for i in (3, 4, 5)], resized=tuple(d["resized_hw"]),
                original=tuple(d["original_hw"]), topn=16, probs=d["mask_probs"][:, 0])


def _random_case(seed: int):
    """Dense outputs of a 96x128 input with 6 classes: many candidates, scores quantized so that ties occur,
    some zero regressions (point boxes), large regressions (boxes far off the map)."""
    rng = np.random.default_rng(seed)
    levels = []
    for s in STRIDES:
        h, w = -(-96 // s), -(-128 // s)
        logits = np.round(rng.normal(-1.5, 1.5, (6, h, w)), 1).astype(np.float32)  # ties
        reg = rng.gamma(2.0, 1.5, (4, h, w)).astype(np.float32)
        reg[:, rng.random((h, w)) < 0.08] = 0  # point boxes
        reg[:, rng.random((h, w)) < 0.05] *= 20  # far outside
        ctr = np.round(rng.normal(0, 1.5, (1, h, w)), 1).astype(np.float32)
        levels.append((logits, reg, ctr))
    features = [rng.standard_normal((16, -(-96 // s), -(-128 // s))).astype(np.float32) for s in POOLER]
    grid = np.linspace(0, 6, 28)
    probs = (0.5 + 0.5 * np.sin(grid[None, :, None] * rng.uniform(0.5, 2, (30, 1, 1)) + grid[None, None, :]))
    return dict(levels=levels, features=features, resized=(96, 128), original=(150, 200), topn=30,
                probs=probs.astype(np.float32))


def _cases(reference):
    yield "official reference", _reference_case(reference)
    yield "default model frame", _default_case()
    for seed in range(4):
        yield f"random {seed}", _random_case(seed)


def test_decode_levels_roi_align_and_paste_equal_the_previous_implementation(reference):
    for name, c in _cases(reference):
        args = (STRIDES, 0.05, 1000, 0.6, c["topn"])
        want, got = old.decode(c["levels"], *args), decode(c["levels"], *args)
        assert len(want) > 0, name
        for field in ("boxes", "scores", "classes", "locations"):
            np.testing.assert_array_equal(getattr(got, field), getattr(want, field), err_msg=f"{name}: {field}")
        levels = assign_levels(got.boxes, c["resized"])
        np.testing.assert_array_equal(levels, old.assign_levels(want.boxes, c["resized"]), err_msg=name)
        pooled, pooled_old = (f(c["features"], got.boxes, levels, POOLER, 14) for f in (roi_align, old.roi_align))
        scale = np.abs(pooled_old).max()
        np.testing.assert_allclose(pooled, pooled_old, rtol=1e-5, atol=1e-6 * scale, err_msg=name)
        boxes, keep = scale_clip_boxes(got.boxes, c["resized"], c["original"])
        probs = c["probs"][:len(boxes)][keep[:len(c["probs"])]]
        kept = boxes[keep][:len(probs)]
        masks = paste_masks(probs, kept, c["original"])
        np.testing.assert_array_equal(masks.full(), old.paste_masks(probs, kept, c["original"]), err_msg=name)


@pytest.mark.parametrize("n", [0, 1, 2, 49, 50, 51, 2000])
def test_nms_on_a_prefix_keeps_what_nms_on_all_keeps(n):
    """decode's NMS runs on the best candidates only (grown until it keeps N): the top N it returns must be what
    NMS over every candidate, then top N, returns, ties at the cut included."""
    from cmlite.runtimes.decode import batched_nms, nms_top, select_top

    rng = np.random.default_rng(n)
    m = 3000
    xy = rng.uniform(0, 400, (m, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(0, 80, (m, 2))], axis=1).astype(np.float32)
    scores = np.round(rng.random(m), 2).astype(np.float32)  # many ties
    classes = rng.integers(0, 5, m)
    full = batched_nms(boxes, scores, classes, 0.6)
    want = full[select_top(scores[full], n)]
    got = nms_top(boxes, scores, classes, 0.6, n)
    got = got[select_top(scores[got], n)]
    np.testing.assert_array_equal(got, want)
