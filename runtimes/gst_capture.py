"""GStreamer pipelines as a frame source: `gst:<pipeline>` (a Jetson's CSI camera through nvarguscamerasrc, a USB
camera through v4l2src, a test pattern, an RTSP camera through rtspsrc, a file through decodebin).

    cap = open_gst("videotestsrc num-buffers=60 ! video/x-raw,width=640,height=480")
    ok, frame = cap.read()          # HxWx3 uint8 BGR, as every source gives; (False, None) at the end
    cap.live, cap.fps, cap.backend  # a camera's pace or a file's frames; the caps' rate; what runs it

The pipeline is the user's, up to the frames it produces; cmlite appends `videoconvert ! video/x-raw,format=BGR !
appsink`. It runs through OpenCV's own GStreamer back-end where OpenCV was built with it (Jetson's OpenCV), else
through GStreamer's own Python bindings (PyGObject), which OpenCV's pip wheels, built without GStreamer, never
need. A live pipeline (a camera: its source pushes on its own clock) keeps only the newest frame; a finite one
(a file, videotestsrc num-buffers=N) hands over every frame and ends. A pipeline that cannot be built or started is
one line with GStreamer's own reason.
"""
from __future__ import annotations

import os
import re

import numpy as np

from .errors import CmliteError
from .system_packages import system_import

CONVERT = "videoconvert ! video/x-raw,format=BGR"  # what cmlite appends: BGR frames, as every source gives
PULL_TIMEOUT_S = 5.0  # a live pipeline that gives no frame this long is taken as lost (the app reopens it)
START_TIMEOUT_S = 10.0
INSTALL = ("sudo apt install python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 gstreamer1.0-plugins-base "
           "gstreamer1.0-plugins-good")
# elements that push frames on their own clock: a pipeline holding one is live under OpenCV's back-end, which
# cannot ask GStreamer (the PyGObject path asks the pipeline itself)
LIVE_ELEMENTS = ("v4l2src", "nvarguscamerasrc", "libcamerasrc", "rtspsrc", "udpsrc", "souphttpsrc", "rtmpsrc",
                 "srtsrc", "ksvideosrc", "avfvideosrc", "pipewiresrc", "is-live=true")


def opencv_has_gstreamer() -> bool:
    import cv2

    return any(re.match(r"\s*GStreamer:\s*YES", line) for line in cv2.getBuildInformation().splitlines())


def gst_module():
    """GStreamer's Python bindings (PyGObject): this environment's, or the system's python3-gi."""
    gi = system_import("gi", "gst: sources (GStreamer through its Python bindings, as OpenCV here has no "
                             "GStreamer)", INSTALL)
    try:
        gi.require_version("Gst", "1.0")
        from gi.repository import GLib, Gst
    except (ValueError, ImportError):
        raise CmliteError(f"gst: GStreamer's introspection data is missing: {INSTALL}") from None
    if not Gst.is_initialized():
        Gst.init(None)
    return Gst, GLib


