"""Rates: frames over the seconds they took, the one way cmlite measures one.

    frames_per_second(times)          # finish times in order: the frames after the first over first-to-last
    per_second(frames, seconds)       # the same from a count and a time
    now = RecentRate(); now.add(t)    # now.rate(): the newest frames over at least a second ("now")
    spread(window_rates(times))       # a run's rate per window of at least a second: min, median, max

A percentile of per-frame intervals is latency, never a rate: lanes that finish their frames in pairs make half
the intervals near zero, and 1 / their median comes out about twice the rate the frames arrive at. Every rate
here can be checked with a stopwatch: count the frames, time them.
"""
from __future__ import annotations

import statistics
from collections import deque
from typing import Sequence

WINDOW_S = 1.0  # "now": the newest frames spanning at least this long


def per_second(frames: int, seconds: float) -> float | None:
    """`frames` over the `seconds` they took; None when no time passed."""
    return frames / seconds if seconds > 0 else None


def frames_per_second(times: Sequence[float]) -> float | None:
    """Frames finished at `times` (seconds, in order): the frames after the first over the seconds from the first
    to the last. None with fewer than two frames or no time between them."""
    return per_second(len(times) - 1, times[-1] - times[0]) if len(times) >= 2 else None


def window_rates(times: Sequence[float], window_s: float = WINDOW_S) -> list[float]:
    """The rate over each consecutive window of at least `window_s` (from a frame to the first frame at least that
    much later); a run shorter than one window gives none."""
    out, start = [], 0
    for i in range(1, len(times)):
        span = times[i] - times[start]
        if span >= window_s:
            out.append((i - start) / span)
            start = i
    return out


def spread(rates: Sequence[float], digits: int = 2) -> dict | None:
    """min, median and max of rates (windows of a run, rounds, trials); None when there are none."""
    if not rates:
        return None
    return {"min": round(min(rates), digits), "p50": round(statistics.median(rates), digits),
            "max": round(max(rates), digits), "count": len(rates)}


class RecentRate:
    """The rate "now": the newest frames, as few as span at least `window_s`, over the seconds they took. A stream
    that has shown nothing for a whole window reads 0."""

    def __init__(self, window_s: float = WINDOW_S):
        self.window_s = window_s
        self._times: deque[float] = deque()

    def add(self, t: float) -> None:
        times = self._times
        times.append(t)
        while len(times) > 2 and t - times[1] >= self.window_s:  # the oldest is not needed to span the window
            times.popleft()

    def rate(self, now: float | None = None) -> float | None:
        """None before two frames; `now` (default: the newest frame's time) past a whole window of nothing: 0."""
        times = self._times
        if len(times) < 2:
            return None
        if now is not None and now - times[-1] > self.window_s:
            return 0.0
        return frames_per_second(times)
