"""The parity tool: instance matching, and the first stage that diverges."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from cmlite import lite
from cmlite.apps.cli import main
from cmlite.apps.parity import compare, match_instances
from cmlite.runtimes.decode import box_iou_matrix

from .conftest import IMAGE


def test_coinciding_point_boxes_pair_up():
    a = np.array([[5, 5, 5, 5], [0, 0, 10, 10]], np.float32)
    b = np.array([[5, 5, 5, 5], [6, 5, 6, 5], [0, 0, 10, 5]], np.float32)
    np.testing.assert_allclose(box_iou_matrix(a, b), [[1, 0, 0], [0, 0, 0.5]])


def test_match_instances_by_class_and_iou(ref_run):
    inst = ref_run[0]
    perm = np.random.default_rng(0).permutation(len(inst))
    shuffled = inst[perm]
    matches, extra = match_instances(inst, shuffled)
    assert not extra and all(m.got >= 0 and m.box_iou == 1.0 and m.mask_iou == 1.0 for m in matches)
    assert all(perm[m.got] == m.ref for m in matches)
    other = inst[:10]
    other.classes = (other.classes + 1) % 80  # a different class never matches
    matches, extra = match_instances(inst[:10], other)
    assert all(m.got < 0 for m in matches) and len(extra) == 10


class _NoisyMasks(lite.TorchSegmenter):
    """The eager model with graph 2 perturbed, as a badly converted mask head would be."""

    def infer_masks(self, rois, onehot):
        out = super().infer_masks(rois, onehot)
        out["maskiou"] = out["maskiou"] * 1.5
        return out


def test_first_divergence_names_the_stage(ref_model, ref_run):
    img = cv2.imread(str(IMAGE))
    same = compare(ref_run[:2], lite.predictor(ref_model), img)
    s = same.summary()  # no divergence means something only when there are instances, all matched
    assert same.first_divergence is None and s["min_mask_iou"] == 1.0
    assert s["ref_instances"] == s["instances"] == s["matched"] == 50
    noisy = compare(ref_run[:2], _NoisyMasks(ref_model), img)
    assert noisy.first_divergence == "graph2"
    assert [n for n, _, ok in noisy.stages if ok] == ["input", "graph1", "proposals", "levels", "roi_align",
                                                       "instances"]


def test_parity_of_a_fixed_size_folder_runs_both_at_its_input(default_models, tmp_path, capsys):
    """Before: a correct TFLite FP32 conversion (fixed 320x320) against PyTorch (dynamic) read "first divergence:
    input, error inf". Now both run at the folder's input, each model and image ends with a verdict, every -v
    table says whose it is, and --weights defaults to the embedded default like every other command."""
    from cmlite.calibration.synth_scene import MovingScene

    frame = tmp_path / "frame.png"
    cv2.imwrite(str(frame), MovingScene(640, 480, seed=2).render(0.5))
    folders = [str(default_models[n]) for n in ("tflite-fp32", "onnx-fp32")]
    report = tmp_path / "parity.json"
    assert main(["parity", "--model", folders[0], "--model", folders[1], str(frame), "-v", "--json",
                 str(report)]) == 0
    out = capsys.readouterr().out
    assert "tflite-fp32 on frame.png (fp32 tolerances, input 320x320):" in out
    assert "onnx-fp32 on frame.png (fp32 tolerances, input 320x448):" in out
    assert "2 of 2 models PASS" in out and "fp32 PASS: 100% of the reference's instances" in out
    report = json.loads(report.read_text())
    assert [m["verdict"] for m in report["models"]] == ["PASS", "PASS"] and report["criteria"]["fp32"]["stages"]
    rows = report["pairs"]
    assert rows[0]["first_divergence"] == "none" and rows[0]["ref_instances"] == rows[0]["matched"] > 0


def _broken(folder, out, how: str):
    """A copy of an INT8 ONNX folder broken as a faulty conversion would be, its manifest's hashes made to match
    (so that only the verdict can tell): "wrong scales" (the first conv's weight scales x 3), "swapped graph" (graph 2
    of another model: its weights redrawn, same shapes), "skipped layer" (the backbone's first conv that keeps its input's shape, bypassed)."""
    import shutil

    import onnx
    from onnx import numpy_helper

    from cmlite.runtimes.manifest import read_manifest, sha256

    shutil.copytree(folder, out)
    m = read_manifest(out)
    kind = "masks" if how == "swapped graph" else "dense"
    path = out / m.graphs[kind].file
    proto = onnx.load(str(path))
    g = proto.graph
    init = {t.name: t for t in g.initializer}
    producer = {o: n for n in g.node for o in n.output}

    def weight_dq(conv):  # the DequantizeLinear that gives a conv its weights, from an int8 initializer
        dq = producer.get(conv.input[1])
        return dq if dq is not None and dq.op_type == "DequantizeLinear" and dq.input[0] in init else None

    if how == "wrong scales":
        conv = next(n for n in g.node if n.op_type == "Conv" and weight_dq(n))
        scale = init[weight_dq(conv).input[1]]
        scale.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(scale) * 3, scale.name))
    elif how == "swapped graph":
        rng = np.random.default_rng(0)
        for t in g.initializer:
            a = numpy_helper.to_array(t)
            if a.dtype == np.float32 and a.size > 1:  # scales, biases, norms: redrawn at their own spread
                t.CopyFrom(numpy_helper.from_array((rng.permutation(a.ravel())).reshape(a.shape).astype(a.dtype),
                                                   t.name))
            elif a.dtype == np.int8:  # the quantized weights
                t.CopyFrom(numpy_helper.from_array(rng.permutation(a.ravel()).reshape(a.shape), t.name))
    else:
        def same_shape(n):  # stride 1, one group, as many channels out as in
            w = weight_dq(n)
            strides = next((list(a.ints) for a in n.attribute if a.name == "strides"), [1, 1])
            group = next((a.i for a in n.attribute if a.name == "group"), 1)
            return w is not None and strides == [1, 1] and group == 1 and \
                init[w.input[0]].dims[0] == init[w.input[0]].dims[1]
        conv = next(n for n in g.node if n.op_type == "Conv" and "backbone" in n.name and same_shape(n))
        for n in g.node:  # its readers read its input instead
            n.input[:] = [conv.input[0] if i == conv.output[0] else i for i in n.input]
        g.node.remove(conv)
    onnx.save(proto, str(path))
    m.graphs[kind].sha256, m.graphs[kind].bytes = sha256(path), path.stat().st_size
    m.write(out)
    return out


@pytest.mark.parametrize("how", [None, "wrong scales", "swapped graph", "skipped layer"])
def test_the_int8_verdict_passes_a_correct_conversion_and_fails_broken_ones(how, tiny_models, tmp_path):
    """Judged on the instances a user sees, over the images: the correct INT8 conversion passes, each broken one
    fails, and says which criterion it missed."""
    from cmlite import runtimes
    from cmlite.apps.parity import judge
    from cmlite.runtimes.images import read_bgr

    folder = tiny_models["onnx-int8"] if how is None else _broken(tiny_models["onnx-int8"], tmp_path / "b", how)
    reference = lite.predictor(tiny_models["model"], threads=2)
    seg = runtimes.load(folder, threads=2)
    results = [compare(reference, seg, read_bgr(f), "int8") for f in sorted(tiny_models["val"].iterdir())]
    v = judge(results, "int8")
    assert v.figures["instances"] >= 20, v.figures  # enough to judge
    assert v.passed == (how is None), (how, v.figures, v.failed)
    if how is not None:
        assert v.failed and all(":" in f for f in v.failed)


def test_parity_prints_what_pass_promises_and_fails_a_broken_int8_model(tiny_models, tmp_path, capsys):
    """The command: the criteria in the output, the correct INT8 folder PASS, a broken one FAIL (exit 1)."""
    broken = _broken(tiny_models["onnx-int8"], tmp_path / "onnx-int8-broken", "wrong scales")
    images = [str(f) for f in sorted(tiny_models["val"].iterdir())]
    argv = ["parity", *images, "--model", str(tiny_models["onnx-int8"]), "--model", str(broken),
            "--min-size", "128", "--max-size", "160", "--json", str(tmp_path / "p.json")]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "int8 PASS: 95% of the reference's instances scoring >= 0.3 found" in out
    assert "1 of 2 models PASS; FAIL: onnx-int8-broken" in out
    report = json.loads((tmp_path / "p.json").read_text())
    assert [m["verdict"] for m in report["models"]] == ["PASS", "FAIL"]
    assert report["criteria"]["int8"]["min_score"] == 0.3 and len(report["pairs"]) == 2 * len(images)


def test_no_instance_to_judge_is_no_verdict_not_a_fail(ref_model, ref_run):
    """The reference checkpoint (random weights) scores every instance 0.20-0.29: under INT8's floor of 0.3 there is
    nothing to judge, which is said as such, not as a FAIL; --min-score lowers the floor."""
    from cmlite.apps.parity import judge

    img = cv2.imread(str(IMAGE))
    res = compare(ref_run[:2], lite.predictor(ref_model), img, "int8")
    v = judge([res], "int8")
    assert v.word == "NO VERDICT" and "--min-score" in v.failed[0]
    v = judge([res], "int8", min_score=0.2)
    assert v.word == "PASS" and v.figures["instances"] == 50 and v.criteria.min_score == 0.2
