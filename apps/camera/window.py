"""The camera app's window (OpenCV highgui) and its keys: q/Esc quit, space pause, s snapshot, m masks, p panel."""
from __future__ import annotations

import os
import sys

import cv2
import numpy as np

KEYS = {ord("q"): "quit", 27: "quit", ord(" "): "pause", ord("s"): "snapshot", ord("m"): "masks", ord("p"): "panel"}
HELP = "keys: q/Esc quit, space pause, s snapshot, m masks, p panel"


def unavailable() -> str | None:
    """Why no window can open here (None when one can). Checked before any highgui call: the GUI build of
    OpenCV aborts the whole process when it finds no display."""
    gui = [line.split(":", 1)[1].strip() for line in cv2.getBuildInformation().splitlines()
           if line.strip().startswith("GUI:")]
    if gui and gui[0].upper() == "NONE":
        return ("this OpenCV has no GUI (opencv-python-headless): use --headless or --serve HOST:PORT, or for a "
                "window `pip uninstall -y opencv-python-headless && pip install opencv-python`")
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no display here (DISPLAY is not set): use --headless, or --serve HOST:PORT to watch from a browser"
    return None


class Window:
    def __init__(self, title: str = "cmlite camera"):
        self.title = title
        cv2.namedWindow(title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO)
        self._sized = False

    def show(self, image: np.ndarray) -> str | None:
        """Shows the picture and returns the action of a key pressed meanwhile ("quit" when the window was closed)."""
        if not self._sized:
            cv2.resizeWindow(self.title, image.shape[1], image.shape[0])
            self._sized = True
        cv2.imshow(self.title, image)
        key = cv2.waitKey(1)
        if key >= 0:
            return KEYS.get(key & 0xFF)
        try:
            if cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
                return "quit"
        except cv2.error:
            return "quit"
        return None

    def close(self) -> None:
        try:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
        except cv2.error:
            pass
