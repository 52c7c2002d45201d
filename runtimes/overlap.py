"""Many images through one Segmenter: one at a time, consecutive images overlapped, on lanes, or whichever is faster.

    run = runner(seg, take, mode="auto", finish=draw)   # take(timeout) -> (key, image) | None; raises at the end
    item = run.next(0.25)                               # (key, job) in the order taken; None: nothing yet
    for key, job in stream(seg, [(name, image_or_reader), ...]):   # the same over an iterable

- sequential: every stage of an image runs in the caller's thread before the next image is taken.
- overlap: two stage threads beside the caller's. front: take and preprocess image n+2 while image n+1's
  graph 1 runs; back: decode, NMS, RoIAlign of image n, graph 2, paste, `finish`; the caller gets image n-1.
  The graphs run one at a time in a graph thread, each with every thread it was given (graph 2, the older
  image's, first when both wait), and find their next input ready; the host stages run in threads that yield
  the CPU to it (SCHED_IDLE), so they fill the cores the graphs leave idle instead of slowing them. At most
  `depth` images are between take() and next().
- throughput (runtimes/throughput.py): lanes, each a replica of the model with a share of the threads, every
  one running all the stages of its own image; the most images per second, a single image's latency higher.
- auto: the first frames run sequentially, the next ones overlapped, then in throughput mode where the backend
  can replicate its model; the fastest keeps running (it must beat sequential by 3% within two frames of its
  latency). A camera that sequential keeps up with stays sequential.

Results are Segmenter.predict()'s, image by image, in the order taken, in every mode; nothing is lost at the end
of a stream or when auto switches (the images in flight are finished first).
"""
from __future__ import annotations

import heapq
import os
import queue
import statistics
import threading
import time
from typing import Callable, Iterable, Iterator

from .errors import ImageError, InferenceError, SettingsError
from .pipeline import Job, Segmenter

MODES = ("auto", "overlap", "sequential", "throughput")
Take = Callable[[float], "tuple | None"]


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


class Drained(Exception):
    """An overlapped runner finished the images it had taken, as asked (Overlapped.drain)."""


class _End:
    """The end of a stream, passed down the stage threads in order: the exception the caller gets."""

    def __init__(self, error: BaseException):
        self.error = error


def _job(item: tuple) -> tuple[object, Job]:
    """(key, image) -> (key, Job); an image that is an exception (it could not be read) makes a failed job."""
    key, image = item
    return (key, Job(None, error=image)) if isinstance(image, BaseException) else (key, Job(image))


class Sequential:
    mode = "sequential"

    def __init__(self, seg: Segmenter, take: Take, finish: Callable | None = None):
        """take(timeout) -> (key, image), or None when nothing came in time; raises what ends the stream
        (StopIteration, or the source's own exception). finish(key, job), if given, runs on each done job before
        next() returns it (overlapped: in the back thread): the caller's own per-image work, e.g. drawing."""
        self.seg, self.take, self.finish = seg, take, finish

    def next(self, timeout: float) -> tuple[object, Job] | None:
        """(key, job) of the next image, done; None when no image came within `timeout`. What ends the stream,
        or a stage's failure, is raised here."""
        item = self.take(timeout)
        if item is None:
            return None
        key, job = _job(item)
        if job.error is None:
            try:
                for stage in (self.seg.preprocess, self.seg.graph1, self.seg.host, self.seg.graph2, self.seg.paste):
                    stage(job)
            except InferenceError as e:  # a graph refused this image: its job fails, the stream goes on
                job.error = e
                return key, job
            if self.finish is not None:
                self.finish(key, job)
        return key, job

    @property
    def active(self) -> str:
        """The mode running now."""
        return self.mode

    def describe(self) -> str:
        return self.mode

    def close(self) -> None:
        pass


class Overlapped(Sequential):
    mode = "overlap"

    def __init__(self, seg: Segmenter, take: Take, finish: Callable | None = None, depth: int = 3):
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
                key, job = _job(item)
                if job.error is None:
                    seg.preprocess(job)
            except BaseException as e:  # StopIteration (the end) or a failure: passed down in order
                end = e
                break
            self.graphs.submit(lambda key=key, job=job: self._dense(key, job), urgent=False)
        self.graphs.run(lambda: self._mid.put(_End(end)), urgent=False)

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
                self._mid.put(_End(e))
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
            if isinstance(item, _End):
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
                self._out.put(_End(e))
                return
            self._out.put((key, job))

    def next(self, timeout: float) -> tuple[object, Job] | None:
        try:
            item = self._out.get(timeout=timeout)
        except queue.Empty:
            return None
        if isinstance(item, _End):
            self._out.put(item)  # every later call ends the same way
            raise item.error
        self._slots.release()
        return item

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)
        self.graphs.close()


