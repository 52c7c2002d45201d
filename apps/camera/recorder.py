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

A disk that fills up (or a file-size limit, RLIMIT_FSIZE) must not leave a broken file or a flood of
warnings: every CHECK_EVERY frames the room left (free space, and the limit less the file's size) is
compared with a reserve of a few frames; when it runs short the file is finished there, whole and playable,
one line says so, and the run goes on without recording. A file that stops growing although frames are
written (the check missed: another program filled the disk) is deleted, with one line.
"""
from __future__ import annotations

import functools
import os
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from cmlite.runtimes.errors import CmliteError
from cmlite.runtimes.rate import frames_per_second

SUFFIXES = (".webm", ".mp4", ".m4v", ".mov", ".avi", ".mkv")
MEASURE_FRAMES, MEASURE_S = 10, 2.0
LIVE_FOURCC = "MJPG"  # what the run writes: fast, and every OpenCV reads it back
CHECK_EVERY = 10  # frames between checks of the room left
RESERVE_MIN = 256 * 1024  # bytes kept free beyond a few frames: the file's index, --stats, other programs
STALLED_CHECKS = 3  # checks without growth while frames were written: the writes are failing


def room_left(path: Path) -> float:
    """Bytes that can still go into `path`: the disk's free space, and the file-size limit less its size."""
    room = float(shutil.disk_usage(path.parent).free)
    try:
        import resource
    except ImportError:  # Windows: no file-size limit
        return room
    soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if soft != resource.RLIM_INFINITY:
        room = min(room, soft - (path.stat().st_size if path.exists() else 0))
    return room


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


def open_writer(path: Path, fourcc: str, fps: float, size: tuple[int, int]) -> cv2.VideoWriter:
    """cv2.VideoWriter without the line OpenCV's FFmpeg prints for every .webm (its VP80 tag is remapped; the file
    is fine), which read as an error."""
    from cmlite.runtimes.quiet import native_logs, quiet_ffmpeg

    quiet_ffmpeg()
    with native_logs():
        return cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)


@functools.lru_cache(maxsize=None)
def has_encoder(fourcc: str, suffix: str) -> bool:
    """Whether this OpenCV's FFmpeg can write `fourcc` into a `suffix` file (tried on a small file)."""
    with tempfile.TemporaryDirectory() as d:
        w = open_writer(Path(d) / f"probe{suffix}", fourcc, 10.0, (64, 48))
        ok = w.isOpened()
        if ok:
            w.write(np.zeros((48, 64, 3), np.uint8))
        w.release()
        return ok and (Path(d) / f"probe{suffix}").stat().st_size > 0


