"""Training targets: FCOS per-location targets, and the mask/MaskIoU targets of matched proposals."""
from __future__ import annotations

import numpy as np
import torch

from cmlite.runtimes.decode import box_iou_matrix, locations as level_locations
from cmlite.runtimes.roi_align import roi_align as np_roi_align

SIZES_OF_INTEREST = ((0, 64), (64, 128), (128, 256), (256, 512), (512, float("inf")))
CENTER_RADIUS = 1.5


def fcos_targets(shapes: list[tuple[int, int]], strides, boxes: torch.Tensor, classes: torch.Tensor,
                 num_classes: int):
    """One image. shapes: (h, w) of each level; boxes (G, 4) xyxy; classes (G,).

    Returns labels (L,) with num_classes for background, reg (L, 4) in stride units, ctr (L,),
    over all levels concatenated in the order the head's outputs are flattened (level, row, column).
    """
    locs, stride_of, lo_of, hi_of = [], [], [], []
    for (h, w), s, (lo, hi) in zip(shapes, strides, SIZES_OF_INTEREST):
        loc = torch.from_numpy(level_locations(h, w, s))
        locs.append(loc)
        n = len(loc)
        stride_of.append(torch.full((n,), float(s)))
        lo_of.append(torch.full((n,), float(lo)))
        hi_of.append(torch.full((n,), float(hi)))
    loc, stride, lo, hi = (torch.cat(x) for x in (locs, stride_of, lo_of, hi_of))
    n_loc = len(loc)
    if len(boxes) == 0:
        return torch.full((n_loc,), num_classes, dtype=torch.long), torch.zeros(n_loc, 4), torch.zeros(n_loc)
    x, y = loc[:, 0:1], loc[:, 1:2]
    ltrb = torch.stack([x - boxes[:, 0], y - boxes[:, 1], boxes[:, 2] - x, boxes[:, 3] - y], dim=2)  # (L, G, 4)
    # centre sampling: inside a box of radius 1.5 strides around the gt centre (clipped to the gt)
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    r = stride[:, None] * CENTER_RADIUS
    cb = torch.stack([torch.maximum(cx - r, boxes[:, 0]), torch.maximum(cy - r, boxes[:, 1]),
                      torch.minimum(cx + r, boxes[:, 2]), torch.minimum(cy + r, boxes[:, 3])], dim=2)
    in_centre = (x > cb[..., 0]) & (y > cb[..., 1]) & (x < cb[..., 2]) & (y < cb[..., 3])
    max_reg = ltrb.max(dim=2).values
    cared = (max_reg >= lo[:, None]) & (max_reg <= hi[:, None])
    area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))[None].expand(n_loc, -1).clone()
    area[~(in_centre & cared)] = float("inf")
    min_area, gt_idx = area.min(dim=1)
    labels = classes[gt_idx].clone()
    labels[torch.isinf(min_area)] = num_classes
    reg = ltrb[torch.arange(n_loc), gt_idx] / stride[:, None]
    lr, tb = reg[:, [0, 2]], reg[:, [1, 3]]
    ctr = torch.sqrt((lr.min(1).values / lr.max(1).values.clamp(min=1e-6)).clamp(min=0)
                     * (tb.min(1).values / tb.max(1).values.clamp(min=1e-6)).clamp(min=0))
    return labels, reg, ctr


def match_proposals(proposals: np.ndarray, gt_boxes: np.ndarray, max_pos: int, rng: np.random.Generator,
                    iou_thresh: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Foreground proposals for the mask head, the gt boxes appended (as detectron2 does).

    Returns (boxes (P, 4), matched gt index (P,)), at most max_pos, sampled at random."""
    cand = np.concatenate([proposals.reshape(-1, 4), gt_boxes]).astype(np.float32)
    if len(gt_boxes) == 0:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
    iou = box_iou_matrix(cand, gt_boxes)
    best, idx = iou.max(axis=1), iou.argmax(axis=1)
    fg = np.nonzero(best >= iou_thresh)[0]
    if len(fg) > max_pos:
        fg = rng.choice(fg, max_pos, replace=False)
    return cand[fg], idx[fg]


def mask_targets(gt_masks: np.ndarray, boxes: np.ndarray, gt_idx: np.ndarray, size: int = 28) -> np.ndarray:
    """Each matched gt mask cropped to its proposal and resized by aligned RoIAlign, thresholded (R, size, size)."""
    out = np.zeros((len(boxes), size, size), np.float32)
    for i, (box, g) in enumerate(zip(boxes, gt_idx)):
        m = gt_masks[g].astype(np.float32)[None]
        out[i] = np_roi_align([m], box[None], np.zeros(1, np.int64), (1,), size)[0, 0] >= 0.5
    return out
