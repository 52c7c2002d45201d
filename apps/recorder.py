"""`--record out.mp4`: the overlaid video, written whole or not at all.

Frames go to a hidden file beside the target, renamed when the run ends. The frame rate is the source's for
files played frame by frame; for live sources it is measured over the first frames (buffered until then), so
the recording plays at the speed the app ran.
"""
from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from runtimes.errors import CmliteError

FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}
MEASURE_FRAMES, MEASURE_S = 10, 2.0


class Recorder:
    def __init__(self, path: str | Path, fps: float | None = None):
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in FOURCC:
            raise CmliteError(f"--record {path}: use a .mp4, .avi, .mkv, .mov or .m4v file name")
        if not self.path.parent.is_dir():
            raise CmliteError(f"--record {path}: folder {self.path.parent} does not exist")
        self.tmp = self.path.with_name(f".{self.path.stem}.partial{suffix}")
        self.fps, self.frames = fps, 0
        self._writer: cv2.VideoWriter | None = None
        self._buffer: list[tuple[float, np.ndarray]] = []

    def write(self, image: np.ndarray) -> None:
        if self._writer is None:
            self._buffer.append((time.perf_counter(), image.copy()))
            t = [b[0] for b in self._buffer]
            if self.fps is None and len(t) < MEASURE_FRAMES and t[-1] - t[0] < MEASURE_S:
                return
            self._open(image.shape)
            return
        if image.shape[:2] != self._size[::-1]:  # a source that changed size: keep the file's
            image = cv2.resize(image, self._size)
        self._writer.write(image)
        self.frames += 1

    def _open(self, shape) -> None:
        if self.fps is None:
            t = [b[0] for b in self._buffer]
            self.fps = (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 and t[-1] > t[0] else 10.0
        self.fps = round(min(max(self.fps, 1.0), 120.0), 2)
        self._size = (shape[1], shape[0])
        self._writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*FOURCC[self.path.suffix.lower()]),
                                       self.fps, self._size)
        if not self._writer.isOpened():
            self._writer = None
            self.tmp.unlink(missing_ok=True)
            raise CmliteError(f"cannot write video {self.path}: OpenCV has no writer for it here (try a .avi name)")
        buffered, self._buffer = self._buffer, []
        for _, img in buffered:
            self.write(img)

    def close(self) -> None:
        """Finish the file and give it its name (nothing is left when no frame came)."""
        if self._writer is None and self._buffer:
            self._open(self._buffer[0][1].shape)
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if self.frames:
            self.tmp.replace(self.path)
        else:
            self.tmp.unlink(missing_ok=True)