class Auto(Sequential):
    """Each candidate mode for `trial` images in turn (sequential, overlap, then throughput where the backend can
    replicate its model), then the fastest. Speed is the median interval between consecutive next() results, so
    the caller's own work and the source's pace count; latency runs from take() to next(). A mode other than
    sequential is kept only if it is faster than sequential by MARGIN and its median latency is within two of its
    frame intervals of sequential's (overlap holds up to two more images in flight). Switching finishes the images
    in flight first."""
    mode = "auto"
    MARGIN = 1.03
    LATENCY_FRAMES = 2.0  # how much more latency another mode may add, in its frame intervals

    def __init__(self, seg: Segmenter, take: Take, finish: Callable | None = None, trial: int = 24, warmup: int = 3,
                 candidates: tuple[str, ...] | None = None, prepare: bool = False):
        """prepare: make throughput's replicas now, before the first image, rather than when its trial begins (a
        pause mid-stream: a compile on OpenVINO). For long runs that start up anyway (the camera); a run of a
        few images never gets to that trial and is spared the cost."""
        super().__init__(seg, take, finish)
        if candidates is None:
            candidates = ("sequential", "overlap") + (("throughput",) if can_replicate(seg) else ())
        self.candidates = candidates
        self._lanes = None
        if prepare and "throughput" in candidates:
            from .throughput import lane_replicas

            self._lanes = lane_replicas(seg)
        self.run: Sequential = self._make(candidates[0])
        self.trial, self.warmup = trial, warmup
        self.rates: dict[str, float] = {}  # images per second measured for each mode
        self.latency: dict[str, float] = {}  # median seconds from take() to next() for each mode
        self.chosen: str | None = None
        self._pending: str | None = None  # the mode to run once the current one has drained
        self._times: list[float] = []
        self._lat: list[float] = []

    def _make(self, mode: str):
        if mode == "throughput":
            return _runner_class(mode)(self.seg, self.take, self.finish, ready=self._lanes)
        return _runner_class(mode)(self.seg, self.take, self.finish)

    def next(self, timeout: float) -> tuple[object, Job] | None:
        while True:
            try:
                item = self.run.next(timeout)
            except Drained:
                self.run.close()
                self.run, self._pending = self._make(self._pending), None
                continue
            if item is not None and self.chosen is None:
                self._measure(item[1])
            return item

    def _switch(self, mode: str) -> None:
        """Run `mode` next: at once after sequential (nothing in flight), after the drain otherwise."""
        if self.run.mode == "sequential":
            self.run.close()
            self.run = self._make(mode)
        else:
            self._pending = mode
            self.run.drain()  # its images in flight come first, then Drained switches

    def _measure(self, job: Job) -> None:
        now = time.perf_counter()
        self._times.append(now)
        self._lat.append(now - job.t_taken)
        if len(self._times) < self.warmup + self.trial:
            return
        mode = self.run.mode
        gap = statistics.median(b - a for a, b in zip(self._times[self.warmup:], self._times[self.warmup + 1:]))
        self.rates[mode] = 1.0 / gap if gap > 0 else float("inf")
        self.latency[mode] = statistics.median(self._lat[self.warmup:])
        self._times, self._lat = [], []
        rest = [m for m in self.candidates if m not in self.rates]
        if rest:
            self._switch(rest[0])
            return
        self.chosen = max(self.rates, key=lambda m: (self._acceptable(m), self.rates[m] if m != "sequential"
                                                     else self.MARGIN * self.rates[m]))
        if not self._acceptable(self.chosen):
            self.chosen = "sequential"
        if self.chosen != "throughput":
            self._lanes = None  # their memory back once the throughput runner, if running, has drained
        if self.chosen != mode:
            self._switch(self.chosen)

    def _acceptable(self, mode: str) -> bool:
        """Sequential always; another mode when faster by MARGIN and prompt enough."""
        if mode == "sequential":
            return True
        seq, rate = self.rates["sequential"], self.rates[mode]
        return rate >= self.MARGIN * seq and \
            self.latency[mode] <= self.latency["sequential"] + self.LATENCY_FRAMES / rate

    @property
    def active(self) -> str:
        return self.run.mode

    def describe(self) -> str:
        if self.chosen is None:
            return f"auto (measuring: {self.run.mode})"
        return f"auto: {self.chosen} (" + ", ".join(f"{m} {r:.1f}/s, latency {self.latency[m] * 1e3:.0f} ms" for m, r in
                                                   sorted(self.rates.items())) + ")"

    def close(self) -> None:
        self.run.close()


def can_replicate(seg: Segmenter) -> bool:
    """Whether the backend can make replicas of its model (throughput mode)."""
    return type(seg).replicas is not Segmenter.replicas


def _runner_class(mode: str):
    if mode == "throughput":
        from .throughput import Throughput  # imports this module: loaded when asked for

        return Throughput
    return {"auto": Auto, "overlap": Overlapped, "sequential": Sequential}[mode]


def runner(seg: Segmenter, take: Take, mode: str = "auto", finish: Callable | None = None,
           prepare: bool = False) -> Sequential:
    """prepare: a long run (the camera): auto makes everything its trials need before the first image."""
    if mode not in MODES:
        raise SettingsError(f"unknown mode {mode!r}: one of {', '.join(MODES)}")
    if mode == "auto":
        return Auto(seg, take, finish, prepare=prepare)
    return _runner_class(mode)(seg, take, finish)


def stream(seg: Segmenter, items: Iterable[tuple[object, object]], mode: str = "auto",
           finish: Callable | None = None) -> Iterator[tuple[object, Job]]:
    """(key, image) pairs -> (key, job) pairs, in order. An image may be a callable that returns one (read in the
    front thread when overlapped, so reading overlaps too); one that raises ImageError gives a job with that
    `error` and no instances, and the stream goes on, as does one a graph refuses (InferenceError). Any other failure
    stops the stream with its exception."""
    it = iter(items)

    def take(_timeout):
        key, image = next(it)
        if callable(image):
            try:
                image = image()
            except ImageError as e:
                image = e
        return key, image

    run = runner(seg, take, mode, finish)
    try:
        while True:
            try:
                item = run.next(1.0)
            except StopIteration:
                return
            if item is not None:
                yield item
    finally:
        run.close()
