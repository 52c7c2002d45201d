"""Drawing instances on an image: translucent masks, outlines, boxes and labels (OpenCV only)."""
from __future__ import annotations

import cv2
import numpy as np

from runtimes.instances import Instances


def color(i: int) -> tuple[int, int, int]:
    """A stable, well-spread BGR colour per class."""
    hue = (i * 0.618033988749895) % 1.0
    hsv = np.uint8([[[int(hue * 179), 200, 255]]])
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])


def draw(image: np.ndarray, inst: Instances, alpha: float = 0.5, min_score: float = 0.0) -> np.ndarray:
    out = image.copy()
    keep = [i for i in range(len(inst)) if inst.scores[i] >= min_score]
    for i in reversed(keep):  # highest score drawn last, on top
        col = np.array(color(int(inst.classes[i])), np.float32)
        m = inst.masks[i]
        out[m] = (out[m] * (1 - alpha) + col * alpha).astype(np.uint8)
        contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, tuple(int(c) for c in col), 1, cv2.LINE_AA)
    scale = max(0.35, min(out.shape[:2]) / 1200)
    for i in keep:
        c = color(int(inst.classes[i]))
        x1, y1, x2, y2 = (int(round(float(v))) for v in inst.boxes[i])
        cv2.rectangle(out, (x1, y1), (x2, y2), c, 1, cv2.LINE_AA)
        text = f"{inst.label(i)} {inst.scores[i]:.2f}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        ty = max(y1, th + base)
        cv2.rectangle(out, (x1, ty - th - base), (x1 + tw, ty), c, -1)
        cv2.putText(out, text, (x1, ty - base), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return out
