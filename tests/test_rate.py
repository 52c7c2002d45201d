"""runtimes/rate.py and auto's measurement (runtimes/modes/auto.py): rates are frames over the seconds they took,
so lanes that finish their frames in pairs measure their true rate (1 / the median interval, the old formula,
reads several times too fast or too slow); auto's rule, trials and memory."""
from __future__ import annotations

import json
import statistics

import pytest

from cmlite.runtimes.modes import Auto, Memory
from cmlite.runtimes.modes.auto import MAX_ROUNDS, choose, contested
from cmlite.runtimes.modes.base import Drained, RunMode
from cmlite.runtimes.pipeline import Job
from cmlite.runtimes.rate import RecentRate, frames_per_second, spread, window_rates


def paired(n: int, rate: float, inside: float = 0.004) -> list[float]:
    """Two lanes finishing together: frame pairs `inside` seconds apart, a pair every 2 / rate seconds."""
    return [(i // 2) * 2 / rate + (i % 2) * inside for i in range(n)]


def old_formula(times) -> float:
    return 1 / statistics.median(b - a for a, b in zip(times, times[1:]))


def test_paired_frames_measure_their_true_rate():
    times = paired(62, 20.0)
    assert frames_per_second(times) == pytest.approx(20.0, rel=0.02)
    assert old_formula(times) > 100  # the interval's median is the gap inside a pair: 250/s for 20/s
    assert frames_per_second([0.0]) is None and frames_per_second([1.0, 1.0]) is None


def test_now_on_a_10_fps_source_reads_10():
    now = RecentRate()
    for i in range(50):
        now.add(i / 10)
        if i >= 10:
            assert now.rate(i / 10) == pytest.approx(10.0, abs=1.0)
    assert now.rate(4.95) == pytest.approx(10.0, abs=1.0)
    assert now.rate(6.5) == 0.0  # nothing for more than a second: the source stalled
    lanes = RecentRate()  # the same 10 fps from two lanes in pairs
    for t in paired(60, 10.0):
        lanes.add(t)
        assert lanes.rate() is None or t < 1 or lanes.rate() == pytest.approx(10.0, abs=1.0)


def test_window_rates_give_a_runs_spread():
    times = [i / 10 for i in range(31)] + [3.0 + i / 20 for i in range(1, 21)]  # 3 s at 10 fps, 1 s at 20 fps
    rates = window_rates(times)
    assert [round(r, 3) for r in rates] == [10.0, 10.0, 10.0, 20.0]
    assert spread(rates) == {"min": 10.0, "p50": 10.0, "max": 20.0, "count": 4}
    assert window_rates(times[:5]) == [] and spread([]) is None


class Clock:
    t = 0.0

    def __call__(self) -> float:
        return self.t


class Lanes(RunMode):
    """A fake mode that finishes `lanes` images together every lanes / rate seconds of a fake clock, each
    `latency` seconds after it was taken: what a throughput runner's results look like to auto."""

    def __init__(self, take, clock: Clock, rate: float, lanes: int, latency: float, mode: str):
        super().__init__(None, take)
        self.clock, self.rate, self.lanes, self.latency, self.mode = clock, rate, lanes, latency, mode
        self.done, self.t_start, self.drained = 0, clock.t, False

    def next(self, timeout):
        if self.drained:
            raise Drained
        key, _ = self.take(timeout)
        k, j = divmod(self.done, self.lanes)
        self.clock.t = self.t_start + (k + 1) * self.lanes / self.rate + j * 0.002
        self.done += 1
        return key, Job(None, t_taken=self.clock.t - self.latency)

    def drain(self):
        self.drained = True


class FakeAuto(Auto):
    def __init__(self, figures: dict, clock: Clock, **kw):
        self.figures, self.made = figures, []
        self.clock = clock
        super().__init__(None, lambda t: (next(self.keys), None), candidates=tuple(figures), trial=40, warmup=3,
                         trial_s=0.5, **kw)

    keys = iter(range(10 ** 6))

    def _make(self, mode):
        rate, lanes, latency = self.figures[mode]
        if isinstance(rate, list):  # a rate per trial of this mode: a noisy machine
            rate = rate[min(self.made.count(mode), len(rate) - 1)]
        self.made.append(mode)
        return Lanes(self.take, self.clock, rate, lanes, latency, mode)


FIGURES = {"sequential": (20.0, 1, 0.050), "overlap": (24.0, 1, 0.080), "throughput": (30.0, 2, 0.066)}


def _run_auto(run, frames: int = 600) -> list:
    for _ in range(frames):
        run.next(1.0)
    return run.made


def test_auto_measures_paired_lanes_at_their_true_rate_and_picks_the_fastest():
    run = FakeAuto(FIGURES, Clock())
    made = _run_auto(run)
    assert [t["mode"] for t in run.trials] == ["sequential", "overlap", "throughput"] * 2
    for mode, (rate, _, latency) in FIGURES.items():
        assert run.modes[mode]["rate"] == pytest.approx(rate, rel=0.03), (mode, run.modes[mode])
        assert run.modes[mode]["latency_ms"] == pytest.approx(latency * 1e3, abs=0.5)
    assert run.chosen == "throughput" and made[-1] == "throughput" and run.why.startswith("fastest: 1.25x overlap")
    assert run.brief() == "throughput (auto: fastest)"
    assert "throughput 30.0/s" in run.describe()


def test_the_rule_ties_inside_the_spread_go_to_the_lower_latency():
    m = {"sequential": {"rate": 30.0, "spread": 0.5, "latency_ms": 30.0},
         "overlap": {"rate": 31.0, "spread": 1.0, "latency_ms": 60.0},
         "throughput": {"rate": 32.5, "spread": 0.4, "latency_ms": 65.0}}
    assert choose(m)[0] == "throughput"  # 1.5/s over overlap: beyond both spreads
    m["throughput"]["spread"] = 2.2  # 32.5 +- 1.1 now overlaps overlap's 31.0 +- 0.5; sequential's 30.0 +- 0.25 not
    mode, why = choose(m)
    assert mode == "overlap" and why.startswith("a tie, the lower latency: throughput's lead (1.5/s)")
    m["sequential"]["rate"] = 31.8  # within 3% of 32.5: every mode ties, sequential answers first
    assert choose(m)[0] == "sequential"
    m = {"sequential": {"rate": 30.0, "spread": 0.1, "latency_ms": 30.0},
         "overlap": {"rate": 40.0, "spread": 0.1, "latency_ms": 90.0}}  # 60 ms over: more than 2 of its frames
    mode, why = choose(m)
    assert mode == "sequential" and "overlap left out (latency 90 ms" in why


def test_a_lead_only_the_trials_error_ties_is_contested():
    m = {"sequential": {"rate": 22.6, "spread": 6.0, "error": 3.0, "latency_ms": 45.0},
         "throughput": {"rate": 25.2, "spread": 0.5, "error": 0.25, "latency_ms": 70.0}}
    assert choose(m)[0] == "sequential" and contested(m) == ["sequential", "throughput"]
    m["sequential"]["error"] = 1.5  # the error shrinks with more trials: the lead is clear
    assert choose(m)[0] == "throughput" and contested(m) == []
    m["sequential"].update(rate=24.8, error=3.0)  # under 3%: a tie that more trials cannot settle
    assert choose(m)[0] == "sequential" and contested(m) == []
    stored = {"sequential": {"rate": 22.6, "spread": 6.0, "latency_ms": 45.0},  # a record from before the error
              "throughput": {"rate": 25.2, "spread": 0.5, "latency_ms": 70.0}}
    assert choose(stored)[0] == "sequential"


def _noisy(sequential: list[float]) -> dict:
    return {"sequential": (sequential, 1, 0.045), "throughput": (25.0, 2, 0.070)}


def test_a_noisy_trial_costs_another_round_not_the_choice():
    run = FakeAuto(_noisy([20.0, 26.0, 22.0, 22.0]), Clock())  # the second sequential trial ran at 26
    _run_auto(run)
    assert [t["mode"] for t in run.trials] == ["sequential", "throughput"] * 3  # one more round settled it
    assert run.modes["sequential"]["trials"] == 3 and run.chosen == "throughput"
    assert run.summary()["trials_planned"] == 6 and run.why.startswith("fastest")
    steady = FakeAuto(_noisy([20.0, 20.5]), Clock())
    _run_auto(steady)
    assert len(steady.trials) == 4 and steady.chosen == "throughput"  # a clear lead: two rounds, as before
    wild = FakeAuto(_noisy([20.0, 30.0] * MAX_ROUNDS), Clock())  # never settles
    _run_auto(wild, 1500)
    assert [t["mode"] for t in wild.trials].count("sequential") == MAX_ROUNDS and wild.chosen == "sequential"
    assert wild.why.startswith("a tie, the lower latency")


def test_a_second_run_starts_in_the_remembered_mode_with_no_trials(tmp_path):
    memory = Memory({"cpu": "test", "model": "m", "source": "video"}, tmp_path / "auto-modes.json")
    first = FakeAuto(FIGURES, Clock(), memory=memory)
    _run_auto(first)
    assert first.chosen == "throughput" and first.trial_frames > 100
    stored = json.loads(memory.path.read_text())["choices"][memory.id]
    assert stored["mode"] == "throughput" and stored["modes"]["throughput"]["rate"] == pytest.approx(30, rel=0.03)
    assert "interleaved trials" in stored["how"] and stored["key"]["source"] == "video"
    second = FakeAuto(FIGURES, Clock(), memory=Memory(memory.key, memory.path))
    made = _run_auto(second, 50)
    assert made == ["throughput"] and second.trial_frames == 0 and second.chosen == "throughput"
    assert second.brief() == "throughput (auto, remembered)" and second.summary()["remembered"]
    other = FakeAuto(FIGURES, Clock(), memory=Memory({**memory.key, "source": "camera"}, memory.path))
    assert other.chosen is None  # another kind of source measures its own
    again = FakeAuto(FIGURES, Clock(), memory=Memory(memory.key, memory.path), retune=True)
    _run_auto(again)
    assert again.trial_frames > 100 and again.recalled is None


def test_a_broken_or_unwritable_memory_costs_the_memory_only(tmp_path):
    path = tmp_path / "auto-modes.json"
    path.write_text("{not json")
    run = FakeAuto(FIGURES, Clock(), memory=Memory({"k": 1}, path))
    assert run.chosen is None
    _run_auto(run)
    assert run.chosen == "throughput" and json.loads(path.read_text())["choices"]  # rewritten whole
    blocked = tmp_path / "file"
    blocked.write_text("")
    run = FakeAuto(FIGURES, Clock(), memory=Memory({"k": 1}, blocked / "auto-modes.json"))
    _run_auto(run)
    assert run.chosen == "throughput" and "cannot remember auto's choice" in run.summary()["memory_error"]