def check_suffix(path: Path) -> str:
    """A --record name's suffix, refused in one line unless it is a video's."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise CmliteError(f"--record {path}: use a .webm (plays in browsers), .mp4, .mov, .m4v, .avi or .mkv file name")
    return suffix


def plan(path: Path, codec: str = "auto") -> tuple[Path, str, str]:
    """(the file written, its fourcc, a note for the user or ""): the browser codec the name asks for, or its
    fallback."""
    suffix = check_suffix(path)
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
        self.error: str | None = None  # why the recording stopped early (the run went on without it)
        self._writer: cv2.VideoWriter | None = None
        self._buffer: list[tuple[float, np.ndarray]] = []
        self._checked = (0, 0)  # (frames, file size) at the last room check
        self._step = 0  # the most bytes one check interval added
        self._still = 0  # checks in a row the file did not grow
        self._encode_after = not direct

    def write(self, image: np.ndarray) -> None:
        if self.error is not None:
            return
        try:
            self._write(image)
            if self._writer is not None and self.frames - self._checked[0] >= CHECK_EVERY:
                self._check_room()
        except cv2.error as e:  # an encoder that failed mid-run: keep the app going
            self._stop(f"recording stopped at frame {self.frames}: OpenCV could not write {self.tmp.name} "
                       f"({str(e).strip().splitlines()[-1]}); the run goes on without recording", keep=False)

    def _write(self, image: np.ndarray) -> None:
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
            self.fps = frames_per_second(t) or 10.0
        self.fps = round(min(max(self.fps, 1.0), 120.0), 2)
        self._size = (shape[1], shape[0])
        self._writer = open_writer(self.tmp, self.live_fourcc, self.fps, self._size)
        if not self._writer.isOpened():
            self._writer = None
            self.tmp.unlink(missing_ok=True)
            raise CmliteError(f"cannot write video {self.path}: OpenCV has no writer for it here (try a .avi name)")
        buffered, self._buffer = self._buffer, []
        for _, img in buffered:
            self._write(img)

    def _check_room(self) -> None:
        """Finish the file while it still fits (see the module's note); delete it if its writes are failing."""
        size = self.tmp.stat().st_size if self.tmp.exists() else 0
        _, size0 = self._checked
        self._checked = (self.frames, size)
        self._step = max(self._step, size - size0)
        self._still = self._still + 1 if size <= size0 else 0
        if self._still >= STALLED_CHECKS:
            self._stop(f"recording failed at frame {self.frames}: {self.tmp} stopped growing (is the disk full or "
                       f"gone?); the unfinished file was deleted and the run goes on without recording", keep=False)
            return
        room = room_left(self.tmp)
        reserve = 2 * self._step + 32 * self.frames + RESERVE_MIN  # two intervals' frames, the index, a margin
        if room >= reserve:
            return
        if self._encode_after:  # no room to encode a second copy: the Motion JPEG itself is kept, as .avi
            self.path, self.fourcc, self._encode_after = self.path.with_suffix(".avi"), self.live_fourcc, False
        self._stop(f"recording stopped at frame {self.frames}: {_mb(max(room, 0))} left for {self.path.name} "
                   f"(disk nearly full, or the file-size limit); the {self.frames} frames so far are kept in "
                   f"{self.path} and the run goes on without recording", keep=True)

    def _stop(self, why: str, keep: bool) -> None:
        """End the recording early: the file finished and named (keep) or deleted; one line."""
        self.error = why
        self.log(why)
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if keep and self.frames:
            self.tmp.replace(self.path)
        else:
            self.tmp.unlink(missing_ok=True)
            self.frames = 0

    def close(self) -> None:
        """Finish the file and give it its name (nothing is left when no frame came)."""
        if self.error is not None:
            return  # finished (or deleted) when it stopped
        if self._writer is None and self._buffer:
            self._open(self._buffer[0][1].shape)
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if not self.frames:
            self.tmp.unlink(missing_ok=True)
            return
        if not self._encode_after:
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
        writer = open_writer(out, self.fourcc, self.fps, self._size)
        try:
            if not writer.isOpened():
                raise CmliteError(f"cannot write video {self.path}: OpenCV has no {self.fourcc} encoder here (name "
                                  f"it .avi, or use --record-codec fast)")
            n, complete = 0, True
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                writer.write(frame)
                n += 1
                if n % CHECK_EVERY == 0 and room_left(out) < out.stat().st_size / n * 3 * CHECK_EVERY + RESERVE_MIN:
                    complete = False  # no room for the encoded copy: the Motion JPEG is kept below
                    break
            if complete:
                writer.release()
                os.replace(out, self.path)
                self.log(f"encoded {self.path} in {time.perf_counter() - t0:.1f} s")
                return
        finally:
            cap.release()
            writer.release()
            out.unlink(missing_ok=True)
        kept = self.path.with_suffix(".avi")
        self.tmp.replace(kept)
        self.error = (f"no room to encode {self.path.name} ({_mb(room_left(kept))} left): the recording is kept as "
                      f"Motion JPEG in {kept}")
        self.path, self.fourcc = kept, self.live_fourcc
        self.log(self.error)
