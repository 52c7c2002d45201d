"""`cmlite predict` end to end: official final instances through the command, COCO JSON, one-line errors."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_util

from cmlite.apps.cli import main

from .conftest import CKPT, IMAGE, box_iou, mask_iou, one_line_error

CMLITE = [str(Path(sys.executable).with_name("cmlite"))]


def test_predict_reproduces_official_instances(tmp_path, reference):
    img = tmp_path / "000000000139.png"  # numeric stem -> image_id 139
    shutil.copy(IMAGE, img)
    out = tmp_path / "results.json"
    proc = subprocess.run(CMLITE + ["predict", "--weights", str(CKPT), str(img), "--json", str(out),
                                    "--save-vis", str(tmp_path / "vis")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "50 instances" in proc.stdout
    res = json.loads(out.read_text())
    assert len(res) == 50 and {r["image_id"] for r in res} == {139}
    from cmlite.lite.classes import COCO_CATEGORY_IDS

    cat_to_class = {c: i for i, c in enumerate(COCO_CATEGORY_IDS)}
    np.testing.assert_array_equal([cat_to_class[r["category_id"]] for r in res], reference["final.classes"])
    xywh = np.array([r["bbox"] for r in res])
    boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
    assert box_iou(boxes, reference["final.boxes"]).min() >= 0.99
    masks = np.stack([mask_util.decode(r["segmentation"]) for r in res])
    assert mask_iou(masks, reference["final.masks"]).min() >= 0.99
    np.testing.assert_allclose([r["score"] for r in res], reference["final.scores"], rtol=1e-4)
    np.testing.assert_allclose([r["mask_score"] for r in res], reference["final.mask_scores"], rtol=1e-4, atol=1e-6)
    vis = cv2.imread(str(tmp_path / "vis" / "000000000139.png"))
    assert vis is not None and vis.shape == (480, 640, 3)


def test_image_ids_never_collide(tmp_path):
    from cmlite.calibration.coco_results import image_ids

    assert image_ids([Path("a/42.jpg"), Path("7.png")]) == [42, 7]  # all numeric and distinct: COCO ids
    # a name that is not a number, or two equal numbers: 1..N in order for all (000001.png and zzz.png both
    # got id 1, and a/000001.png and b/000001.png too)
    assert image_ids([Path("000001.png"), Path("zzz.png")]) == [1, 2]
    assert image_ids([Path("a/000001.png"), Path("b/000001.png")]) == [1, 2]
    assert image_ids([Path("a/42.jpg"), Path("b/cat.jpg"), Path("c/dog.png"), Path("7.png")]) == [1, 2, 3, 4]


def test_missing_image(capsys, tmp_path):
    assert "image not found" in one_line_error(capsys, ["predict", "--weights", str(CKPT), str(tmp_path / "x.jpg")])


def test_unreadable_image(capsys, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 definitely not a jpeg")
    assert "cannot decode image" in one_line_error(capsys, ["predict", "--weights", str(CKPT), str(bad)])


def test_missing_and_bad_checkpoints(capsys, tmp_path):
    err = one_line_error(capsys, ["predict", "--weights", str(tmp_path / "w.pth"), str(IMAGE)])
    assert "checkpoint not found" in err
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"garbage")
    assert "not a readable PyTorch checkpoint" in one_line_error(capsys, ["predict", "--weights", str(bad), str(IMAGE)])


def test_folder_of_images_and_empty_folder(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    assert "no images in folder" in one_line_error(capsys, ["predict", "--weights", str(CKPT),
                                                            str(tmp_path / "empty")])


@pytest.mark.parametrize("argv", [["predict"], ["nope"]])
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2


@pytest.mark.parametrize("flags, message", [
    (["--threads", "0"], "--threads 0: give at least 1"),
    (["--min-size", "0"], "--min-size 0: the test size must be at least 32"),
    (["--min-size", "600", "--max-size", "300"], "--max-size 300 is below --min-size 600"),
    (["--score-thresh", "2"], "--score-thresh 2.0: give a score in [0, 1)"),
])
def test_nonsense_runtime_flags_refused(flags, message, capsys):
    assert message in one_line_error(capsys, ["predict", "--weights", str(CKPT), str(IMAGE), *flags])


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_data_train_convert_parity_commands_end_to_end(tmp_path, capsys):
    """The four commands chained as a user runs them; each option reaches its output."""
    data = tmp_path / "data"
    assert main(["data", "synth", "--out", str(data), "--train", "4", "--val", "2", "--size", "128",
                 "--seed", "3"]) == 0
    ann = json.loads((data / "annotations" / "instances_train.json").read_text())
    assert len(ann["images"]) == 4 and {(i["height"], i["width"]) for i in ann["images"]} == {(128, 128)}
    assert len(json.loads((data / "annotations" / "instances_val.json").read_text())["images"]) == 2
    first = _tree(data)
    assert main(["data", "synth", "--out", str(data), "--train", "4", "--val", "2", "--size", "128",
                 "--seed", "3"]) == 2  # an existing dataset is not replaced without --overwrite
    assert main(["data", "synth", "--out", str(data), "--train", "4", "--val", "2", "--size", "128", "--seed", "3",
                 "--overwrite"]) == 0
    assert _tree(data) == first  # the same command gives the same bytes
    capsys.readouterr()

    run = tmp_path / "run"
    argv = ["train", "--data", str(data / "annotations" / "instances_train.json"), "--images", str(data / "train"),
            "--out", str(run), "--variant", "V-19-slim-eSE", "--min-size", "128", "--max-size", "160",
            "--iters", "2", "--batch", "2", "--warmup", "1", "--ckpt-every", "1", "--no-maskiou", "--threads", "2"]
    assert main(argv) == 0
    ckpt = run / "model_final.pth"
    from cmlite import lite
    import torch

    raw = torch.load(ckpt, weights_only=True)
    assert raw["train"]["config"] == {**raw["train"]["config"], "variant": "V-19-slim-eSE", "min_size": 128,
                                      "max_size": 160, "iters": 2, "batch": 2, "maskiou": False, "warmup": 1}
    model = lite.load_model(ckpt)
    assert model.variant.name == "V-19-slim-eSE" and not model.variant.maskiou
    assert (model.config.min_size, model.config.max_size) == (128, 160) and len(model.class_names) == 8
    assert len((run / "train_log.jsonl").read_text().splitlines()) == 2
    assert main(argv[:-2] + ["--batch", "4", "--resume"]) == 2  # other settings: refused, not mixed
    assert "other settings" in capsys.readouterr().err

    models = tmp_path / "models"
    convert = ["convert", "--weights", str(ckpt), "--targets", "onnx,openvino", "--precision", "fp32",
               "--input-size", "128x128", "--out", str(models)]
    assert main(convert) == 0
    # an existing model is not replaced without --overwrite, as data synth's dataset (before: silently replaced)
    capsys.readouterr()
    assert main(convert) == 2
    assert "onnx-fp32 exists (and 1 more): give --overwrite to replace it" in capsys.readouterr().err
    assert main(convert + ["--overwrite"]) == 0
    assert "onnx-fp32 (replaced the folder that was there)" in capsys.readouterr().err
    from cmlite import runtimes
    from cmlite.runtimes.manifest import sha256

    for name in ("onnx-fp32", "openvino-fp32"):
        m = runtimes.read_manifest(models / name)
        assert m.fixed_hw == (128, 128) and m.graphs["dense"].inputs[0]["shape"] == [1, 3, 128, 128]
        assert m.graphs["masks"].output_names() == ["mask_prob"] and not m.model["maskiou"]
        assert m.provenance["source_sha256"] == sha256(ckpt) and m.pipeline.min_size == 128
    report = tmp_path / "parity.json"
    image = data / "val" / sorted(p.name for p in (data / "val").iterdir())[0]
    assert main(["parity", "--weights", str(ckpt), "--model", str(models / "onnx-fp32"),
                 "--model", str(models / "openvino-fp32"), str(image), "--score-thresh", "0.0",
                 "--json", str(report)]) == 0
    parity = json.loads(report.read_text())
    assert [m["verdict"] for m in parity["models"]] == ["PASS", "PASS"]
    rows = parity["pairs"]
    assert [Path(r["model"]).name for r in rows] == ["onnx-fp32", "openvino-fp32"]
    for r in rows:  # a 2-iteration model: its instances exist (threshold 0) and the converted graphs agree
        assert r["ref_instances"] > 0 and r["matched"] == r["ref_instances"] == r["instances"], r
        assert r["first_divergence"] == "none" and r["max_abs_score_diff"] < 1e-4
    # without a MaskIoU head the mask score is the score, in predict and in eval's ranking
    seg = runtimes.load(models / "onnx-fp32", score_thresh=0.0)
    inst = seg.predict(cv2.imread(str(image)))
    assert len(inst) and np.array_equal(inst.mask_scores, inst.scores)
    metrics = tmp_path / "m.json"
    assert main(["eval", "--model", str(models / "onnx-fp32"), "--data", str(data / "annotations" /
                 "instances_val.json"), "--images", str(data / "val"), "--score-thresh", "0.0",
                 "--json", str(metrics)]) == 0
    m = json.loads(metrics.read_text())
    assert m["images"] == 2 and 0 <= m["mask_ap"] <= 100 and m["detections"] > 0
