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

from apps.cli import main

from .conftest import CKPT, IMAGE, box_iou, mask_iou

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
    from lite.classes import COCO_CATEGORY_IDS

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
    from apps.coco_results import image_ids

    assert image_ids([Path("a/42.jpg"), Path("7.png")]) == [42, 7]  # all numeric and distinct: COCO ids
    # a name that is not a number, or two equal numbers: 1..N in order for all (000001.png and zzz.png both
    # got id 1, and a/000001.png and b/000001.png too)
    assert image_ids([Path("000001.png"), Path("zzz.png")]) == [1, 2]
    assert image_ids([Path("a/000001.png"), Path("b/000001.png")]) == [1, 2]
    assert image_ids([Path("a/42.jpg"), Path("b/cat.jpg"), Path("c/dog.png"), Path("7.png")]) == [1, 2, 3, 4]


def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("cmlite: error: ") and err.count("\n") == 1 and "Traceback" not in err
    return err


def test_missing_image(capsys, tmp_path):
    assert "image not found" in _one_line_error(capsys, ["predict", "--weights", str(CKPT), str(tmp_path / "x.jpg")])


def test_unreadable_image(capsys, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 definitely not a jpeg")
    assert "cannot decode image" in _one_line_error(capsys, ["predict", "--weights", str(CKPT), str(bad)])


def test_missing_and_bad_checkpoints(capsys, tmp_path):
    err = _one_line_error(capsys, ["predict", "--weights", str(tmp_path / "w.pth"), str(IMAGE)])
    assert "checkpoint not found" in err
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"garbage")
    assert "not a readable PyTorch checkpoint" in _one_line_error(capsys, ["predict", "--weights", str(bad), str(IMAGE)])


def test_folder_of_images_and_empty_folder(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    assert "no images in folder" in _one_line_error(capsys, ["predict", "--weights", str(CKPT),
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
    assert message in _one_line_error(capsys, ["predict", "--weights", str(CKPT), str(IMAGE), *flags])
