"""`--record out.webm`: the overlaid video, in a codec browsers play, written whole or not at all.

Codecs by the file's name:
  .webm             VP8 (libvpx, in every OpenCV wheel's FFmpeg): plays in every browser
  .mp4, .m4v, .mov  H.264 where this OpenCV's FFmpeg has an encoder (the pip wheels have none); otherwise the
                    recording goes to a .webm of the same name, and a line says so
  .avi, .mkv        Motion JPEG, as recorded (players, not browsers)
codec="fast" (`--record-codec fast`) keeps the quick ones: MPEG-4 part 2 in .mp4 (VLC, ffplay; not browsers)
and Motion JPEG otherwise.

VP8 takes 20-45 ms a 640x480 frame here, MPEG-4 part 2 1.3 and Motion JPEG 1.8: the live run writes Motion
JPEG to a hidden file beside the target, and the browser codec is encoded from it when the run ends, so the
recording costs the app no fps. The frame rate is the source's for files played frame by frame; for live
sources it is measured over the first frames (buffered until then), so the recording plays at the speed the
app ran.
"""
from __future__ import annotations

import functools
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from runtimes.errors import CmliteError

SUFFIXES = (".webm", ".mp4", ".m4v", ".mov", ".avi", ".mkv")
MEASURE_FRAMES, MEASURE_S = 10, 2.0
LIVE_FOURCC = "MJPG"  # what the run writes: fast, and every OpenCV reads it back


@functools.lru_cache(maxsize=None)
def has_encoder(fourcc: str, suffix: str) -> bool:
    """Whether this OpenCV's FFmpeg can write `fourcc` into a `suffix` file (tried on a small file)."""
    with tempfile.TemporaryDirectory() as d:
        w = cv2.VideoWriter(str(Path(d) / f"probe{suffix}"), cv2.VideoWriter_fourcc(*fourcc), 10.0, (64, 48))
        ok = w.isOpened()
        if ok:
            w.write(np.zeros((48, 64, 3), np.uint8))
        w.release()
        return ok and (Path(d) / f"probe{suffix}").stat().st_size > 0


def plan(path: Path, codec: str = "auto") -> tuple[Path, str, str]:
    """(the file written, its fourcc, a note for the user or ""): the browser codec the name asks for, or its
    fallback."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise CmliteError(f"--record {path}: use a .webm (plays in browsers), .mp4, .mov, .m4v, .avi or .mkv file name")
    if suffix in (".avi", ".mkv"):
        return path, "MJPG", ""
    if codec == "fast":
        return (path, "mp4v", "") if suffix != ".webm" else (path, "VP80", "")
    if suffix == ".webm":
        return path, "VP80", ""
    if has_encoder("avc1", suffix):
        return path, "avc1", ""
    webm = path.with_suffix(".webm")
    return webm, "VP80", (f"this OpenCV has no H.264 encoder, so the recording goes to {webm} (VP8, which browsers "
                          f"play); --record-codec fast keeps {path.name} as MPEG-4 part 2 (VLC and ffplay play it, "
                          f"browsers do not)")


class Recorder:
    def __init__(self, path: str | Path, fps: float | None = None, codec: str = "auto", log=None):
        asked = Path(path)
        if not asked.parent.is_dir():
            raise CmliteError(f"--record {path}: folder {asked.parent} does not exist")
        self.path, self.fourcc, note = plan(asked, codec)
        if note and log:
            log(note)
        self.log = log or (lambda m: None)
        direct = self.fourcc in ("MJPG", "mp4v")  # fast enough to write while running
        self.live_fourcc = self.fourcc if direct else LIVE_FOURCC
        suffix = self.path.suffix if direct else ".avi"
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
        self._writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*self.live_fourcc), self.fps, self._size)
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
        if not self.frames:
            self.tmp.unlink(missing_ok=True)
            return
        if self.live_fourcc == self.fourcc:
            self.tmp.replace(self.path)
            return
        try:
            self._encode()
        finally:
            self.tmp.unlink(missing_ok=True)

    def _encode(self) -> None:
        """The run's Motion JPEG into the browser codec, beside the target, then renamed to it."""
        t0 = time.perf_counter()
        self.log(f"encoding {self.path.name} ({self.fourcc}, {self.frames} frames) ...")
        out = self.path.with_name(f".{self.path.stem}.encoding{self.path.suffix}")
        cap = cv2.VideoCapture(str(self.tmp))
        writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*self.fourcc), self.fps, self._size)
        try:
            if not writer.isOpened():
                raise CmliteError(f"cannot write video {self.path}: OpenCV has no {self.fourcc} encoder here (name "
                                  f"it .avi, or use --record-codec fast)")
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                writer.write(frame)
            writer.release()
            os.replace(out, self.path)
        finally:
            cap.release()
            writer.release()
            out.unlink(missing_ok=True)
        self.log(f"encoded {self.path} in {time.perf_counter() - t0:.1f} s")
