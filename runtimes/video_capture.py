"""Opening cameras, video files, streams, GStreamer pipelines and the Pi camera: what both the camera app's sources
(apps/camera/sources.py) and the INT8 calibration frames (calibration/frames.py) read from. Torch-free.

    cap = open_device("0", CaptureSettings(size=(1280, 720), fps=30, fourcc="MJPG"))   # a V4L2 camera, asked
    cap = open_device("gst:v4l2src ! image/jpeg,width=1280,height=720 ! jpegdec")     # runtimes/gst_capture.py
    cap = open_device("picam:0")                                                       # runtimes/picam_capture.py

Every capture has OpenCV's read() -> (ok, BGR frame), isOpened() and release(); a local camera is asked for its
size, rate and pixel format before its first frame, and what the driver gave is read back (`capture_format`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import cv2

from .errors import CmliteError

VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".ts"}


def open_capture(*args) -> cv2.VideoCapture:
    """cv2.VideoCapture(*args) without OpenCV's backend warnings or FFmpeg's own lines ("[tcp @ 0x...] Connection
    ... failed"): callers raise their own one-line error (`cmlite -v` shows them all)."""
    from .quiet import native_logs, quiet_ffmpeg

    quiet_ffmpeg()  # FFmpeg's decoding lines too, for the frames read from it
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    try:
        with native_logs():
            return cv2.VideoCapture(*args)
    finally:
        cv2.utils.logging.setLogLevel(level)


@dataclass(frozen=True)
class CaptureSettings:
    """What a local camera is asked for (--camera-size, --camera-fps, --camera-format); None: the driver's own."""
    size: tuple[int, int] | None = None  # width, height
    fps: float | None = None
    fourcc: str | None = None  # MJPG, YUYV, H264, ...

    def __bool__(self) -> bool:
        return any(v is not None for v in (self.size, self.fps, self.fourcc))

    def text(self) -> str:
        return describe(self.size[0] if self.size else None, self.size[1] if self.size else None, self.fps,
                        self.fourcc)


def parse_settings(size: str | None = None, fps: float | None = None, fourcc: str | None = None) -> CaptureSettings:
    """--camera-size WxH, --camera-fps N, --camera-format FOURCC, checked (one line each)."""
    wh = None
    if size is not None:
        m = re.fullmatch(r"(\d+)x(\d+)", size.strip())
        if not m or not (16 <= int(m.group(1)) <= 8192 and 16 <= int(m.group(2)) <= 8192):
            raise CmliteError(f"--camera-size {size!r}: give WIDTHxHEIGHT, e.g. 1280x720")
        wh = (int(m.group(1)), int(m.group(2)))
    if fps is not None and not 0 < fps <= 1000:
        raise CmliteError(f"--camera-fps {fps}: give frames per second in (0, 1000], e.g. 30")
    if fourcc is not None and not re.fullmatch(r"[A-Za-z0-9 ]{1,4}", fourcc):
        raise CmliteError(f"--camera-format {fourcc!r}: give a pixel format's four-letter code, e.g. MJPG or YUYV")
    return CaptureSettings(wh, fps, fourcc.upper().ljust(4) if fourcc else None)


def describe(width, height, fps, fourcc) -> str:
    size = f"{width}x{height}" if width and height else "any size"
    rate = f" @{fps:g}" if fps else ""
    return f"{size}{rate}" + (f" {fourcc.strip()}" if fourcc and fourcc.strip() else "")


def capture_format(cap) -> dict:
    """What a capture delivers: width, height, fps and the pixel format (its four-letter code; None if unknown)."""
    if not isinstance(cap, cv2.VideoCapture):  # GStreamer, the Pi camera: what they recorded of it
        return {"width": cap.width, "height": cap.height, "fps": cap.fps, "format": getattr(cap, "format", None)}
    code = int(cap.get(cv2.CAP_PROP_FOURCC))
    fourcc = "".join(chr((code >> 8 * i) & 0xFF) for i in range(4)) if code > 0 else None
    fps = cap.get(cv2.CAP_PROP_FPS)
    return {"width": int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), "height": int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            "fps": round(fps, 3) if 0 < fps < 1000 else None,
            "format": fourcc if fourcc and fourcc.isprintable() else None}


def apply_settings(cap: cv2.VideoCapture, settings: CaptureSettings) -> dict:
    """Ask the driver (the format first: a driver lists its sizes and rates per format) and read back what it
    gave."""
    if settings.fourcc:
        cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*settings.fourcc))
    if settings.size:
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, settings.size[0])
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, settings.size[1])
    if settings.fps:
        cap.set(cv2.CAP_PROP_FPS, settings.fps)
    return capture_format(cap)


def unmet(settings: CaptureSettings, got: dict) -> str | None:
    """What of the request the driver did not give, in one line (None when it gave all of it)."""
    missed = []
    if settings.size and (got["width"], got["height"]) != tuple(settings.size):
        missed.append("size")
    if settings.fps and (not got["fps"] or abs(got["fps"] - settings.fps) > 0.5):
        missed.append("rate")
    if settings.fourcc and (got["format"] or "").strip() != settings.fourcc.strip():
        missed.append("format")
    if not missed:
        return None
    gave = describe(got["width"], got["height"], got["fps"], got["format"])
    return (f"asked {settings.text()}, the driver gave {gave} (its {', '.join(missed)} differ: "
            f"`v4l2-ctl --list-formats-ext` lists what it offers)")


def is_local_camera(spec: str) -> bool:
    """A camera of this machine that cmlite asks for a size, rate and format (not a pipeline, file or stream)."""
    spec = spec.removeprefix("camera:")
    return spec.isdigit() or spec.startswith("/dev/video") or spec == "picam" or spec.startswith("picam:")


def check_settings_apply(spec: str, settings: CaptureSettings | None) -> None:
    """--camera-size/--camera-fps/--camera-format are asked of a local camera only: one line for any other source
    (a pipeline: where its caps go), before anything opens."""
    if settings and not is_local_camera(spec):
        raise CmliteError(f"--camera-size/--camera-fps/--camera-format are for a local camera (an index, "
                          f"/dev/videoN or picam:N), not {spec}"
                          + (": a GStreamer pipeline sets its own caps (! video/x-raw,width=1280,height=720,"
                             "framerate=30/1)" if spec.startswith("gst:") else ""))


def open_device(spec: str, settings: CaptureSettings | None = None):
    """A camera index or /dev/videoN (asked for `settings` before its first frame), `gst:PIPELINE` or `picam:N`."""
    check_settings_apply(spec, settings)
    if spec.startswith("gst:"):
        from .gst_capture import open_gst

        return open_gst(spec[len("gst:"):])
    if spec.startswith("picam:"):
        from .picam_capture import PicamCapture

        index = spec[len("picam:"):] or "0"
        if not index.isdigit():
            raise CmliteError(f"bad Pi camera source {spec!r}: use picam:0 (the first camera), picam:1, ...")
        return PicamCapture(int(index), settings)
    cap = open_capture(int(spec) if spec.isdigit() else spec)
    if settings and cap.isOpened():
        apply_settings(cap, settings)
    return cap