class PyGstCapture:
    """The pipeline run by GStreamer's Python bindings, frames pulled from its appsink."""
    backend = "GStreamer (PyGObject)"

    def __init__(self, pipeline: str):
        Gst, GLib = gst_module()
        self.Gst, self.description, self.width, self.height = Gst, pipeline, 0, 0
        try:
            self.pipeline = Gst.parse_launch(f"{pipeline} ! {CONVERT} ! appsink name=cmlite_sink")
        except GLib.Error as e:
            raise CmliteError(f"gst:{pipeline}: cannot build the pipeline: {e.message} (check the element names "
                              f"with gst-inspect-1.0)") from None
        self.sink = self.pipeline.get_by_name("cmlite_sink")
        self.sink.set_property("max-buffers", 1)
        self.threads_before = _thread_ids()
        paused = self.pipeline.set_state(Gst.State.PAUSED)
        self._check(paused)
        self.live = paused == Gst.StateChangeReturn.NO_PREROLL  # a live source does not preroll
        self.sink.set_property("drop", self.live)  # a camera: the newest frame; a file: every frame, in order
        self._check(self.pipeline.set_state(Gst.State.PLAYING))
        self._check(self.pipeline.get_state(int(START_TIMEOUT_S * Gst.SECOND))[0])
        self.fps = None
        self._first = self._pull()
        if self._first is None:
            reason = self._error() or ("it ended at once" if self.sink.get_property("eos") else
                                       f"none within {PULL_TIMEOUT_S:g} s")
            self.release()
            raise CmliteError(f"gst:{pipeline}: the pipeline gave no frame ({reason})")
        self.threads = _thread_ids() - self.threads_before  # GStreamer's own streaming threads

    def _check(self, ret) -> None:
        if ret == self.Gst.StateChangeReturn.FAILURE:
            reason = self._error() or "it refused to start"
            self.pipeline.set_state(self.Gst.State.NULL)
            raise CmliteError(f"gst:{self.description}: cannot start the pipeline: {reason}")

    def _error(self) -> str | None:
        msg = self.pipeline.get_bus().pop_filtered(self.Gst.MessageType.ERROR)
        if msg is None:
            return None
        err, debug = msg.parse_error()
        return f"{err.message} ({msg.src.get_name()})"

    def _pull(self) -> np.ndarray | None:
        sample = self.sink.emit("try-pull-sample", int(PULL_TIMEOUT_S * self.Gst.SECOND))
        if sample is None:
            return None
        s = sample.get_caps().get_structure(0)
        w, h = s.get_value("width"), s.get_value("height")
        ok, num, den = s.get_fraction("framerate")
        self.fps = num / den if ok and den and num else None
        self.width, self.height = w, h
        buf = sample.get_buffer()
        data = np.frombuffer(buf.extract_dup(0, buf.get_size()), np.uint8)
        stride = len(data) // h  # rows are padded to 4 bytes (GStreamer's video stride)
        return data.reshape(h, stride)[:, :w * 3].reshape(h, w, 3).copy()

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self._first is not None:
            frame, self._first = self._first, None
            return True, frame
        if self.pipeline is None:
            return False, None
        frame = self._pull()  # None: the end, or a camera gone quiet (the app reopens a live source)
        return (False, None) if frame is None else (True, frame)

    def cpu_s(self) -> float:
        """CPU time GStreamer's own threads have spent (decoding, converting): what the camera's format costs."""
        return _threads_cpu_s(self.threads)

    def isOpened(self) -> bool:  # noqa: N802 (cv2.VideoCapture's name)
        return self.pipeline is not None

    def release(self) -> None:
        if self.pipeline is not None:
            self.pipeline.set_state(self.Gst.State.NULL)
            self.pipeline = None


class CvGstCapture:
    """The pipeline through OpenCV's own GStreamer back-end (an OpenCV built with it, as on a Jetson)."""
    backend = "GStreamer (OpenCV)"

    def __init__(self, pipeline: str):
        import cv2

        self.description = pipeline
        self.live = any(e in pipeline for e in LIVE_ELEMENTS)
        sink = "appsink drop=true max-buffers=1" if self.live else "appsink"
        self.cap = cv2.VideoCapture(f"{pipeline} ! {CONVERT} ! {sink}", cv2.CAP_GSTREAMER)
        ok, self._first = self.cap.read() if self.cap.isOpened() else (False, None)
        if not ok:
            self.cap.release()
            raise CmliteError(f"gst:{pipeline}: OpenCV's GStreamer back-end could not start it or read a frame "
                              f"(run it with gst-launch-1.0 to see GStreamer's reason)")
        fps = self.cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 0 < fps < 1000 else None
        self.height, self.width = self._first.shape[:2]

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self._first is not None:
            frame, self._first = self._first, None
            return True, frame
        ok, frame = self.cap.read()
        return (True, frame) if ok and frame is not None else (False, None)

    def cpu_s(self) -> float | None:
        return None  # OpenCV runs the pipeline in threads it does not name

    def isOpened(self) -> bool:  # noqa: N802
        return self.cap.isOpened()

    def release(self) -> None:
        self.cap.release()


def open_gst(pipeline: str):
    """A started pipeline (its first frame read), through OpenCV where it has GStreamer, else PyGObject."""
    pipeline = pipeline.strip()
    if not pipeline:
        raise CmliteError("gst: give a pipeline after gst:, e.g. gst:\"v4l2src device=/dev/video0 ! "
                          "image/jpeg,width=1280,height=720 ! jpegdec\"")
    pipeline = re.sub(r"\s*!\s*appsink\b.*$", "", pipeline)  # cmlite appends its own sink
    return CvGstCapture(pipeline) if opencv_has_gstreamer() else PyGstCapture(pipeline)


def _thread_ids() -> set[int]:
    try:
        return {int(t) for t in os.listdir("/proc/self/task")}
    except OSError:
        return set()


def _threads_cpu_s(tids: set[int]) -> float:
    """utime + stime of these threads of this process (Linux /proc), in seconds; threads gone count nothing."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total = 0
    for tid in tids:
        try:
            fields = open(f"/proc/self/task/{tid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / tick
