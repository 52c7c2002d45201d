"""Frames in, instances out, one frame at a time or pipelined (`cmlite camera --pipeline`).

Sequential: each frame runs the whole predict() (front then back) before the next is taken.
Pipelined: a worker thread runs the front (preprocess + graph 1) of the next frame while the app's thread runs
the back (decode, RoIAlign, graph 2, paste) and the drawing of the current one. Graph 1 releases the GIL in
every backend, so on two cores the halves overlap; each frame waits at most one frame in between.
"""
from __future__ import annotations

import queue
import threading

from runtimes.instances import Instances
from runtimes.pipeline import Front, Segmenter

from .capture import Capture, EndOfSource, Frame


class Sequential:
    def __init__(self, seg: Segmenter, capture: Capture):
        self.seg, self.capture = seg, capture

    def next(self, timeout: float) -> tuple[Frame, Front, Instances, dict] | None:
        """The next frame with its instances and stage timings (ms), or None if no frame came within timeout.
        Raises EndOfSource when a file source is done."""
        frame = self.capture.get(timeout)
        if frame is None:
            return None
        front = self.seg.front(frame.image)
        inst = self.seg.back(front)
        return frame, front, inst, dict(self.seg.timings)

    def close(self) -> None:
        pass


class Pipelined(Sequential):
    def __init__(self, seg: Segmenter, capture: Capture):
        super().__init__(seg, capture)
        self._queue: queue.Queue = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="front", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                frame = self.capture.get(0.25)
                if frame is None:
                    continue
                item = (frame, self.seg.front(frame.image))
            except BaseException as e:  # EndOfSource or a failure: the app's thread raises it
                item = e
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.25)
                    break
                except queue.Full:
                    continue
            if isinstance(item, BaseException):
                return

    def next(self, timeout: float) -> tuple[Frame, Front, Instances, dict] | None:
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            if not self._thread.is_alive() and self._queue.empty():
                raise EndOfSource from None
            return None
        if isinstance(item, BaseException):
            raise item
        frame, front = item
        inst = self.seg.back(front)
        return frame, front, inst, dict(self.seg.timings)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
