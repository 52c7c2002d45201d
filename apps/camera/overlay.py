"""The camera app's status panel and banners, drawn over the segmented frame (OpenCV only)."""
from __future__ import annotations

import cv2
import numpy as np

from ..table import plural
from .frame_stats import STAGES

FONT = cv2.FONT_HERSHEY_SIMPLEX
SHORT = {"preprocess": "pre", "graph1": "g1", "graph2": "g2"}  # the panel's short names; the others as they are
STAGE_LABELS = tuple((s, SHORT.get(s, s)) for s in STAGES if s != "output")  # output: the panel's own time


def _fmt(v, spec: str = ".1f", none: str = "-") -> str:
    return none if v is None else format(v, spec)


CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")
SHADE = 0.5  # what the panel keeps of the picture under it


def panel_lines(live: dict) -> list[str]:
    """The panel's three lines: fps and latency; ms per stage; what runs and the frame count. live: the app's
    /stats.json numbers (the CPU, the source and the rest are on the web page and in --stats)."""
    st = live.get("stages_ms", {})
    running = f"  {live['running']}" if live.get("running") else ""
    fps = f"{_fmt(live.get('fps'))} fps (mean {_fmt(live.get('fps_mean'))})" if live.get("fps") is not None else \
        "first frame"  # fps needs two: frames over the newest second, and since the first
    latency = f"  latency {_fmt(live.get('latency_ms'), '.0f')} ms" if live.get("latency_ms") is not None else ""
    return [
        fps + latency,
        " ".join(f"{short} {_fmt(st.get(key))}" for key, short in STAGE_LABELS) + " ms",
        f"{live['backend']} {live['precision']} {live['input']}  {plural(live['threads'], 'thread')}{running}  "
        f"frame {live.get('frames', 0)}  dropped {live['dropped']}",
    ]


def _scale(image: np.ndarray) -> float:
    return max(0.35, min(image.shape[:2]) / 1100)


def panel_rect(shape: tuple, lines: list[str], corner: str = "top-left") -> tuple[int, int, int, int]:
    """(x1, y1, x2, y2) the panel covers in an image of `shape` with these lines."""
    h_img, w_img = shape[:2]
    scale = _scale(np.empty(shape[:2], bool))
    sizes = [cv2.getTextSize(t, FONT, scale, 1) for t in lines]
    line_h = max(h + b for (_, h), b in sizes) + 3
    w = min(max(tw for (tw, _), _ in sizes) + 10, w_img)
    h = min(line_h * len(lines) + 6, h_img)
    x = 0 if corner.endswith("left") else w_img - w
    y = 0 if corner.startswith("top") else h_img - h
    return x, y, x + w, y + h


def draw_panel(image: np.ndarray, lines: list[str], corner: str = "top-left") -> tuple[int, int, int, int]:
    """The lines in a translucent box in a corner (in place): the picture shows through at half its brightness and
    the text has a dark outline, so detections under it stay visible and the text stays readable. Returns the
    box (drawing keeps instance labels out of it)."""
    x1, y1, x2, y2 = rect = panel_rect(image.shape, lines, corner)
    scale = _scale(image)
    line_h = (y2 - y1 - 6) // max(len(lines), 1)
    region = image[y1:y2, x1:x2]
    cv2.convertScaleAbs(region, region, alpha=SHADE)
    for k, text in enumerate(lines):
        x, y = x1 + 5, y1 + 3 + line_h * (k + 1) - 4
        for dx, dy in ((-1, 0), (1, 0), (0, -1), (0, 1)):  # a dark outline: the same glyphs, one pixel around
            cv2.putText(image, text, (x + dx, y + dy), FONT, scale, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(image, text, (x, y), FONT, scale, (255, 255, 255) if k else (80, 255, 80), 1, cv2.LINE_AA)
    return rect


def draw_banner(image: np.ndarray, text: str, colour=(0, 0, 200)) -> None:
    """A full-width strip at the bottom with a message (source lost, paused) (in place)."""
    scale = _scale(image) * 1.2
    (tw, th), base = cv2.getTextSize(text, FONT, scale, 2)
    if tw > image.shape[1] - 8:  # a long message on a small frame: smaller, so all of it shows
        scale *= (image.shape[1] - 8) / tw
        (tw, th), base = cv2.getTextSize(text, FONT, scale, 2)
    h = th + base + 12
    region = image[-h:]
    region[:] = (region * 0.3 + np.array(colour, np.float32) * 0.7).astype(np.uint8)
    cv2.putText(image, text, (max((image.shape[1] - tw) // 2, 4), image.shape[0] - base - 6), FONT, scale,
                (255, 255, 255), 2, cv2.LINE_AA)
