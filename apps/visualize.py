"""Drawing instances on an image: translucent masks, outlines, boxes and labels that do not pile up (OpenCV only).

Masks are drawn from each instance's box region (Instances.box_masks), never from full-frame masks: 16 instances
on a 640x480 frame take about a millisecond.
"""
from __future__ import annotations

import functools

import cv2
import numpy as np

from cmlite.runtimes.instances import Instances

FONT = cv2.FONT_HERSHEY_SIMPLEX


@functools.lru_cache(maxsize=1024)
def color(i: int) -> tuple[int, int, int]:
    """A stable, well-spread BGR colour per class."""
    hue = (i * 0.618033988749895) % 1.0
    hsv = np.uint8([[[int(hue * 179), 200, 255]]])
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])


@functools.lru_cache(maxsize=1024)
def _tint(col: tuple[int, int, int], alpha: float) -> np.ndarray:
    """cv2.transform's 3x4 matrix for x * (1 - alpha) + col * alpha."""
    return np.hstack([(1 - alpha) * np.eye(3), alpha * np.float64(col)[:, None]])


def _overlaps(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def place_labels(boxes: np.ndarray, sizes: list[tuple[int, int]], image_hw: tuple[int, int],
                 occupied=()) -> list:
    """Where each label goes: (x1, y1, x2, y2) of its background, or None when it fits nowhere free.

    Labels are placed in the given order (best first). Each tries above its box's top-left corner, inside it,
    below the box, inside at the bottom, then the same corners on the right, then steps down the box's left
    edge; the first spot inside the image that covers no label placed before, and none of the `occupied`
    rectangles (the camera's status panel), wins."""
    h, w = image_hw
    placed, out = [tuple(r) for r in occupied], []
    for (x1, y1, x2, y2), (tw, th) in zip(np.round(boxes).astype(int).tolist(), sizes):
        spots = [(x1, y1 - th), (x1, y1), (x1, y2), (x1, y2 - th), (x2 - tw, y1 - th), (x2 - tw, y1),
                 (x2 - tw, y2), (x2 - tw, y2 - th)]
        spots += [(x1, y) for y in range(y1 + th, y2 - th, max(th // 2, 1))]
        spot = None
        for x, y in spots:
            x, y = min(max(x, 0), max(w - tw, 0)), min(max(y, 0), max(h - th, 0))
            rect = (x, y, x + tw, y + th)
            if not any(_overlaps(rect, p) for p in placed):
                spot = rect
                break
        out.append(spot)
        if spot is not None:
            placed.append(spot)
    return out


def draw(image: np.ndarray, inst: Instances, alpha: float = 0.5, min_score: float = 0.0, masks: bool = True,
         inplace: bool = False, avoid=()) -> np.ndarray:
    """The instances scoring at least min_score; labels kept out of the `avoid` rectangles (x1, y1, x2, y2)."""
    out = image if inplace else image.copy()
    keep = [i for i in np.argsort(-inst.scores, kind="stable").tolist() if inst.scores[i] >= min_score]
    bm = inst.box_masks
    if masks:
        for i in reversed(keep):  # highest score drawn last, on top
            crop = bm.crops[i].view(np.uint8)
            if not crop.size:
                continue
            col = color(int(inst.classes[i]))
            region = out[bm.region(i)]
            cv2.copyTo(cv2.transform(region, _tint(col, alpha)), crop, region)  # blended inside the mask only
            contours, _ = cv2.findContours(crop, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(region, contours, -1, col, 1, cv2.LINE_AA)
    scale = max(0.35, min(out.shape[:2]) / 1200)
    texts = [f"{inst.label(i)} {inst.scores[i]:.2f}" for i in keep]
    sizes, bases = [], []
    for text in texts:
        (tw, th), base = cv2.getTextSize(text, FONT, scale, 1)
        sizes.append((tw + 2, th + base + 2))
        bases.append(base)
    for i in keep:
        x1, y1, x2, y2 = (int(round(float(v))) for v in inst.boxes[i])
        cv2.rectangle(out, (x1, y1), (x2, y2), color(int(inst.classes[i])), 1, cv2.LINE_AA)
    spots = place_labels(inst.boxes[keep].reshape(-1, 4), sizes, out.shape[:2], avoid)
    for i, text, spot, base in zip(keep, texts, spots, bases):
        if spot is None:  # no free spot: the box and mask still show it
            continue
        x1, y1, x2, y2 = spot
        cv2.rectangle(out, (x1, y1), (x2 - 1, y2 - 1), color(int(inst.classes[i])), -1)
        cv2.putText(out, text, (x1 + 1, y2 - 1 - base), FONT, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return out
