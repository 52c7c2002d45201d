"""The capture thread: reads a source on its own, so the picture the app shows is never behind the camera.

    cap = Capture(open_source("0")); cap.start()
    frame = cap.get(timeout=0.5)      # the newest frame (None if none came in time); EndOfSource when a file ends

Live sources (camera, stream, synth) keep only the newest frame: the ones the app was too slow for are counted
in `dropped`. A live source that stops (camera unplugged, stream down) is reopened with back-off while `status`
says so; the app keeps running. File sources hand over every frame in order (the reader blocks until the app
takes each) and end, or start over with loop=True; realtime=True plays a video at its own frame rate and drops
like a camera instead.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from cmlite.runtimes.errors import CmliteError

from .sources import Source

BACKOFF_S = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)  # waits before the reopen attempts; the last repeats


class EndOfSource(Exception):
    """A file source has no more frames."""


@dataclass
class Frame:
    image: np.ndarray  # HxWx3 uint8 BGR
    index: int  # 0-based count of frames read from the source
    t_capture: float  # time.perf_counter() when the source returned it (files: when the app took it)


class Capture:
    def __init__(self, source: Source, loop: bool = False, realtime: bool = False, log=None):
        self.source, self.loop = source, loop
        self.latest_only = source.live or realtime
        self.pace = realtime and not source.live and bool(source.fps)
        self.log = log or (lambda message: None)
        self.captured = self.dropped = self.taken = self.reopens = 0  # captured = taken + dropped + pending
        self.read_cpu_s = 0.0  # CPU of the reading thread in the source's read() (a camera's decode, conversion)
        self.status = ""  # non-empty while the source is lost
        self._slot: Frame | None = None
        self._ended = False
        self._error: BaseException | None = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)
        self.ready: threading.Event | None = None  # set when a frame comes or the source ends (several streams)

    def start(self) -> "Capture":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout=10)
        self.source.close()

    def get(self, timeout: float | None = None) -> Frame | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._slot is None:
                if self._error is not None:
                    raise self._error
                if self._ended:
                    raise EndOfSource
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            frame, self._slot = self._slot, None
            if not self.latest_only:  # a file frame has no capture moment: its latency starts when the app takes it
                frame.t_capture = time.perf_counter()
            self.taken += 1
            self._cond.notify_all()
            return frame

    def cpu_ms_per_frame(self) -> dict:
        """The capture's own CPU a frame: the reading thread's, and a pipeline's own threads' where it has them
        (GStreamer decodes and converts in threads of its own)."""
        source = self.source.cpu_s() if hasattr(self.source, "cpu_s") else None
        n = max(self.captured, 1)
        out = {"read_thread": round(self.read_cpu_s * 1e3 / n, 3)}
        if source is not None:
            out["pipeline_threads"] = round(source * 1e3 / n, 3)
        out["total"] = round(sum(out.values()), 3)
        return out

    @property
    def pending(self) -> int:
        """1 when a frame waits to be taken."""
        return int(self._slot is not None)

    # ------------------------------------------------------------------------------------------ the thread

    def _run(self) -> None:
        try:
            self._read_loop()
        except BaseException as e:  # handed to the app's next get()
            self._error = e if isinstance(e, CmliteError) else CmliteError(f"reading {self.source.describe()} "
                                                                           f"failed: {e}")
        with self._cond:
            self._ended = True
            self._cond.notify_all()
        if self.ready is not None:
            self.ready.set()

    def _read_loop(self) -> None:
        since_rewind, t_start = 0, time.monotonic()
        while not self._stop.is_set():
            t_cpu = time.thread_time()
            ok, image = self.source.read()
            self.read_cpu_s += time.thread_time() - t_cpu
            if not ok:
                if self.source.live:
                    self._reconnect()
                    continue
                if self.loop and since_rewind:
                    self.source.rewind()
                    since_rewind, t_start = 0, time.monotonic()
                    continue
                return
            if self.pace:
                wait = t_start + since_rewind / self.source.fps - time.monotonic()
                if wait > 0 and self._stop.wait(wait):
                    return
            since_rewind += 1
            frame = Frame(image, self.captured, time.perf_counter())
            with self._cond:
                if self.latest_only:
                    self.dropped += self._slot is not None
                else:
                    while self._slot is not None and not self._stop.is_set():
                        self._cond.wait(0.1)
                    if self._slot is not None:  # stopped while the last frame waits: this one is not captured
                        return
                self._slot = frame
                self.captured += 1
                self._cond.notify_all()
            if self.ready is not None:
                self.ready.set()

    def _reconnect(self) -> None:
        self.source.close()
        attempt = 0
        while True:
            wait = BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)]
            attempt += 1
            self.status = f"{self.source.describe()} lost: reopening (attempt {attempt} in {wait:g} s)"
            self.log(self.status)
            if self._stop.wait(wait):
                return
            try:
                self.source.reopen()
            except CmliteError:
                continue
            self.reopens += 1
            self.status = ""
            self.log(f"{self.source.describe()} reopened after {attempt} attempt{'s' if attempt > 1 else ''}")
            return
