"""Auto: each candidate mode measured in interleaved trials, then the fastest, remembered for the next run.

The trials run sequential, overlap, then throughput (where the backend can replicate its model), and the same
again (ROUNDS): one noisy trial cannot decide, and the machine's drift touches every mode alike. A trial's rate is
frames over the seconds they took (runtimes/rate.py), counted from its `warmup`-th result (the pipeline filled)
for at least `trial` frames and `trial_s` seconds; it counts the caller's own work and the source's pace, as the
user sees them. A mode's rate is its trials' frames over their seconds, its spread the gap between its slowest and
fastest trial, its error the standard error of its trials' rates (half the spread with two trials).

The choice: modes whose median latency exceeds sequential's by more than LATENCY_FRAMES of their own frame
intervals are left out (overlap holds up to two more images in flight); of the rest, a lead inside the trials'
error (the two modes' rates, each +- its error, overlap) or under MARGIN is a tie, and a tie goes to the lower
latency. A lead over MARGIN that only the error makes a tie is contested: the fastest and the modes contesting it
run another round of trials, up to MAX_ROUNDS, so that a noisy trial costs more trials rather than a wrong choice.
With a Memory (memory.py) the choice and its figures are stored under the device, model, input and source kind,
and the next run starts in that mode with no trial frames; retune=True measures again. Switching finishes the
images in flight first, so nothing is lost or reordered.
"""
from __future__ import annotations

import statistics
import time

from ..pipeline import Job, Segmenter
from ..rate import per_second
from .base import Drained, Finish, RunMode, Take
from .memory import Memory
from .overlap import Overlapped
from .sequential import Sequential
from .throughput import Throughput, can_replicate, lane_replicas, release

FIXED = {"sequential": Sequential, "overlap": Overlapped, "throughput": Throughput}  # the modes auto chooses among
MARGIN = 1.03  # a lead under 3% is a tie whatever the spread
LATENCY_FRAMES = 2.0  # how much more latency another mode may add, in its frame intervals
ROUNDS = 2  # trials per mode, interleaved
MAX_ROUNDS = 4  # a contested lead gets more rounds of its modes, up to this many trials each


def _error(v: dict) -> float:
    """A mode's +-: its trials' standard error (a record stored before it had one: half the spread)."""
    return v["error"] if "error" in v else v["spread"] / 2


def _kept(modes: dict[str, dict], latency_frames: float) -> tuple[dict, dict]:
    """(the modes in the running, those left out for their latency)."""
    seq = modes.get("sequential")
    slow = {m: v for m, v in modes.items() if seq is not None and m != "sequential"
            and v["latency_ms"] > seq["latency_ms"] + latency_frames * 1e3 / v["rate"]}
    return {m: v for m, v in modes.items() if m not in slow}, slow


def _within_error(b: dict, o: dict) -> bool:
    return b["rate"] - _error(b) <= o["rate"] + _error(o)


def contested(modes: dict[str, dict], margin: float = MARGIN, latency_frames: float = LATENCY_FRAMES) -> list[str]:
    """The fastest mode and those that tie with it by the trials' error alone (their gap is over `margin`): more
    trials can settle them. [] when the choice is clear."""
    ok, _ = _kept(modes, latency_frames)
    best = max(ok, key=lambda m: ok[m]["rate"])
    rivals = [m for m in ok if m != best and ok[best]["rate"] - ok[m]["rate"] > (margin - 1) * ok[m]["rate"]
              and _within_error(ok[best], ok[m])]
    return [m for m in ok if m == best or m in rivals] if rivals else []


def choose(modes: dict[str, dict], margin: float = MARGIN, latency_frames: float = LATENCY_FRAMES) -> tuple[str, str]:
    """(the mode, why) from each mode's rate, error (or spread) and latency_ms (Auto's rule)."""
    seq = modes.get("sequential")
    ok, slow = _kept(modes, latency_frames)
    best = max(ok, key=lambda m: ok[m]["rate"])

    def tied(m: str) -> bool:  # the two modes' trials overlap (each rate +- its error), or under 3%
        b, o = ok[best], ok[m]
        return _within_error(b, o) or b["rate"] - o["rate"] <= (margin - 1) * o["rate"]

    ties = [m for m in ok if tied(m)]
    chosen = min(ties, key=lambda m: ok[m]["latency_ms"])
    others = sorted((m for m in ok if m != best), key=lambda m: -ok[m]["rate"])
    if chosen != best:
        why = (f"a tie, the lower latency: {best}'s lead ({ok[best]['rate'] - ok[chosen]['rate']:.1f}/s) is within "
               f"the trials' spread or {(margin - 1):.0%}")
    elif len(ties) > 1:
        why = f"fastest and the lowest latency: tied with {', '.join(m for m in ties if m != best)} within the spread"
    elif others:
        why = f"fastest: {ok[best]['rate'] / ok[others[0]]['rate']:.2f}x {others[0]}, beyond the trials' spread"
    else:
        why = "the only mode: the others were left out"
    if slow:
        why += "; " + ", ".join(f"{m} left out (latency {v['latency_ms']:.0f} ms against sequential's "
                                f"{seq['latency_ms']:.0f})" for m, v in slow.items())
    return chosen, why


