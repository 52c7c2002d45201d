"""Mask paste against detectron2's grid_sample paste (CPU path: one mask at a time, box grown by 1 px)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cmlite.runtimes.paste import paste_masks, scale_clip_boxes


def detectron2_paste(mask: np.ndarray, box: np.ndarray, h: int, w: int) -> np.ndarray:
    boxes = torch.from_numpy(box[None].astype(np.float32))
    x0_int, y0_int = torch.clamp(boxes.min(dim=0).values.floor()[:2] - 1, min=0).to(dtype=torch.int32)
    x1_int = torch.clamp(boxes[:, 2].max().ceil() + 1, max=w).to(dtype=torch.int32)
    y1_int = torch.clamp(boxes[:, 3].max().ceil() + 1, max=h).to(dtype=torch.int32)
    x0, y0, x1, y1 = torch.split(boxes, 1, dim=1)
    img_y = torch.arange(y0_int, y1_int, dtype=torch.float32) + 0.5
    img_x = torch.arange(x0_int, x1_int, dtype=torch.float32) + 0.5
    img_y = (img_y - y0) / (y1 - y0) * 2 - 1
    img_x = (img_x - x0) / (x1 - x0) * 2 - 1
    gx = img_x[:, None, :].expand(1, img_y.size(1), img_x.size(1))
    gy = img_y[:, :, None].expand(1, img_y.size(1), img_x.size(1))
    grid = torch.stack([gx, gy], dim=3)
    pasted = F.grid_sample(torch.from_numpy(mask)[None, None], grid, align_corners=False)[0, 0]
    out = np.zeros((h, w), bool)
    out[int(y0_int):int(y1_int), int(x0_int):int(x1_int)] = (pasted >= 0.5).numpy()
    return out


@pytest.mark.parametrize("seed", range(6))
def test_paste_matches_detectron2(seed):
    rng = np.random.default_rng(seed)
    h, w = 120, 160
    x0, y0 = rng.uniform(0, 100, 2)
    box = np.array([x0, y0, min(x0 + rng.uniform(1, 150), w), min(y0 + rng.uniform(1, 100), h)], np.float32)
    # smooth probabilities with many values near 0.5, the hardest case for agreement
    mask = (0.5 + 0.5 * np.sin(np.linspace(0, 6, 28)[:, None] + np.linspace(0, 4, 28)[None] * (seed + 1)))
    mask = mask.astype(np.float32)
    got = paste_masks(mask[None], box[None], (h, w)).full()[0]
    want = detectron2_paste(mask, box, h, w)
    assert (got != want).sum() <= 2  # float rounding at exactly 0.5 only


def test_full_mask_covers_the_pixel_centres_inside_the_box():
    mask = np.ones((28, 28), np.float32)
    box = np.array([100.2, 50.7, 700.0, 400.0], np.float32)
    got = paste_masks(mask[None], box[None], (480, 800)).full()[0]
    want = detectron2_paste(mask, box, 480, 800)
    np.testing.assert_array_equal(got, want)
    cols, rows = np.nonzero(got.any(axis=0))[0], np.nonzero(got.any(axis=1))[0]
    assert (cols.min(), cols.max(), rows.min(), rows.max()) == (100, 699, 51, 399)


def test_scale_clip_drops_empty_boxes():
    boxes = np.array([[10, 10, 50, 50], [-30, -30, -1, 20], [790, 590, 900, 700], [-5, 10, 30, 20]], np.float32)
    out, keep = scale_clip_boxes(boxes, (600, 800), (480, 640))
    np.testing.assert_array_equal(keep, [True, False, True, True])
    np.testing.assert_allclose(out[0], [8, 8, 40, 40])
    np.testing.assert_allclose(out[2], [632, 472, 640, 480])
    np.testing.assert_allclose(out[3], [0, 8, 24, 16])
