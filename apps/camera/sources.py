"""Frame sources for the camera app: a webcam, a GStreamer pipeline, the Pi camera, a video file, a stream URL, a
folder of images, or `synth`.

    src = open_source("0", CaptureSettings(size=(1280, 720), fps=30, fourcc="MJPG"))   # a webcam, asked
    src = open_source('gst:nvarguscamerasrc ! video/x-raw(memory:NVMM),width=1280,height=720 ! nvvidconv')
    src = open_source("picam:0")      # also "/dev/video0"; "clip.mp4"; "rtsp://..."; "frames/"; "synth"
    ok, frame = src.read()            # BGR uint8, or (False, None) when the source has nothing (more)

A source is `live` when it runs on its own clock (camera, stream, synth, a live pipeline): the app keeps only its
newest frame and reopens it when it stops. Files (video, folder, a finite pipeline) are read frame by frame and
end; `rewind()` replays them. Every failure to open raises CmliteError with one line naming the problem and the
fix. A local camera reports what its driver gave (`got`, against what was asked).
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import cv2
import numpy as np

from cmlite.runtimes.errors import CmliteError, ImageError
from cmlite.runtimes.images import IMAGE_SUFFIXES, read_bgr
from cmlite.runtimes.video_capture import (CaptureSettings, capture_format, check_settings_apply, describe,
                                           open_capture, open_device, unmet)

URL_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")
STREAM_TIMEOUT_MS = 5000
SOURCES_HELP = ("a camera index (0) or /dev/videoN, gst:PIPELINE (GStreamer), picam:N (the Pi camera), a video "
                "file, a stream URL (rtsp://, http://), a folder of images, or synth")


class Source:
    """What the capture thread reads. Subclasses open in __init__ (raising CmliteError) and on reopen()."""
    kind = "source"
    live = False
    fps: float | None = None  # nominal frame rate, when known

    def __init__(self, spec: str):
        self.spec = spec

    def read(self) -> tuple[bool, np.ndarray | None]:
        raise NotImplementedError

    def reopen(self) -> None:
        """Open again after a failure (live sources); raises CmliteError while it still fails."""
        self.close()
        self._open()

    def rewind(self) -> None:
        """Start a file source over (--loop)."""
        self.reopen()

    def _open(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def describe(self) -> str:
        return f"{self.kind} {self.spec}"


class CaptureSource(Source):
    """Anything cv2.VideoCapture opens (a camera, a video file or a stream), a GStreamer pipeline or the Pi camera."""

    def __init__(self, spec: str, target, kind: str, live: bool, settings: CaptureSettings | None = None):
        super().__init__(spec)
        self.target, self.kind, self.live, self.settings = target, kind, live, settings or CaptureSettings()
        self.cap = None
        self._first: np.ndarray | None = None
        self.got: dict | None = None  # what a local camera or a pipeline delivers
        self.note: str | None = None  # what of the request the driver did not give
        self.backend = "OpenCV"  # what runs it
        self.cpu_spent = 0.0  # CPU of the pipeline's own threads in the captures closed so far (reopens)
        self._open()

    def _open(self) -> None:
        t0 = time.monotonic()
        if self.kind in ("gst", "picam", "camera"):
            cap = open_device(str(self.target), self.settings)  # a pipeline says why it cannot start, in one line
        elif self.kind == "stream":
            cap = open_capture(self.target, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, STREAM_TIMEOUT_MS,
                                                              cv2.CAP_PROP_READ_TIMEOUT_MSEC, STREAM_TIMEOUT_MS])
        else:
            cap = open_capture(self.target)
        ok, frame = cap.read() if cap.isOpened() else (False, None)
        if not ok or frame is None:
            cap.release()
            raise self._open_error(time.monotonic() - t0)
        if self.kind == "camera":
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # where the driver allows: no queue of stale frames
        self.backend = getattr(cap, "backend", "OpenCV")
        if self.kind in ("gst", "picam", "camera"):
            self.got = capture_format(cap) | {"width": frame.shape[1], "height": frame.shape[0]}
            self.live = getattr(cap, "live", self.live)
            self.note = unmet(self.settings, self.got) if self.settings else None
        fps = self.got["fps"] if self.got else cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if fps and 0 < fps < 1000 else None
        self.cap, self._first = cap, frame

    def describe(self) -> str:
        if self.kind == "gst":  # the pipeline, cut short: the panel and the logs have one line
            pipeline = self.spec[len("gst:"):]
            return f"gst {pipeline if len(pipeline) <= 60 else pipeline[:57] + '...'}"
        return super().describe()

    def delivers(self) -> str | None:
        """What the source gives, in words (a camera: its size, rate and format), for the start line."""
        if not self.got:
            return None
        g = self.got
        return f"{describe(g['width'], g['height'], g['fps'], g['format'])} ({self.backend})"

    def cpu_s(self) -> float | None:
        """CPU the source's own threads spent (a GStreamer pipeline's), beyond the reading thread's; None where
        the source has none of its own."""
        if self.kind != "gst":
            return None
        now = self.cap.cpu_s() if self.cap is not None else 0.0
        return self.cpu_spent + (now or 0.0)

    def _open_error(self, waited: float) -> CmliteError:
        if self.kind in ("gst", "picam"):
            return CmliteError(f"{self.spec} gave no frame: check the pipeline with gst-launch-1.0, or the camera "
                               f"with rpicam-hello")
        if self.kind == "camera":
            return CmliteError(f"camera {self.spec} cannot be opened: it is absent, or busy in another program "
                               f"(close it, check `ls /dev/video*`), or try --source synth")
        if self.kind == "stream":
            what = (f"does not answer (waited {waited:.0f} s)" if waited >= STREAM_TIMEOUT_MS / 1000 * 0.9 else
                    f"refused or closed the connection (after {waited:.1f} s)")
            return CmliteError(f"stream {self.spec} {what}: check the URL and that the server is up and reachable "
                               f"from here")
        return CmliteError(f"{self.spec} is not a video OpenCV can read (corrupt, or not a video): give a video "
                           f"file (.mp4, .avi, .mkv, ...), a folder of images or a camera index")

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self._first is not None:
            frame, self._first = self._first, None
            return True, frame
        if self.cap is None:
            return False, None
        ok, frame = self.cap.read()
        return (True, frame) if ok and frame is not None else (False, None)

    def close(self) -> None:
        if self.cap is not None:
            self.cpu_spent += (self.cap.cpu_s() or 0.0) if hasattr(self.cap, "cpu_s") else 0.0
            self.cap.release()
            self.cap = None


def _natural_key(path: Path):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


class FolderSource(Source):
    """The images of a folder in natural order (frame2 before frame10); unreadable ones are skipped and counted."""
    kind = "folder"

    def __init__(self, spec: str):
        super().__init__(spec)
        self.files = sorted((p for p in Path(spec).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key)
        if not self.files:
            raise CmliteError(f"no images in folder {spec} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
        self.skipped: list[str] = []
        self._open()

    def _open(self) -> None:
        self.pos = 0

    def read(self) -> tuple[bool, np.ndarray | None]:
        while self.pos < len(self.files):
            path = self.files[self.pos]
            self.pos += 1
            try:
                return True, read_bgr(path)
            except (ImageError, OSError):
                self.skipped.append(str(path))
        if len(self.skipped) == len(self.files):
            raise CmliteError(f"none of the {len(self.files)} images in {self.spec} could be decoded")
        return False, None


class SynthSource(Source):
    """The moving synthetic scene as a virtual camera running at `fps`: read() waits for the next frame time and
    renders the scene as it is then (a reader slower than `fps` gets the frame that is due, not a backlog)."""
    kind = "synth"
    live = True

    def __init__(self, spec: str = "synth", width: int = 640, height: int = 480, fps: float = 30.0, seed: int = 0):
        super().__init__(spec)
        from cmlite.calibration.synth_scene import MovingScene

        self.scene = MovingScene(width, height, seed)
        self.fps = fps
        self._open()

    def describe(self) -> str:
        return f"synth {self.scene.width}x{self.scene.height}@{self.fps:g}fps"

    def _open(self) -> None:
        self.t0, self.index = time.monotonic(), -1

    def read(self) -> tuple[bool, np.ndarray | None]:
        now = time.monotonic() - self.t0
        due = max(self.index + 1, int(now * self.fps))
        wait = due / self.fps - now
        if wait > 0:
            time.sleep(wait)
        self.index = due
        return True, self.scene.render(due / self.fps)


def parse_synth(spec: str) -> dict:
    """synth[:WxH][@FPS][#SEED], e.g. synth:1280x720@15 -> SynthSource keyword arguments."""
    m = re.fullmatch(r"synth(?::(\d+)x(\d+))?(?:@(\d+(?:\.\d+)?))?(?:#(\d+))?", spec)
    if not m:
        raise CmliteError(f"bad synth source {spec!r}: use synth, synth:WxH, synth@FPS or synth:WxH@FPS#SEED "
                          f"(e.g. synth:640x480@30)")
    kw = {}
    if m.group(1):
        kw.update(width=int(m.group(1)), height=int(m.group(2)))
    if m.group(3):
        kw["fps"] = float(m.group(3))
        if not 0 < kw["fps"] <= 240:
            raise CmliteError(f"bad synth source {spec!r}: the frame rate must be in (0, 240]")
    if m.group(4):
        kw["seed"] = int(m.group(4))
    return kw


def open_source(spec: str, settings: CaptureSettings | None = None) -> Source:
    """Classify SRC and open it (raising CmliteError with the fix when it cannot be opened). settings: what a local
    camera is asked for (refused for other sources, which set their own)."""
    spec = str(spec).strip()
    check_settings_apply(spec, settings)  # before anything opens
    return _classify(spec, settings or CaptureSettings())


def _classify(spec: str, settings: CaptureSettings) -> Source:
    if spec == "synth" or spec.startswith(("synth:", "synth@", "synth#")):
        try:
            return SynthSource(spec, **parse_synth(spec))
        except CmliteError as e:  # the scene's size check
            raise CmliteError(f"bad synth source {spec!r}: {e}") from None
    if spec.startswith("camera:"):  # the calibration tools' spelling
        spec = spec[len("camera:"):]
    if spec.startswith("gst:"):
        return CaptureSource(spec, spec, "gst", live=True)  # live or not: the pipeline itself says (on opening)
    if spec.startswith("picam:") or spec == "picam":
        return CaptureSource(spec, spec if spec != "picam" else "picam:0", "picam", live=True, settings=settings)
    if spec.isascii() and spec.isdigit():
        return CaptureSource(spec, spec, "camera", live=True, settings=settings)
    if spec.startswith("/dev/video"):
        if not Path(spec).exists():
            raise CmliteError(f"camera {spec} does not exist: check `ls /dev/video*` and that it is plugged in, "
                              f"or try --source synth")
        return CaptureSource(spec, spec, "camera", live=True, settings=settings)
    if spec.lower().startswith(URL_SCHEMES):
        return CaptureSource(spec, spec, "stream", live=True)
    path = Path(spec)
    if not path.exists():
        raise CmliteError(f"source {spec} not found: give {SOURCES_HELP}")
    if path.is_dir():
        return FolderSource(spec)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        raise CmliteError(f"{spec} is a single image: for images use `cmlite predict`, or give the folder of "
                          f"images to play them as a video")
    return CaptureSource(spec, spec, "video", live=False)
