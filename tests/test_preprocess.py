"""Preprocessing: PIL-exact resize, the official size rule, padding with the normalised zero."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from cmlite.runtimes.preprocess import check_image, preprocess, resize_bilinear_pil, resized_size

from .conftest import IMAGE

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


def _official_tensor(img, min_size, max_size, fixed_hw=None):
    """The official preprocessing, written out independently: detectron2's size rule, PIL's resize through
    Image.resize, NCHW float32, padded with the mean to the next multiple of 32 (or into fixed_hw, scaled to fit).
    cmlite's one deviation: a side is padded to 64 at least (strips thinner than ~17:1), as OpenVINO needs."""
    rh, rw = resized_size(*img.shape[:2], min_size, max_size)
    if fixed_hw is None:
        ph, pw = max(-(-rh // 32) * 32, 64), max(-(-rw // 32) * 32, 64)
    else:
        (ph, pw), s = fixed_hw, min(fixed_hw[0] / rh, fixed_hw[1] / rw)
        if s < 1:
            rh, rw = max(min(int(rh * s + 0.5), ph), 1), max(min(int(rw * s + 0.5), pw), 1)
    resized = np.asarray(Image.fromarray(img).resize((rw, rh), Image.BILINEAR), np.float32)
    out = np.broadcast_to(np.float32(MEAN)[:, None, None], (3, ph, pw)).copy()
    out[:, :rh, :rw] = resized.transpose(2, 0, 1)
    return out[None], (rh, rw)


@pytest.mark.parametrize("seed", range(4))
def test_preprocessing_is_bit_exact_over_random_sizes(seed):
    """Many random sizes and aspect ratios (strips, tiny, large, up- and downscaled, fixed-size targets): the
    tensor equals the official preprocessing, written out independently above, bit for bit."""
    rng = np.random.default_rng(seed)
    for _ in range(15):
        h, w = (int(v) for v in np.exp(rng.uniform(0, np.log(1500), 2)).round().clip(1))
        min_size = int(rng.choice([96, 320, 600, 800]))
        max_size = int(min_size * rng.uniform(1, 2))
        fixed = None if rng.random() < 0.5 else (int(rng.integers(1, 20)) * 32, int(rng.integers(1, 20)) * 32)
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        pre = preprocess(img, min_size, max_size, MEAN, 32, fixed)
        want, hw = _official_tensor(img, min_size, max_size, fixed)
        assert pre.resized_hw == hw and pre.original_hw == (h, w), (h, w, min_size, max_size, fixed)
        np.testing.assert_array_equal(pre.tensor, want, err_msg=str((h, w, min_size, max_size, fixed)))


# Pillow 13.0.0's bilinear resize of crops of one random image, as sha256 prefixes: the official outputs were made
# with that Pillow, and the preprocessing calls the installed one. The numpy transcription of PIL's filter that
# cmlite used before missed by one level on about a quarter of such size pairs (Pillow runs the vertical pass
# first on some), which is why the resize is Pillow's own now.
PILLOW_13_RESIZES = [
    ((480, 640), (600, 800), "ac78e76e93b1375e"),
    ((480, 640), (320, 427), "ba2b42ffe6f833f6"),
    ((720, 1280), (300, 533), "85b1d39e785584f5"),
    ((1080, 1920), (562, 1000), "1ee451335aa5d8b4"),
    ((333, 500), (600, 901), "6ce9b99733a91ceb"),
    ((7, 23), (2, 35), "a3649776e3bc7405"),
    ((112, 21), (78, 6), "42afa06d409facb6"),
    ((253, 1), (9, 2), "4037c822de0152fc"),
    ((24, 67), (42, 2), "9b9756b0c459b5b9"),
    ((517, 2), (3, 13), "0efbb19323426953"),
    ((6, 66), (113, 120), "722088306e1883cd"),
    ((38, 5), (251, 2), "6b39042c18d38cb4"),
]


def test_the_installed_pillow_resizes_as_pillow_13():
    """A Pillow that resizes otherwise (a fork such as Pillow-SIMD, a changed algorithm) would shift every official
    output: it is named here."""
    import hashlib

    import PIL

    src = np.random.default_rng(0).integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    for (h, w), (oh, ow), digest in PILLOW_13_RESIZES:
        out = resize_bilinear_pil(np.ascontiguousarray(src[:h, :w]), oh, ow)
        got = hashlib.sha256(np.ascontiguousarray(out).tobytes()).hexdigest()[:16]
        assert got == digest, f"Pillow {PIL.__version__} resizes {h}x{w} -> {oh}x{ow} unlike Pillow 13.0.0"


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
    from cmlite import runtimes

    h, w = resized_size(*hw, 320, 533)
    assert min(h, w) >= 1 and max(h, w) <= 533
    img = np.random.default_rng(0).integers(0, 255, (*hw, 3), dtype=np.uint8)
    for fixed in (None, (320, 448)):
        p = preprocess(img, 320, 533, (103.53, 116.28, 123.675), 32, fixed)
        assert min(p.resized_hw) >= 1 and p.tensor.shape[2] % 32 == 0 and p.tensor.shape[3] % 32 == 0
        assert min(p.tensor.shape[2:]) >= 64  # two steps at least: OpenVINO refuses a 1-pixel map at stride 32
    inst = runtimes.load(default_onnx, threads=1).predict(img)
    assert inst.masks.shape[1:] == hw and len(inst.boxes) == len(inst.masks)
    if len(inst):
        assert (inst.boxes[:, [0, 2]] <= hw[1]).all() and (inst.boxes[:, [1, 3]] <= hw[0]).all()


@pytest.mark.parametrize("hw", [(100, 10000), (100, 3000), (3000, 100)])
def test_long_thin_images_run_on_openvino_as_on_onnx_runtime(hw, default_models):
    """Before: OpenVINO raised "MaxPool ... Kernel ... larger than the data shape" on a 10000x100 image (a 32-pixel
    side gives a 1-pixel map at stride 32). Now every input has two steps a side, and OpenVINO finds what ONNX Runtime
    finds."""
    from cmlite import runtimes

    img = cv2.resize(cv2.imread(str(IMAGE)), hw[::-1])
    ort = runtimes.load(default_models["onnx-fp32"], threads=2).predict(img)
    ov = runtimes.load(default_models["openvino-fp32"], threads=2).predict(img)
    assert len(ov) == len(ort)
    np.testing.assert_allclose(ov.boxes, ort.boxes, atol=0.05)
    np.testing.assert_allclose(ov.scores, ort.scores, atol=1e-4)


def test_the_fast_resize_stays_within_grey_levels_of_the_official_one():
    """The camera's fast path (a Gaussian as wide as Pillow's antialiasing, then OpenCV's bilinear) against
    Pillow's filter on a webcam frame: the same tensor geometry and padding, the pixels within a few grey levels
    (bilinear alone was off by 1.1 on average, 7 at the 99th percentile); not resizing is exact either way."""
    from cmlite.calibration.synth_scene import MovingScene
    from cmlite.runtimes.preprocess import preprocess

    frame = MovingScene(640, 480, seed=3).render(1.0)
    exact = preprocess(frame, 320, 533, (103.5, 116.3, 123.7))
    fast = preprocess(frame, 320, 533, (103.5, 116.3, 123.7), resize="fast")
    assert fast.tensor.shape == exact.tensor.shape and fast.resized_hw == exact.resized_hw == (320, 427)
    rh, rw = exact.resized_hw
    diff = np.abs(fast.tensor[..., :rh, :rw] - exact.tensor[..., :rh, :rw])
    assert diff.mean() < 0.6 and np.percentile(diff, 99) <= 3, (diff.mean(), np.percentile(diff, 99))
    np.testing.assert_array_equal(fast.tensor[..., rh:, :], exact.tensor[..., rh:, :])  # the padding
    same = preprocess(frame[:320, :427].copy(), 320, 533, (0, 0, 0), resize="fast")  # already at the size
    np.testing.assert_array_equal(same.tensor, preprocess(frame[:320, :427].copy(), 320, 533, (0, 0, 0)).tensor)
