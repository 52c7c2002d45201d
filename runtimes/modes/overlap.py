"""Overlap: consecutive images' stages at once, in two stage threads beside the caller's.

front: take and preprocess image n+2 while image n+1's graph 1 runs; back: decode, NMS, RoIAlign of image n,
graph 2, paste, `finish`; the caller gets image n-1. The graphs run one at a time in a graph thread, each with
every thread it was given (graph 2, the older image's, first when both wait), and find their next input ready;
the host stages run in threads that yield the CPU to it (SCHED_IDLE), so they fill the cores the graphs leave
idle instead of slowing them. At most `depth` images are between take() and next().
"""
from __future__ import annotations

import heapq
import os
import queue
import threading
from typing import Callable

from ..errors import InferenceError
from ..pipeline import Job, Segmenter
from .base import Drained, Finish, RunMode, StreamEnd, Take, job_of


class GraphThread:
    """The one thread that runs graphs, at the process's priority; graph 2 (the older image) before graph 1 when
    both wait."""

    def __init__(self):
        self._cond = threading.Condition()
        self._waiting: list[tuple[int, int, Callable, list]] = []  # (priority, order, fn, result box)
        self._order = 0
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="cmlite-graphs", daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[[], None], urgent: bool) -> list:
        """Queue fn() for the graph thread and return at once: the box that wait() takes. Jobs of one priority
        run in the order submitted."""
        box: list = []
        with self._cond:
            self._order += 1
            heapq.heappush(self._waiting, (0 if urgent else 1, self._order, fn, box))
            self._cond.notify_all()
        return box

    def wait(self, box: list) -> None:
        """Until the submitted fn() is done, raising what it raised."""
        with self._cond:
            while not box:
                self._cond.wait()
        if box[0] is not None:
            raise box[0]

    def run(self, fn: Callable[[], None], urgent: bool) -> None:
        """fn() in the graph thread; returns when it is done, raising what it raised."""
        self.wait(self.submit(fn, urgent))

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self._stop:
                    self._cond.wait()
                if not self._waiting:
                    return
                _, _, fn, box = heapq.heappop(self._waiting)
            try:
                fn()
                result = None
            except BaseException as e:
                result = e
            with self._cond:
                box.append(result)
                self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout=10)


def background() -> None:
    """The calling thread yields the CPU to every normal thread (Linux SCHED_IDLE; elsewhere nothing). For threads
    made for host work only: an unprivileged thread cannot return to normal priority."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        pass


class Overlapped(RunMode):
    mode = "overlap"

    def __init__(self, seg: Segmenter, take: Take, finish: Finish | None = None, depth: int = 3):
        super().__init__(seg, take, finish)
        self.graphs = GraphThread()
        self._slots = threading.Semaphore(depth)  # images between take() and next()
        self._mid: queue.Queue = queue.Queue()
        self._out: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._drain = threading.Event()
        self._threads = [threading.Thread(target=self._front, name="cmlite-front", daemon=True),
                         threading.Thread(target=self._back, name="cmlite-back", daemon=True)]
        for t in self._threads:
            t.start()

    def drain(self) -> None:
        """Take no more images: next() returns those already taken, then raises Drained."""
        self._drain.set()

    def _front(self) -> None:
        """Takes and preprocesses image n+1 while image n's graph 1 runs: the graph thread finds the next image
        ready instead of waiting a preprocessing for it. Graph 1 hands its image on itself (to `_mid`), in the
        order taken; so does everything else sent down the graph thread's queue, the end included."""
        seg = self.seg
        background()
        while True:
            if self._stop.is_set() or self._drain.is_set():
                end = Drained()
                break
            if not self._slots.acquire(timeout=0.1):
                continue
            try:
                item = self.take(0.1)
                if item is None:
                    self._slots.release()
                    continue
                key, job = job_of(item)
                if job.error is None:
                    seg.preprocess(job)
            except BaseException as e:  # StopIteration (the end) or a failure: passed down in order
                end = e
                break
            self.graphs.submit(lambda key=key, job=job: self._dense(key, job), urgent=False)
        self.graphs.run(lambda: self._mid.put(StreamEnd(end)), urgent=False)

    def _dense(self, key, job: Job) -> None:
        """Graph 1 of a taken image, in the graph thread, then on to the back thread. A graph that refuses this
        image (InferenceError) fails its job only; any other failure ends the stream there."""
        if job.error is None and not self._stop.is_set():
            try:
                self.seg.graph1(job)
            except InferenceError as e:
                job.error = e
            except BaseException as e:
                self._stop.set()
                self._mid.put(StreamEnd(e))
                return
        self._mid.put((key, job))

    def _graph(self, stage, job: Job, urgent: bool) -> None:
        """A graph stage in the graph thread; one that refuses this image (InferenceError) fails its job only."""
        try:
            self.graphs.run(lambda: stage(job), urgent=urgent)
        except InferenceError as e:
            job.error = e

    def _back(self) -> None:
        seg = self.seg
        background()
        while True:
            item = self._mid.get()
            if isinstance(item, StreamEnd):
                self._out.put(item)
                return
            key, job = item
            try:
                if job.error is None:
                    seg.host(job)
                    self._graph(seg.graph2, job, urgent=True)
                if job.error is None:
                    seg.paste(job)
                    if self.finish is not None:
                        self.finish(key, job)
            except BaseException as e:
                self._out.put(StreamEnd(e))
                return
            self._out.put((key, job))

    def next(self, timeout: float) -> tuple[object, Job] | None:
        try:
            item = self._out.get(timeout=timeout)
        except queue.Empty:
            return None
        if isinstance(item, StreamEnd):
            self._out.put(item)  # every later call ends the same way
            raise item.error
        self._slots.release()
        return item

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)
        self.graphs.close()
