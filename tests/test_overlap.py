"""runtimes/modes/: every mode gives predict()'s instances for every image, in order, nothing lost at the end,
including when auto switches modes in the middle of a stream; unreadable images and failures are reported in
order; the runners' threads end. Real ONNX Runtime inference of the embedded default model."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from cmlite import runtimes
from cmlite.calibration.synth_scene import MovingScene
from cmlite.runtimes.errors import CmliteError, ImageError
from cmlite.runtimes.modes import Auto, runner, stream
from cmlite.runtimes.modes.overlap import Overlapped
from cmlite.runtimes.modes.sequential import Sequential


@pytest.fixture(scope="module")
def seg(default_onnx):
    return runtimes.load(default_onnx, threads=2)


@pytest.fixture(scope="module")
def frames():
    scene = MovingScene(640, 480, seed=5)
    return [scene.render(i / 10) for i in range(20)]


@pytest.fixture(scope="module")
def expected(seg, frames):
    return [seg.predict(f) for f in frames]


def _same(got, want) -> None:
    assert len(got) == len(want)
    for f in ("boxes", "scores", "classes", "mask_scores"):
        np.testing.assert_array_equal(getattr(got, f), getattr(want, f))
    np.testing.assert_array_equal(got.masks, want.masks)


def _take_from(frames):
    it = iter(enumerate(frames))
    return lambda timeout: next(it)


def _run(run, n_max=1000):
    out = []
    try:
        while len(out) < n_max:
            item = run.next(1.0)
            if item is not None:
                out.append(item)
    except StopIteration:
        pass
    finally:
        run.close()
    return out


@pytest.mark.parametrize("mode", ["sequential", "overlap", "auto"])
def test_every_mode_gives_predicts_instances_in_order(seg, frames, expected, mode):
    drawn = []
    out = list(stream(seg, ((i, f) for i, f in enumerate(frames)), mode, finish=lambda k, job: drawn.append(k)))
    assert [k for k, _ in out] == list(range(len(frames))) == drawn  # all of them, in order, finished once each
    for (k, job), want in zip(out, expected):
        _same(job.instances, want)
        assert set(job.timings) == set(seg.STAGES) and job.error is None


@pytest.mark.parametrize("choose", ["overlap", "sequential"])
def test_auto_switches_without_losing_or_reordering(seg, frames, expected, choose):
    """Short trials (each mode twice, interleaved), then the choice forced either way: to sequential, the
    overlapped images in flight are finished first (drained), then sequential goes on."""
    run = Auto(seg, _take_from(frames), trial=2, warmup=1, trial_s=0, candidates=("sequential", "overlap"))
    run.rule = lambda modes: (choose, "forced")  # whatever the trials measured (a loaded CI machine varies)
    run.contest = lambda modes: []  # two rounds, however close the trials came
    out = _run(run)
    assert [k for k, _ in out] == list(range(len(frames)))
    assert [t["mode"] for t in run.trials] == ["sequential", "overlap"] * 2
    assert run.chosen == choose and set(run.modes) == {"sequential", "overlap"}
    assert run.describe().startswith(f"auto: {choose} (measured: forced")
    for (_, job), want in zip(out, expected):
        _same(job.instances, want)


def test_an_unreadable_image_is_reported_in_its_place(seg, frames, expected):
    def bad():
        raise ImageError("cannot decode image broken.png")

    items = [(0, frames[0]), (1, bad), (2, lambda: frames[2])]
    for mode in ("sequential", "overlap"):
        out = list(stream(seg, items, mode))
        assert [k for k, _ in out] == [0, 1, 2]
        assert out[1][1].error is not None and out[1][1].instances is None
        _same(out[2][1].instances, expected[2])


class Broken(Exception):
    pass


@pytest.mark.parametrize("stage", ["graph2", "graph1"])
def test_a_failure_stops_the_stream_in_order_and_the_threads_end(seg, frames, stage):
    """A backend failure on image 3, in graph 2 (the back thread's) or graph 1 (run from the graph thread's queue):
    images 0-2 come out, then the failure is raised (and again on later calls); the runner's threads are gone
    after close()."""
    calls = [0]
    real = getattr(seg, stage)

    def failing(job):
        calls[0] += 1
        if calls[0] == 4:
            raise Broken("the graph failed")
        real(job)

    setattr(seg, stage, failing)
    try:
        run = Overlapped(seg, _take_from(frames))
        got = []
        with pytest.raises(Broken):
            while True:
                item = run.next(1.0)
                if item is not None:
                    got.append(item[0])
        assert got == [0, 1, 2]
        with pytest.raises(Broken):
            run.next(0.1)
        run.close()
    finally:
        delattr(seg, stage)
    assert not [t for t in threading.enumerate() if t.name.startswith("cmlite-")]


def test_close_in_the_middle_ends_the_threads(seg, frames):
    for cls in (Overlapped, Auto):
        run = cls(seg, _take_from(frames * 10))
        assert run.next(5.0) is not None
        run.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("cmlite-")]


def test_modes_are_checked(seg):
    with pytest.raises(ValueError, match="unknown mode"):
        runner(seg, lambda t: None, "fast")
    assert isinstance(runner(seg, lambda t: None, "sequential"), Sequential)


def test_the_host_threads_yield_to_the_graphs(seg, frames):
    """Linux: the stage threads run SCHED_IDLE, the graph thread at the process's priority."""
    import os

    if not hasattr(os, "SCHED_IDLE"):
        pytest.skip("no SCHED_IDLE on this platform")
    seen = {}
    real = seg.host

    def spy(job):
        seen["host"] = os.sched_getscheduler(0)
        real(job)

    seg.host = spy
    try:
        _run(Overlapped(seg, _take_from(frames[:3])))
    finally:
        del seg.host
    assert seen["host"] == os.SCHED_IDLE


def test_a_source_failure_reaches_the_caller(seg):
    def take(timeout):
        raise CmliteError("camera 0 cannot be opened")

    for cls in (Sequential, Overlapped):
        run = cls(seg, take)
        with pytest.raises(CmliteError, match="camera 0"):
            for _ in range(50):
                run.next(0.5)
        run.close()


def test_the_next_image_is_preprocessed_while_graph_1_runs(seg, frames, expected):
    """Overlapped: image n+1 is taken and preprocessed while image n's graph 1 runs, so the graph thread finds its
    next input ready; the results stay predict()'s, in order. Graph 1 of the first image waits until the second
    is preprocessed: a front that waited for graph 1 before taking the next image would never get there."""
    second_ready = threading.Event()
    seen = {"preprocessed": 0, "graph1 saw the next image": None}
    real = {k: getattr(seg, k) for k in ("preprocess", "graph1")}

    def preprocess(job):
        real["preprocess"](job)
        seen["preprocessed"] += 1
        if seen["preprocessed"] == 2:
            second_ready.set()

    def graph1(job):
        if seen["graph1 saw the next image"] is None:
            seen["graph1 saw the next image"] = second_ready.wait(10)
        real["graph1"](job)

    seg.preprocess, seg.graph1 = preprocess, graph1
    try:
        got = _run(Overlapped(seg, _take_from(frames)))
    finally:
        del seg.preprocess, seg.graph1
    assert seen["graph1 saw the next image"] is True
    assert [k for k, _ in got] == list(range(len(frames)))
    for (_, job), want in zip(got, expected):
        _same(job.instances, want)
