"""RoIAlign and level assignment against a literal transcription of the official kernels."""
from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from cmlite.runtimes.roi_align import assign_levels, roi_align


def kernel_roi_align(feat: np.ndarray, box, scale: float, out: int) -> np.ndarray:
    """torchvision's ROIAlign CPU forward (aligned=True, sampling_ratio=0), loop for loop."""
    c, height, width = feat.shape
    x1, y1, x2, y2 = (float(np.float32(v)) * scale - 0.5 for v in box)
    roi_w, roi_h = x2 - x1, y2 - y1
    bin_h, bin_w = roi_h / out, roi_w / out
    gh, gw = math.ceil(roi_h / out), math.ceil(roi_w / out)
    count = max(gh * gw, 1)
    res = np.zeros((c, out, out))
    for ph in range(out):
        for pw in range(out):
            acc = np.zeros(c)
            for iy in range(gh):
                y = y1 + ph * bin_h + (iy + 0.5) * bin_h / gh
                for ix in range(gw):
                    x = x1 + pw * bin_w + (ix + 0.5) * bin_w / gw
                    if y < -1.0 or y > height or x < -1.0 or x > width:
                        continue
                    yy, xx = max(y, 0.0), max(x, 0.0)
                    yl, xl = int(yy), int(xx)
                    if yl >= height - 1:
                        yh = yl = height - 1
                        yy = yl
                    else:
                        yh = yl + 1
                    if xl >= width - 1:
                        xh = xl = width - 1
                        xx = xl
                    else:
                        xh = xl + 1
                    ly, lx = yy - yl, xx - xl
                    hy, hx = 1 - ly, 1 - lx
                    acc += (hy * hx * feat[:, yl, xl] + hy * lx * feat[:, yl, xh]
                            + ly * hx * feat[:, yh, xl] + ly * lx * feat[:, yh, xh])
            res[:, ph, pw] = acc / count
    return res


BOXES = [
    [10.3, 12.7, 55.1, 40.2],  # inside
    [-30.0, -12.0, 20.0, 30.0],  # crosses the top-left border
    [40.0, 20.0, 130.0, 90.0],  # crosses the bottom-right border, beyond the map
    [20.0, 20.0, 21.5, 22.0],  # tiny: one sample per bin
    [0.0, 0.0, 64.0, 48.0],  # the whole map
    [30.0, 30.0, 30.0, 40.0],  # zero width
    [-60.0, -60.0, -40.0, -30.0],  # entirely outside
    [3.0, 250.0, 700.0, 251.0],  # long and thin, mostly outside
]


@pytest.mark.parametrize("box", BOXES)
@pytest.mark.parametrize("stride", [8, 16])
def test_roi_align_matches_kernel(box, stride):
    rng = np.random.default_rng(0)
    h, w = 48 // (stride // 8), 64 // (stride // 8)
    feat = rng.standard_normal((3, h, w)).astype(np.float32)
    got = roi_align([feat], np.array([box], np.float32) * (stride / 8), np.array([0]), (stride,), 7)[0]
    want = kernel_roi_align(feat, np.array(box) * (stride / 8), 1 / stride, 7)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_roi_align_on_one_pixel_maps():
    feat = np.arange(2, dtype=np.float32).reshape(2, 1, 1)
    box = np.array([[-10.0, -4.0, 40.0, 20.0]], np.float32)
    got = roi_align([feat], box, np.array([0]), (32,), 14)[0]
    np.testing.assert_allclose(got, kernel_roi_align(feat, box[0], 1 / 32, 14), atol=1e-6)


def test_level_assignment_is_centermask_eq2():
    img_hw = (600, 800)
    img_area = 600 * 800
    boxes, want = [], []
    for side_ratio in [0.05, 0.3, 0.49, 0.51, 0.7, 0.72, 1.0, 2.0]:
        bw = bh = math.sqrt(img_area * side_ratio ** 2)
        boxes.append([-5, -5, -5 + bw, -5 + bh])  # unclipped boxes count at full area
        lvl = math.ceil(5 - math.log2(img_area / (bw * bh) + sys.float_info.epsilon))
        want.append(min(max(lvl, 3), 5) - 3)
    got = assign_levels(np.array(boxes, np.float32), img_hw)
    np.testing.assert_array_equal(got, want)
    assert got[0] == 0 and got[-1] == 2  # small boxes pool from P3 (a quarter of the image or less)
    assert assign_levels(np.array([[0, 0, 400, 300]], np.float32), img_hw)[0] == 0  # exactly a quarter


def test_degenerate_boxes_do_not_crash():
    got = assign_levels(np.array([[5, 5, 5, 9], [1, 1, 1, 1]], np.float32), (600, 800))
    np.testing.assert_array_equal(got, [0, 0])
    assert roi_align([np.zeros((4, 8, 8), np.float32)], np.zeros((0, 4), np.float32),
                     np.zeros(0, np.int64), (8,), 14).shape == (0, 4, 14, 14)
