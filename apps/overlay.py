"""The camera app's status panel and banners, drawn over the segmented frame (OpenCV only)."""
from __future__ import annotations

import cv2
import numpy as np

FONT = cv2.FONT_HERSHEY_SIMPLEX
STAGE_LABELS = (("preprocess", "pre"), ("graph1", "g1"), ("host", "host"), ("graph2", "g2"), ("paste", "paste"),
                ("draw", "draw"))


def _fmt(v, spec: str = ".1f", none: str = "-") -> str:
    return none if v is None else format(v, spec)


def panel_lines(live: dict) -> list[str]:
    """The panel's text: fps, per-stage ms, latency, then what runs where. live: the app's /stats.json numbers."""
    st = live.get("stages_ms", {})
    return [
        f"{_fmt(live.get('fps'))} fps (now {_fmt(live.get('fps_now'))})   "
        f"latency {_fmt(live.get('latency_ms'), '.0f')} ms",
        "  ".join(f"{short} {_fmt(st.get(key))}" for key, short in STAGE_LABELS) + " ms",
        f"{live['backend']} {live['precision']}  input {live['input']}  {live['threads']} threads"
        + (f"  {live['running']}" if live.get("running") else ""),
        live["cpu"],
        f"frame {live.get('frames', 0)}  dropped {live['dropped']}  source {live['source']}",
    ]


def _scale(image: np.ndarray) -> float:
    return max(0.4, min(image.shape[:2]) / 900)


def draw_panel(image: np.ndarray, lines: list[str]) -> None:
    """A translucent dark box at the top left with the lines in it (in place)."""
    scale = _scale(image)
    sizes = [cv2.getTextSize(t, FONT, scale, 1) for t in lines]
    line_h = max(h + b for (_, h), b in sizes) + 4
    w = min(max(tw for (tw, _), _ in sizes) + 12, image.shape[1])
    h = min(line_h * len(lines) + 8, image.shape[0])
    region = image[:h, :w]
    region[:] = (region * 0.35).astype(np.uint8)
    for k, text in enumerate(lines):
        y = 4 + line_h * (k + 1) - 4
        cv2.putText(image, text, (6, y), FONT, scale, (255, 255, 255) if k else (80, 255, 80), 1, cv2.LINE_AA)


def draw_banner(image: np.ndarray, text: str, colour=(0, 0, 200)) -> None:
    """A full-width strip at the bottom with a message (source lost, paused) (in place)."""
    scale = _scale(image) * 1.2
    (tw, th), base = cv2.getTextSize(text, FONT, scale, 2)
    h = th + base + 12
    region = image[-h:]
    region[:] = (region * 0.3 + np.array(colour, np.float32) * 0.7).astype(np.uint8)
    cv2.putText(image, text, (max((image.shape[1] - tw) // 2, 4), image.shape[0] - base - 6), FONT, scale,
                (255, 255, 255), 2, cv2.LINE_AA)
