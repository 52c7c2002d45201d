"""Preprocessing: PIL-exact resize, the official size rule, padding with the normalised zero."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from runtimes.preprocess import check_image, preprocess, resize_bilinear_pil, resized_size

MEAN = (103.530, 116.280, 123.675)


@pytest.mark.parametrize("hw,out", [((480, 640), (600, 800)), ((1080, 1920), (562, 1000)), ((37, 53), (600, 859)),
                                    ((3, 1000), (6, 1000)), ((999, 17), (1000, 17)), ((1, 1), (600, 600)),
                                    ((720, 1280), (300, 533)), ((601, 599), (600, 598)), ((50, 70), (50, 70))])
def test_resize_is_bit_exact_with_pil(hw, out):
    img = np.random.default_rng(sum(hw)).integers(0, 256, (*hw, 3), dtype=np.uint8)
    want = np.asarray(Image.fromarray(img).resize((out[1], out[0]), Image.BILINEAR))
    np.testing.assert_array_equal(resize_bilinear_pil(img, *out), want)


@pytest.mark.parametrize("hw,want", [((480, 640), (600, 800)), ((640, 480), (800, 600)), ((300, 1000), (300, 1000)),
                                     ((100, 2000), (50, 1000)), ((1000, 60), (1000, 60)), ((10, 10), (600, 600)),
                                     ((333, 500), (600, 901)), ((1080, 1920), (562, 1000))])
def test_resized_size_follows_resize_shortest_edge(hw, want):
    assert resized_size(*hw, 600, 1000) == want


def test_padding_is_mean_and_divisible():
    img = np.full((100, 2000, 3), 7, np.uint8)  # wide: 50x1000 after the cap
    pre = preprocess(img, 600, 1000, MEAN)
    assert pre.resized_hw == (50, 1000) and pre.tensor.shape == (1, 3, 64, 1024)
    assert pre.tensor.dtype == np.float32
    np.testing.assert_array_equal(pre.tensor[0, :, :50, :1000], 7)
    np.testing.assert_allclose(pre.tensor[0, :, 50:, :], np.broadcast_to(np.float32(MEAN)[:, None, None], (3, 14, 1024)))
    np.testing.assert_allclose(pre.tensor[0, :, :, 1000:], np.broadcast_to(np.float32(MEAN)[:, None, None], (3, 64, 24)))
    # normalised, the padding is exactly zero, as the official model pads
    assert np.all(pre.tensor[0, :, 50:, :] - np.float32(MEAN)[:, None, None] == 0)


def test_fixed_size_pads_and_shrinks_what_does_not_fit():
    img = np.zeros((480, 640, 3), np.uint8)
    pre = preprocess(img, 320, 533, MEAN, fixed_hw=(416, 544))
    assert pre.tensor.shape == (1, 3, 416, 544) and pre.resized_hw == (320, 427)
    pre = preprocess(img, 600, 1000, MEAN, fixed_hw=(416, 544))  # 600x800 does not fit: scaled to fit
    assert pre.tensor.shape == (1, 3, 416, 544) and pre.resized_hw == (408, 544)
    pre = preprocess(np.zeros((640, 480, 3), np.uint8), 600, 1000, MEAN, fixed_hw=(608, 800))  # portrait
    assert pre.resized_hw == (608, 456) and pre.tensor.shape == (1, 3, 608, 800)


def test_odd_images_are_converted_or_refused():
    assert check_image(np.zeros((4, 5), np.uint8)).shape == (4, 5, 3)
    assert check_image(np.zeros((4, 5, 4), np.uint8)).shape == (4, 5, 3)
    assert check_image(np.zeros((4, 5, 1), np.uint8)).shape == (4, 5, 3)
    with pytest.raises(ValueError, match="uint8"):
        check_image(np.zeros((4, 5, 3), np.float32))
    with pytest.raises(ValueError, match="HxWx3"):
        check_image(np.zeros((4, 5, 2), np.uint8))
    with pytest.raises(ValueError, match="empty"):
        check_image(np.zeros((0, 5, 3), np.uint8))
    with pytest.raises(ValueError, match="numpy"):
        check_image([[1, 2]])


@pytest.mark.parametrize("hw", [(1, 3000), (3000, 1), (2, 3000), (1, 1)])
def test_extreme_aspect_ratios_keep_a_pixel(hw, default_onnx):
    """A 1x3000 strip resizes to 0.18 x 533 px: the side is kept at 1 px (it crashed in resize before), and the
    whole pipeline runs on it, dynamic and fixed-size, the masks in the original frame."""
    import runtimes

    h, w = resized_size(*hw, 320, 533)
    assert min(h, w) >= 1 and max(h, w) <= 533
    img = np.random.default_rng(0).integers(0, 255, (*hw, 3), dtype=np.uint8)
    for fixed in (None, (320, 448)):
        p = preprocess(img, 320, 533, (103.53, 116.28, 123.675), 32, fixed)
        assert min(p.resized_hw) >= 1 and p.tensor.shape[2] % 32 == 0 and p.tensor.shape[3] % 32 == 0
    inst = runtimes.load(default_onnx, threads=1).predict(img)
    assert inst.masks.shape[1:] == hw and len(inst.boxes) == len(inst.masks)
    if len(inst):
        assert (inst.boxes[:, [0, 2]] <= hw[1]).all() and (inst.boxes[:, [1, 3]] <= hw[0]).all()
