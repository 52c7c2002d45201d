"""Throughput mode: several frames at once on lanes, each a replica of the model with a share of the threads.

    run = Throughput(seg, take, finish=draw, lanes=2)   # the same API as runtimes/overlap.py's runners
    item = run.next(0.25)                               # (key, job) in the order taken

Each lane is a worker thread with its own replica of the model (`Segmenter.replicas`: ONNX Runtime sessions and
LiteRT interpreters with the threads split between them, or one OpenVINO model compiled for throughput with an
infer request per lane). A worker takes the next image and runs every stage of it, `finish` included; results
come out in the order taken, whichever lane finished first. On two cores two one-thread lanes keep both cores
busy where one two-thread graph leaves gaps for its host work and its threads' syncs: what a single frame's
latency loses, the total fps gains (measured in the README). Several streams are one `take` that serves them in
turn (apps/camera_streams.py).
"""
from __future__ import annotations

import os
import threading
from typing import Callable

from .errors import InferenceError, SettingsError
from .overlap import Drained, Take, _End, _job
from .pipeline import Job, Segmenter


def default_lanes(threads: int | None) -> int:
    """One lane per thread given (all cores when none is given), at most 8."""
    return max(1, min(threads or os.cpu_count() or 1, 8))


def lane_replicas(seg: Segmenter, lanes: int | None = None, threads: int | None = None) -> list[Segmenter]:
    """The lanes' replicas: `lanes` (default: one per thread) sharing `threads` (default: the model's own)."""
    threads = threads or getattr(seg, "threads", None)
    return replicas(seg, lanes or default_lanes(threads), threads)


def replicas(seg: Segmenter, lanes: int, threads: int | None) -> list[Segmenter]:
    """`lanes` replicas of the model sharing `threads` (all cores when None) between them."""
    if lanes < 1:
        raise SettingsError(f"lanes {lanes}: give at least 1")
    total = threads or os.cpu_count() or 1
    return seg.replicas(lanes, max(1, total // lanes))


class Throughput:
    mode = "throughput"

    def __init__(self, seg: Segmenter, take: Take, finish: Callable | None = None, lanes: int | None = None,
                 threads: int | None = None, ready: list[Segmenter] | None = None):
        """ready: replicas made beforehand (runtimes.overlap.Auto with prepare=True)."""
        self.lanes = ready or lane_replicas(seg, lanes, threads)
        self.take, self.finish = take, finish
        self._cond = threading.Condition()
        self._take_lock = threading.Lock()
        self._done: dict[int, tuple] = {}  # sequence number -> (key, job) or _End
        self._taken = 0  # sequence numbers given out
        self._next = 0  # the next sequence number next() returns
        self._stop = threading.Event()
        self._drain = threading.Event()
        self._threads = [threading.Thread(target=self._work, args=(lane,), name=f"cmlite-lane-{i}", daemon=True)
                         for i, lane in enumerate(self.lanes)]
        for t in self._threads:
            t.start()

    def drain(self) -> None:
        """Take no more images: next() returns those already taken, then raises Drained."""
        self._drain.set()

    def _claim(self) -> tuple[int, object] | None:
        """The next image and its sequence number; an _End once the stream ended (the same one for every lane)."""
        with self._take_lock:
            if self._stop.is_set() or self._drain.is_set():
                return self._end(Drained())
            try:
                item = self.take(0.1)
            except BaseException as e:  # StopIteration (the end) or the source's failure
                return self._end(e)
            if item is None:
                return None
            seq, self._taken = self._taken, self._taken + 1
            return seq, item

    def _end(self, error: BaseException):
        """Record the end once, at the sequence number after the last image taken."""
        with self._cond:
            if not any(isinstance(v, _End) for v in self._done.values()):
                self._done[self._taken] = _End(error)
                self._cond.notify_all()
        self._stop.set()
        return "end"

    def _work(self, lane: Segmenter) -> None:
        while True:
            claimed = self._claim()
            if claimed == "end":
                return
            if claimed is None:
                continue
            seq, item = claimed
            key, job = _job(item)
            result: tuple | _End = (key, job)
            if job.error is None:
                try:
                    for stage in (lane.preprocess, lane.graph1, lane.host, lane.graph2, lane.paste):
                        stage(job)
                    if self.finish is not None:
                        self.finish(key, job)
                except InferenceError as e:  # a graph refused this image: its job fails, the stream goes on
                    job.error = e
                except BaseException as e:  # anything else ends the stream here, in order
                    result = _End(e)
                    self._stop.set()
            with self._cond:
                self._done[seq] = result
                self._cond.notify_all()

    def next(self, timeout: float) -> tuple[object, Job] | None:
        with self._cond:
            if not self._cond.wait_for(lambda: self._next in self._done, timeout):
                return None
            item = self._done[self._next]
            if isinstance(item, _End):  # kept: every later call ends the same way
                raise item.error
            del self._done[self._next]
            self._next += 1
            return item

    @property
    def active(self) -> str:
        return self.mode

    def describe(self) -> str:
        threads = getattr(self.lanes[0], "threads", None)
        each = f"{threads} thread{'s' if threads != 1 else ''}" if threads else "all threads"
        n = len(self.lanes)
        return f"throughput ({n} lane{'s' if n != 1 else ''} x {each})"

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)
