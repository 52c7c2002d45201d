"""The parity tool: instance matching, and the first stage that diverges."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from benchmarks.broken_int8 import HOWS, broken_int8
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


@pytest.mark.parametrize("how", [None, *HOWS])
def test_the_int8_verdict_passes_a_correct_conversion_and_fails_broken_ones(how, tiny_models, tmp_path):
    """Judged on the instances a user sees, over the images: the correct INT8 conversion passes, each broken one
    fails, and says which criterion it missed."""
    from cmlite import runtimes
    from cmlite.apps.parity import judge
    from cmlite.runtimes.images import read_bgr

    folder = tiny_models["onnx-int8"] if how is None else broken_int8(tiny_models["onnx-int8"], tmp_path / "b", how)
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
    broken = broken_int8(tiny_models["onnx-int8"], tmp_path / "onnx-int8-broken", "wrong scales")
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
    assert v.word == "PASS" and v.criteria.min_score == 0.2
    # it fills the detection cap (50), its lowest kept score 0.20: those within INT8's score tolerance of it may
    # come and go (which of such near-ties the cap keeps is rounding), every pair found is still compared
    f = v.figures
    assert f["compared"] == 50 and f["instances"] + f["at_cap"] == 50 and f["at_cap"] >= 40, f


def test_near_ties_at_the_detection_cap_may_come_and_go():
    """An image that fills the detection cap keeps the top N of its scores: where its lowest kept ones are near-tied,
    rounding picks which stay. Those within the precision's score tolerance of the cap's lowest score may be missed or
    new; a miss or a new one above that band counts, and the pairs found are compared either way."""
    from cmlite.apps.parity import Match, ParityResult, judge

    def result(ref_scores, missed, extra_scores, cap_score):
        matches = [Match(i, -1 if i in missed else i, "a", 0.95, 0.97, 0.01, s) for i, s in enumerate(ref_scores)]
        return ParityResult([], matches, list(range(len(extra_scores))), len(ref_scores), 0,
                            extra_scores=extra_scores, cap_score=cap_score)

    scores = [0.9 - 0.01 * i for i in range(40)] + [0.42, 0.41, 0.40]  # the cap keeps 43, the lowest 0.40
    at_cap = result(scores, missed={40, 41, 42}, extra_scores=[0.43, 0.44, 0.45], cap_score=0.40)
    v = judge([at_cap], "int8")
    assert v.passed and v.figures["at_cap"] == 6 and v.figures["compared"] == 40, (v.failed, v.figures)
    uncapped = result(scores, missed={40, 41, 42}, extra_scores=[0.43, 0.44, 0.45], cap_score=float("-inf"))
    v = judge([uncapped], "int8")  # the same, with room left: 3 missed and 3 new of 43 (2 allowed each)
    assert not v.passed and {f.split(":")[0] for f in v.failed} == {"found", "new"}, v.failed
    above = result(scores, missed={0, 1, 2, 41}, extra_scores=[0.6, 0.7, 0.8], cap_score=0.40)
    v = judge([above], "int8")
    assert {f.split(":")[0] for f in v.failed} == {"found", "new"}, v.failed


def test_saved_results_read_back_compare_equal_to_the_run(ref_run):
    """`predict --json` read back (from_coco_results) is the run's instances: what compares an ARM run with an x86
    one. Equal to itself; one mask moved by a few pixels shows in that instance's mask IoU."""
    from cmlite.apps.parity import compare_instances, judge
    from cmlite.calibration.coco_results import from_coco_results, to_coco_results

    inst = ref_run[0]
    ids = list(range(1, 81))
    saved = json.loads(json.dumps(to_coco_results(inst, 7, ids)))
    back = from_coco_results(saved, inst.image_hw, ids, inst.class_names)
    res = compare_instances(inst, back, cap=50)
    assert res.n_ref == res.n_got == len(inst) > 0 and not res.extra
    assert min(m.mask_iou for m in res.matches) == 1.0 and min(m.box_iou for m in res.matches) > 0.999
    assert judge([res], "fp32", min_score=0.0).passed
    shifted = back.masks.copy()
    shifted[0] = np.roll(shifted[0], 3, axis=1)
    moved = from_coco_results(saved, inst.image_hw, ids, inst.class_names)
    moved.box_masks.crops[0] = shifted[0]
    res = compare_instances(inst, moved, cap=50)
    first = next(m for m in res.matches if m.got == 0)
    assert first.mask_iou < 0.99 and all(m.mask_iou == 1.0 for m in res.matches if m.got > 0)
