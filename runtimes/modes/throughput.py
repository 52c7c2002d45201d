"""Throughput: several images at once on lanes, each a replica of the model with a share of the threads.

    run = Throughput(seg, take, finish=draw, lanes=2)   # the same API as every run mode (base.py)

Each lane is a worker thread with its own replica of the model (`Segmenter.replicas`: ONNX Runtime sessions and
LiteRT interpreters with the threads split between them, or one OpenVINO model compiled for throughput with an
infer request per lane). A worker takes the next image and runs every stage of it, `finish` included; results
come out in the order taken, whichever lane finished first. On two cores two one-thread lanes keep both cores
busy where one two-thread graph leaves gaps for its host work and its threads' syncs: what a single image's
latency loses, the total rate gains. Several streams are one `take` that serves them in turn
(apps/camera/streams.py).
"""
from __future__ import annotations

import os
import threading

from ..errors import SettingsError
from ..pipeline import Job, Segmenter
from .base import Drained, Finish, RunMode, StreamEnd, Take, job_of, run_stages


def can_replicate(seg: Segmenter) -> bool:
    """Whether the backend can make replicas of its model (throughput mode)."""
    return type(seg).replicas is not Segmenter.replicas


def release(seg: Segmenter, lanes: list[Segmenter] = ()) -> None:
    """The model the lanes are made from lets go of its graphs while the lanes run (they hold their own; it
    loads them again if used again): throughput mode then holds the lanes' copies, not one more."""
    if all(lane is not seg for lane in lanes) and hasattr(seg, "release"):
        seg.release()


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


class Throughput(RunMode):
    mode = "throughput"

    def __init__(self, seg: Segmenter, take: Take, finish: Finish | None = None, lanes: int | None = None,
                 threads: int | None = None, ready: list[Segmenter] | None = None):
        """ready: replicas made beforehand (auto.Auto with prepare=True)."""
        super().__init__(seg, take, finish)
        if ready is None:
            release(seg)  # before the lanes are made: the peak holds their copies, not one more
        self.lanes = ready or lane_replicas(seg, lanes, threads)
        self._cond = threading.Condition()
        self._take_lock = threading.Lock()
        self._done: dict[int, tuple | StreamEnd] = {}  # sequence number -> (key, job) or the end
        self._taken = 0  # sequence numbers given out
        self._next = 0  # the next sequence number next() returns
        self._stop = threading.Event()
        self._drain = threading.Event()
        self._threads = [threading.Thread(target=self._work, args=(lane,), name=f"cmlite-lane-{i}", daemon=True)
                         for i, lane in enumerate(self.lanes)]
        for t in self._threads:
            t.start()

    def drain(self) -> None:
        self._drain.set()

    def _claim(self) -> tuple[int, object] | None | str:
        """The next image and its sequence number; "end" once the stream ended (recorded once, for every lane)."""
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

    def _end(self, error: BaseException) -> str:
        """Record the end once, at the sequence number after the last image taken."""
        with self._cond:
            if not any(isinstance(v, StreamEnd) for v in self._done.values()):
                self._done[self._taken] = StreamEnd(error)
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
            key, job = job_of(item)
            result: tuple | StreamEnd = (key, job)
            try:
                run_stages(lane, key, job, self.finish)
            except BaseException as e:  # anything but a refused image ends the stream here, in order
                result = StreamEnd(e)
                self._stop.set()
            with self._cond:
                self._done[seq] = result
                self._cond.notify_all()

    def next(self, timeout: float) -> tuple[object, Job] | None:
        with self._cond:
            if not self._cond.wait_for(lambda: self._next in self._done, timeout):
                return None
            item = self._done[self._next]
            if isinstance(item, StreamEnd):  # kept: every later call ends the same way
                raise item.error
            del self._done[self._next]
            self._next += 1
            return item

    def describe(self) -> str:
        threads = getattr(self.lanes[0], "threads", None)
        each = f"{threads} thread{'s' if threads != 1 else ''}" if threads else "all threads"
        n = len(self.lanes)
        return f"throughput ({n} lane{'s' if n != 1 else ''} x {each})"

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)