def figures(trials: list[dict], candidates) -> dict[str, dict]:
    """Each mode's rate (its trials' frames over their seconds), spread, error, trials and latency_ms (median)."""
    modes = {}
    for m in candidates:
        ts = [t for t in trials if t["mode"] == m]
        rate = per_second(sum(t["frames"] for t in ts), sum(t["seconds"] for t in ts))
        rates = [t["rate"] for t in ts]
        error = statistics.stdev(rates) / len(rates) ** 0.5 if len(rates) > 1 else 0.0
        modes[m] = {"rate": round(rate, 3), "spread": round(max(rates) - min(rates), 3), "error": round(error, 3),
                    "trials": len(ts), "latency_ms": round(statistics.median(t["latency_ms"] for t in ts), 2)}
    return modes


class _Trial:
    """One mode's frames in one trial: counted from the warmup-th result."""

    def __init__(self, mode: str):
        self.mode, self.seen, self.frames = mode, 0, 0
        self.t0: float | None = None
        self.t_last = 0.0
        self.latency: list[float] = []

    @property
    def seconds(self) -> float:
        return self.t_last - self.t0 if self.t0 is not None else 0.0


class Auto(RunMode):
    mode = "auto"
    rule = staticmethod(choose)  # modes' figures -> (the mode, why)
    contest = staticmethod(contested)  # modes' figures -> the modes to measure once more ([] to decide now)
    clock = staticmethod(time.perf_counter)  # when a result came (Job.t_taken's clock)

    def __init__(self, seg: Segmenter, take: Take, finish: Finish | None = None, trial: int = 30,
                 warmup: int = 3, trial_s: float = 0.75, candidates: tuple[str, ...] | None = None,
                 prepare: bool = False, memory: Memory | None = None, retune: bool = False):
        """prepare: make throughput's replicas now, before the first image, rather than when its trial begins (a
        pause mid-stream: a compile on OpenVINO). For long runs that start up anyway (the camera); a run of a
        few images never gets to that trial and is spared the cost. memory: where the choice is recalled from
        and stored (retune: measure again even when one is stored)."""
        super().__init__(seg, take, finish)
        if candidates is None:
            candidates = ("sequential", "overlap") + (("throughput",) if can_replicate(seg) else ())
        self.candidates = candidates
        self.trial, self.warmup, self.trial_s = trial, max(1, warmup), trial_s
        self.memory = memory
        self.trials: list[dict] = []  # each trial as run: mode, frames, seconds, rate, latency_ms
        self.modes: dict[str, dict] = {}  # per mode: rate (frames over seconds), spread, latency_ms (median)
        self.chosen: str | None = None
        self.why = ""
        self.recalled: dict | None = None  # the stored record this run started from
        self.trial_frames = 0  # results that went to trials (warm-up included)
        self._plan = [m for _ in range(ROUNDS) for m in candidates]  # the trials still to run
        record = memory.recall() if memory is not None and not retune else None
        if record is not None and record["mode"] in candidates:
            self.recalled, self.chosen, self._plan = record, record["mode"], []
            self.modes, self.why = record.get("modes", {}), record.get("why", "")
        first = self.chosen or self._plan[0]
        self._lanes = lane_replicas(seg) if prepare and "throughput" in self._plan else None
        self.run: RunMode = self._make(first)
        self._trial = _Trial(first) if self._plan else None
        self._pending: str | None = None  # the mode to run once the current one has drained

    def _make(self, mode: str) -> RunMode:
        if mode == "throughput":
            run = Throughput(self.seg, self.take, self.finish, ready=self._lanes)
            if self._plan == [] and self.chosen == "throughput":  # for good: the original's copy is not needed
                release(self.seg, run.lanes)
            return run
        return FIXED[mode](self.seg, self.take, self.finish)

    def next(self, timeout: float) -> tuple[object, Job] | None:
        while True:
            try:
                item = self.run.next(timeout)
            except Drained:
                self.run.close()
                self.run, self._pending = self._make(self._pending), None
                continue
            if item is not None and self._trial is not None and self._pending is None:
                self._count(item[1])
            return item

    def _switch(self, mode: str) -> None:
        """Run `mode` next: at once when nothing is in flight (sequential), after the drain otherwise."""
        if not self.run.in_flight:
            self.run.close()
            self.run = self._make(mode)
        else:
            self._pending = mode
            self.run.drain()  # its images in flight come first, then Drained switches

    def _count(self, job: Job) -> None:
        now = self.clock()
        t = self._trial
        t.seen += 1
        self.trial_frames += 1
        if t.seen <= self.warmup:
            if t.seen == self.warmup:
                t.t0 = now
            return
        t.frames, t.t_last = t.frames + 1, now
        t.latency.append(now - job.t_taken)
        if t.frames < self.trial or t.seconds < self.trial_s or t.seconds <= 0:
            return
        self.trials.append({"mode": t.mode, "frames": t.frames, "seconds": round(t.seconds, 4),
                            "rate": round(per_second(t.frames, t.seconds), 3),
                            "latency_ms": round(statistics.median(t.latency) * 1e3, 2)})
        self._plan.pop(0)
        if not self._plan:
            self.modes = figures(self.trials, self.candidates)
            again = self.contest(self.modes)
            if again and max(self.modes[m]["trials"] for m in again) < MAX_ROUNDS:  # one more round of these
                self._plan = sorted(again, key=lambda m: m == self.run.mode)  # the running mode last: one switch
        if self._plan:
            self._trial = _Trial(self._plan[0])
            if self._plan[0] != self.run.mode:
                self._switch(self._plan[0])
            return
        self._trial = None
        self._decide()
        if self.chosen != "throughput":
            self._lanes = None  # their memory back once the throughput runner, if running, has drained
        elif isinstance(self.run, Throughput):  # throughput for good: the original's copy is not needed
            release(self.seg, self.run.lanes)
        if self.chosen != self.run.mode:
            self._switch(self.chosen)

    def _decide(self) -> None:
        modes = self.modes = figures(self.trials, self.candidates)
        self.chosen, self.why = self.rule(modes)
        if self.memory is not None:
            self.memory.store({"mode": self.chosen, "why": self.why, "modes": modes, "trials": self.trials,
                               "how": f"{ROUNDS} interleaved trials per mode (up to {MAX_ROUNDS} for a contested "
                                      f"lead), each {self.trial}+ frames and "
                                      f"{self.trial_s:g}+ s after {self.warmup} warm-up results; rate = frames / "
                                      f"seconds",
                               "measured": time.strftime("%Y-%m-%d %H:%M:%S")})

    @property
    def active(self) -> str:
        return self.run.mode

    def _trial_no(self) -> str:
        done = len(self.trials) + 1
        return f"{done}/{done + len(self._plan) - 1}"

    def describe(self) -> str:
        if self.chosen is None:
            return f"auto (measuring {self.run.mode}: trial {self._trial_no()})"
        figures = ", ".join(f"{m} {v['rate']:.1f}/s spread {v['spread']:.1f}, latency {v['latency_ms']:.0f} ms"
                            for m, v in self.modes.items())
        source = f"remembered from {self.recalled.get('measured', 'an earlier run')}" if self.recalled else "measured"
        return f"auto: {self.chosen} ({source}: {self.why}; {figures})"

    def brief(self) -> str:
        if self.chosen is None:
            return f"{self.run.mode} (auto: trial {self._trial_no()})"
        if self.recalled:
            return f"{self.chosen} (auto, remembered)"
        return f"{self.chosen} (auto: {self.why.split(':')[0]})"

    def summary(self) -> dict:
        """What was chosen and why, for --stats."""
        return {"chosen": self.chosen, "why": self.why, "remembered": self.recalled is not None,
                "measured": (self.recalled or {}).get("measured"), "modes": self.modes,
                "trials": self.trials or (self.recalled or {}).get("trials", []), "trial_frames": self.trial_frames,
                "trials_planned": 0 if self.recalled else len(self.trials) + len(self._plan),
                "memory_error": getattr(self.memory, "error", None)}

    def close(self) -> None:
        self.run.close()
