"""Frame rate, latency and per-stage times of a live run: the numbers on the overlay, the web page and --stats.

fps is counted at display time (frames shown per second); latency is end to end, from the moment the source
returned the frame (files played frame by frame: the moment the app took it) to the moment its overlaid picture
was handed to the outputs (window, recorder, server).
"""
from __future__ import annotations

import os
import time
from collections import deque

import numpy as np

from cmlite.runtimes.pipeline import STAGES as PIPELINE_STAGES

from .latency_stats import percentile, summarize

STAGES = (*PIPELINE_STAGES, "draw", "output")  # the camera's own work after the pipeline's
SMOOTH_S = 2.0  # window of the smoothed fps


class Ring:
    """The last `size` values in an array allocated and touched at the start, so the process's memory is the
    same after a minute and after a week (a deque of floats grew by about 0.4 MB each 1,000 frames)."""

    def __init__(self, size: int, dtype=np.float32):
        self._a = np.full(size, np.nan, dtype)
        self.count = 0  # values ever added

    def append(self, value: float) -> None:
        self._a[self.count % len(self._a)] = value
        self.count += 1

    def __len__(self) -> int:
        return min(self.count, len(self._a))

    def values(self) -> np.ndarray:
        """The kept values, oldest first."""
        if self.count <= len(self._a):
            return self._a[:self.count]
        i = self.count % len(self._a)
        return np.concatenate([self._a[i:], self._a[:i]])

    def last(self, k: int = 1) -> np.ndarray:
        k = min(k, len(self))
        return np.array([self._a[(self.count - k + j) % len(self._a)] for j in range(k)])


class FrameStats:
    def __init__(self, keep: int = 100_000):
        """keep: the last frames the --stats percentiles are taken over (about an hour at 30 fps)."""
        self.t_display = Ring(keep, np.float64)
        self.latency_ms = Ring(keep)
        self.stages = {s: Ring(keep) for s in STAGES}
        self.frames = 0
        self.t_start = time.perf_counter()
        self.t_end: float | None = None  # stop(): the run's end, before the outputs close (a recording's encode)
        self.cpu_end: float | None = None
        self.t_first: float | None = None  # the first frame shown: the mean fps covers the whole run
        self.cpu_start = time.process_time()  # every thread of the process
        self._recent: deque[float] = deque()
        self.last: dict = {}

    def add(self, t_capture: float, t_display: float, timings: dict[str, float]) -> None:
        self.frames += 1
        self.t_first = t_display if self.t_first is None else self.t_first
        self.t_display.append(t_display)
        self.latency_ms.append((t_display - t_capture) * 1e3)
        for s in STAGES:
            if s in timings:
                self.stages[s].append(timings[s])
        self._recent.append(t_display)
        while self._recent and self._recent[0] < t_display - SMOOTH_S:
            self._recent.popleft()
        self.last = {k: round(v, 2) for k, v in timings.items()}

    @property
    def fps_now(self) -> float | None:
        """From the last two frames."""
        if len(self.t_display) < 2:
            return None
        a, b = self.t_display.last(2)
        dt = b - a
        return 1.0 / dt if dt > 0 else None

    @property
    def fps_smooth(self) -> float | None:
        """Frames shown over the last SMOOTH_S seconds (the last interval when slower than that)."""
        if len(self._recent) < 2:
            return self.fps_now
        span = self._recent[-1] - self._recent[0]
        return (len(self._recent) - 1) / span if span > 0 else None

    def live(self) -> dict:
        """The current numbers (overlay panel, /stats.json)."""
        def r(v):
            return None if v is None else round(v, 2)

        return {"frames": self.frames, "fps": r(self.fps_smooth), "fps_now": r(self.fps_now),
                "latency_ms": r(float(self.latency_ms.last()[0])) if len(self.latency_ms) else None,
                "stages_ms": self.last,
                "seconds": round(time.perf_counter() - self.t_start, 2)}

    def stop(self) -> None:
        """The run is over: what comes after (closing the outputs, encoding a recording) is not the run's time."""
        if self.t_end is None:
            self.t_end, self.cpu_end = time.perf_counter(), time.process_time()

    def summary(self) -> dict:
        """The run as a whole (--stats FILE), up to stop() when it was called."""
        t = self.t_display.values()
        intervals = np.diff(t)
        mean_fps = (self.frames - 1) / (t[-1] - self.t_first) if self.frames > 1 and t[-1] > self.t_first else None
        seconds = (self.t_end or time.perf_counter()) - self.t_start
        cpu = (self.cpu_end or time.process_time()) - self.cpu_start
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return {
            "frames": self.frames,
            "seconds": round(seconds, 3),
            # the share of the usable cores the process kept busy: near 1, the app is bound by the CPU
            "cpu_load": round(cpu / (seconds * cores), 3) if seconds > 0 else None,
            "fps_mean": None if mean_fps is None else round(mean_fps, 2),
            "fps_p50": round(1.0 / float(np.median(intervals)), 2) if len(intervals) and np.median(intervals) > 0
            else None,
            "latency_ms": {k: v for k, v in summarize(self.latency_ms.values(), digits=2).items() if k != "std"},
            "stages_ms_p50": {s: percentile(v.values(), 50) for s, v in self.stages.items() if len(v)},
        }
