"""The parity tool: instance matching, and the first stage that diverges."""
from __future__ import annotations

import json

import cv2
import numpy as np

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
    assert "2 of 2 model-image pairs PASS" in out
    rows = json.loads(report.read_text())
    assert [r["verdict"] for r in rows] == ["PASS", "PASS"] and rows[0]["first_divergence"] == "none"
    assert rows[0]["ref_instances"] == rows[0]["matched"] > 0
