"""runtimes/modes/throughput.py: lanes of model replicas give predict()'s instances for every image, in the order taken, on
every CPU backend; failures end the stream in order; the lanes' threads end; backends that cannot replicate say so.
Real ONNX Runtime, OpenVINO and LiteRT inference of the tiny conversions of the default model."""
from __future__ import annotations

import threading

import pytest

from cmlite import runtimes
from cmlite.calibration.synth_scene import MovingScene
from cmlite.runtimes.errors import SettingsError
from cmlite.runtimes.modes import Auto, runner, stream
from cmlite.runtimes.modes.throughput import Throughput, replicas
from tests.test_overlap import _run, _same, _take_from


@pytest.fixture(scope="module")
def frames():
    scene = MovingScene(200, 160, seed=3)
    return [scene.render(i / 8) for i in range(12)]


@pytest.mark.parametrize("name", ["onnx-int8", "openvino-int8", "tflite-int8", "openvino-fp32"])
def test_lanes_give_predicts_instances_in_order(tiny_models, frames, name):
    """Each lane runs with one thread: the reference too, as OpenVINO's FP32 sums depend on how threads split them."""
    seg = runtimes.load(tiny_models[name], threads=2)
    one = runtimes.load(tiny_models[name], threads=1)
    expected = [one.predict(f) for f in frames]
    got = list(stream(seg, list(enumerate(frames)), mode="throughput"))
    assert [k for k, _ in got] == list(range(len(frames)))
    for (_, job), want in zip(got, expected):
        _same(job.instances, want)
    assert not [t for t in threading.enumerate() if t.name.startswith("cmlite-lane")]


def test_replicas_split_the_threads_and_keep_the_settings(tiny_models):
    seg = runtimes.load(tiny_models["onnx-fp32"], threads=4, score_thresh=0.4)
    lanes = replicas(seg, 2, 4)
    assert [lane.threads for lane in lanes] == [2, 2]
    assert all(lane.config.score_thresh == 0.4 for lane in lanes)
    assert lanes[0] is lanes[1] and lanes[0] is not seg  # ONNX Runtime: one session the lanes call at once
    tfl = runtimes.load(tiny_models["tflite-fp32"], threads=2)
    assert len({id(lane) for lane in replicas(tfl, 2, 2)}) == 2  # LiteRT: an interpreter per lane
    ov = runtimes.load(tiny_models["openvino-int8"], threads=2)
    lanes = replicas(ov, 2, 2)  # one compiled model, a request per lane
    assert lanes[0].requests["dense"][0] is not lanes[1].requests["dense"][0]
    with pytest.raises(SettingsError, match="at least 1"):
        replicas(seg, 0, 2)


def test_a_failure_ends_the_stream_in_order(tiny_models, frames):
    """A failure (not a refused input) on image 4, in whichever lane takes it: images 0-3 come out, in order, then
    the failure, also on later calls; the lanes' threads end."""
    seg = runtimes.load(tiny_models["onnx-fp32"], threads=2)
    run = Throughput(seg, _take_from(frames), lanes=2)
    for lane in run.lanes:
        def failing(job, real=lane.host):
            if job.image is frames[4]:
                raise RuntimeError("the host work failed")
            real(job)

        lane.host = failing
    got = []
    with pytest.raises(RuntimeError, match="host work failed"):
        while True:
            item = run.next(2.0)
            if item is not None:
                got.append(item[0])
    assert got == [0, 1, 2, 3]
    with pytest.raises(RuntimeError, match="host work failed"):
        run.next(0.1)
    run.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("cmlite-lane")]


def test_pytorch_says_it_cannot():
    from cmlite import lite
    from cmlite.lite.predictor import TorchSegmenter

    seg = TorchSegmenter(lite.load_model(), threads=1)
    with pytest.raises(SettingsError, match="cannot run in throughput mode.*cmlite convert"):
        runner(seg, lambda t: None, "throughput")


@pytest.mark.parametrize("choose", ["throughput", "sequential"])
def test_auto_tries_throughput_and_switches_without_losing_or_reordering(tiny_models, frames, choose):
    """Auto measures sequential, overlap and throughput in turn, twice; forced to either end, every image comes out
    once, in order, each as predict() gives it (INT8 ONNX Runtime: the same on one thread as on two)."""
    seg = runtimes.load(tiny_models["onnx-int8"], threads=2)
    images = frames * 3
    expected = [seg.predict(f) for f in images]
    run = Auto(seg, _take_from(images), trial=2, warmup=1, trial_s=0)
    assert run.candidates == ("sequential", "overlap", "throughput")
    run.rule = lambda modes: (choose, "forced")  # whatever the trials measured (a loaded machine varies)
    run.contest = lambda modes: []  # two rounds, however close the trials came
    out = _run(run)
    assert [k for k, _ in out] == list(range(len(images)))
    assert [t["mode"] for t in run.trials] == ["sequential", "overlap", "throughput"] * 2
    assert set(run.modes) == {"sequential", "overlap", "throughput"} and run.chosen == choose
    for (_, job), want in zip(out, expected):
        _same(job.instances, want)


def test_auto_can_make_the_replicas_before_the_first_image(tiny_models, frames):
    """prepare=True (the camera): the lanes exist before any image is taken, and the throughput trial uses them."""
    seg = runtimes.load(tiny_models["onnx-int8"], threads=2)
    run = Auto(seg, _take_from(frames * 2), trial=2, warmup=1, trial_s=0, prepare=True)
    lanes = run._lanes
    assert lanes and len(lanes) == 2
    made = []
    run._make = lambda mode, real=run._make: made.append(real(mode)) or made[-1]
    run.rule = lambda modes: ("throughput", "forced")
    run.contest = lambda modes: []  # two rounds, however close the trials came
    out = _run(run)
    assert [k for k, _ in out] == list(range(len(frames) * 2))
    assert [r for r in made if r.mode == "throughput"][0].lanes is lanes
    assert Auto(seg, _take_from(frames), trial=2, warmup=1, trial_s=0)._lanes is None  # not asked: made only if its trial comes


@pytest.mark.parametrize("name", ["onnx-int8", "openvino-int8", "tflite-int8"])
def test_the_original_lets_go_of_its_graphs_while_the_lanes_run(tiny_models, frames, name):
    """Throughput mode holds the lanes' copies of the model, not one more: the model they were made from releases
    its graphs, and loads them again when it is used again (the same results)."""
    seg = runtimes.load(tiny_models[name], threads=2)
    want = seg.predict(frames[0])
    run = Throughput(seg, _take_from(frames[:4]), lanes=2)
    assert seg.released and all(getattr(seg, a) is None for a in seg.held)
    assert not any(lane.released for lane in run.lanes)  # the lanes run their own graphs, never the original's again
    got = _run(run)
    assert len(got) == 4 and seg.released and not any(lane.released for lane in run.lanes)
    _same(seg.predict(frames[0]), want)  # loaded again
    assert not seg.released
