"""Other input shapes end to end on the reference model: wide, portrait, tiny, and the padded area."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from cmlite import lite

from .conftest import IMAGE


@pytest.fixture(scope="module")
def image():
    return cv2.imread(str(IMAGE))


def _check(inst, hw):
    assert inst.masks.shape == (len(inst), *hw)
    b = inst.boxes
    assert np.all(b[:, 0] >= 0) and np.all(b[:, 1] >= 0) and np.all(b[:, 2] <= hw[1]) and np.all(b[:, 3] <= hw[0])
    assert np.all(b[:, 2] > b[:, 0]) and np.all(b[:, 3] > b[:, 1])
    assert np.all(np.diff(inst.scores) <= 0)
    for m, box in zip(inst.masks, b):  # every mask lies inside its clipped box (grown by the paste margin)
        ys, xs = np.nonzero(m)
        if len(xs):
            assert xs.min() >= np.floor(box[0]) - 1 and xs.max() <= np.ceil(box[2])
            assert ys.min() >= np.floor(box[1]) - 1 and ys.max() <= np.ceil(box[3])


@pytest.mark.parametrize("hw,resized,padded", [
    ((240, 1600), (150, 1000), (160, 1024)),  # wide: long side capped at 1000
    ((640, 480), (800, 600), (800, 608)),  # portrait
    ((1000, 50), (1000, 50), (1024, 64)),  # tiny short side: P6/P7 are one pixel wide
])
def test_shapes_run_end_to_end(ref_model, image, hw, resized, padded):
    img = cv2.resize(image, (hw[1], hw[0]), interpolation=cv2.INTER_AREA)
    trace: dict = {}
    inst = lite.predictor(ref_model).predict(img, trace)
    pre = trace["preprocessed"]
    assert pre.resized_hw == resized and pre.tensor.shape[2:] == padded
    shapes = [lg.shape[1:] for lg, _, _ in trace["dense"].levels]
    assert shapes[0] == (padded[0] // 8, padded[1] // 8)
    if hw == (1000, 50):
        assert shapes[3][1] == 1 and shapes[4] == (8, 1)
    _check(inst, hw)


def test_detections_from_the_padded_area_are_clipped_or_dropped(ref_model, image):
    # 500x40 -> resized 1000x80, padded to 1024x96: a 16 px wide strip of padding on the right
    img = cv2.resize(image, (40, 500), interpolation=cv2.INTER_AREA)
    seg = lite.predictor(ref_model, score_thresh=0.01, post_nms_topk=300)
    trace: dict = {}
    inst = seg.predict(img, trace)
    props = trace["proposals"]
    assert (props.locations[:, 0] >= 80).any(), "the test needs detections located in the padding"
    b = props.boxes  # resized frame 1000x80: a box survives when it overlaps the image after clipping
    overlaps = (b[:, 0] < 80) & (b[:, 2] > 0) & (b[:, 1] < 1000) & (b[:, 3] > 0)
    assert len(inst) == int(overlaps.sum())
    _check(inst, (500, 40))


def test_no_detections_gives_empty_instances(ref_model, image):
    inst = lite.predictor(ref_model, score_thresh=0.999).predict(image)
    assert len(inst) == 0 and inst.masks.shape == (0, 480, 640)


def test_small_test_size_and_one_pixel_p7(ref_model, image):
    trace: dict = {}
    inst = lite.predictor(ref_model, min_size=100, max_size=167).predict(image, trace)
    assert trace["preprocessed"].tensor.shape[2:] == (128, 160)
    assert trace["dense"].levels[4][0].shape[1:] == (1, 2)
    _check(inst, (480, 640))


def test_batch_of_two_equals_two_singles(ref_model):
    x = torch.from_numpy(np.random.default_rng(0).uniform(0, 255, (2, 3, 64, 96)).astype(np.float32))
    with torch.inference_mode():
        both = ref_model.dense(x)
        one = ref_model.dense(x[1:])
    for a, b in zip(both[0] + both[3], one[0] + one[3]):
        torch.testing.assert_close(a[1:], b, rtol=1e-4, atol=1e-4)
