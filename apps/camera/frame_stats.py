"""Frame rate, latency and per-stage times of a live run: the numbers on the overlay, the web page and --stats.

fps is frames shown over the seconds they took (runtimes/rate.py): "now" over the newest second, the mean from
the first frame shown to the last, and the spread over each second of the run; latency is end to end, from the
moment the source returned the frame (files played frame by frame: the moment the app took it) to the moment its
overlaid picture was handed to the outputs (window, recorder, server).
"""
from __future__ import annotations

import os
import time

import numpy as np

from cmlite.runtimes.pipeline import host_cpu_ms
from cmlite.runtimes.pipeline import STAGES as PIPELINE_STAGES
from cmlite.runtimes.rate import RecentRate, per_second, spread, window_rates

from ..latency_stats import percentile, summarize

STAGES = (*PIPELINE_STAGES, "draw", "output")  # the camera's own work after the pipeline's


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
        self.stages_cpu = {s: Ring(keep) for s in STAGES}  # CPU ms of the thread that ran each stage
        self.host_cpu = Ring(keep)  # per frame: the CPU ms of every non-graph stage together
        self.frames = 0
        self.t_start = time.perf_counter()
        self.t_end: float | None = None  # stop(): the run's end, before the outputs close (a recording's encode)
        self.cpu_end: float | None = None
        self.t_first: float | None = None  # the first frame shown: the mean fps covers the whole run
        self.cpu_start = time.process_time()  # every thread of the process
        self.recent = RecentRate()
        self.last: dict = {}

    def add(self, t_capture: float, t_display: float, timings: dict[str, float],
            cpu: dict[str, float] | None = None) -> None:
        self.frames += 1
        self.t_first = t_display if self.t_first is None else self.t_first
        self.t_display.append(t_display)
        self.latency_ms.append((t_display - t_capture) * 1e3)
        for s in STAGES:
            if s in timings:
                self.stages[s].append(timings[s])
            if cpu and s in cpu:
                self.stages_cpu[s].append(cpu[s])
        if cpu:
            self.host_cpu.append(host_cpu_ms(cpu))
        self.recent.add(t_display)
        self.last = {k: round(v, 2) for k, v in timings.items()}

    @property
    def fps_mean(self) -> float | None:
        """Frames shown after the first over the seconds from the first to the newest."""
        if self.t_first is None or self.frames < 2:
            return None
        return per_second(self.frames - 1, float(self.t_display.last()[0]) - self.t_first)

    def live(self, now: float | None = None) -> dict:
        """The current numbers (overlay panel, /stats.json): fps over the newest second (0 after a second of
        nothing), the mean since the first frame."""
        def r(v):
            return None if v is None else round(v, 2)

        now = time.perf_counter() if now is None else now
        return {"frames": self.frames, "fps": r(self.recent.rate(now)), "fps_mean": r(self.fps_mean),
                "latency_ms": r(float(self.latency_ms.last()[0])) if len(self.latency_ms) else None,
                "stages_ms": self.last,
                "seconds": round(now - self.t_start, 2)}

    def stop(self) -> None:
        """The run is over: what comes after (closing the outputs, encoding a recording) is not the run's time."""
        if self.t_end is None:
            self.t_end, self.cpu_end = time.perf_counter(), time.process_time()

    def summary(self, capture_cpu_ms: float = 0.0) -> dict:
        """The run as a whole (--stats FILE), up to stop() when it was called; capture_cpu_ms: the capture's CPU a
        frame (reading, decoding), added to the host work's."""
        mean_fps = self.fps_mean
        seconds = (self.t_end or time.perf_counter()) - self.t_start
        cpu = (self.cpu_end or time.process_time()) - self.cpu_start
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return {
            "frames": self.frames,
            "seconds": round(seconds, 3),
            # the share of the usable cores the process kept busy: near 1, the app is bound by the CPU
            "cpu_load": round(cpu / (seconds * cores), 3) if seconds > 0 else None,
            "fps_mean": None if mean_fps is None else round(mean_fps, 2),
            # the rate over each second of the run (of the frames kept): how steady fps_mean was
            "fps_per_second": spread(window_rates(self.t_display.values())),
            "latency_ms": {k: v for k, v in summarize(self.latency_ms.values(), digits=2).items() if k != "std"},
            "stages_ms_p50": {s: percentile(v.values(), 50) for s, v in self.stages.items() if len(v)},
            # CPU of cmlite's own work (every stage but the graphs: their CPU is the runtime's), the capture too
            "stages_cpu_ms_p50": {s: percentile(v.values(), 50) for s, v in self.stages_cpu.items() if len(v)},
            "host_cpu_ms_per_frame": None if not len(self.host_cpu) else {
                "stages_p50": percentile(self.host_cpu.values(), 50), "capture": round(capture_cpu_ms, 3),
                "total": round(percentile(self.host_cpu.values(), 50) + capture_cpu_ms, 3)},
        }
