"""`cmlite eval`: the AP pycocotools gives for the same detections, mask AP ranked by mask score."""
from __future__ import annotations

import contextlib
import io
import json
import shutil

import numpy as np
import pytest
from pycocotools import mask as mask_util
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from cmlite import lite
from cmlite.apps.cli import main
from cmlite.calibration.coco_eval import coco_metrics, evaluate, load_coco
from cmlite.lite.classes import COCO_CATEGORY_IDS, COCO_CLASSES
from cmlite.runtimes.errors import CmliteError

from .conftest import CKPT, IMAGE


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory, reference):
    """The reference image as image 1 with 20 of the official instances as ground truth."""
    d = tmp_path_factory.mktemp("tiny")
    (d / "images").mkdir()
    shutil.copy(IMAGE, d / "images" / "000001.png")
    anns = []
    for i in range(0, 40, 2):
        rle = mask_util.encode(np.asfortranarray(reference["final.masks"][i]))
        anns.append({"id": len(anns) + 1, "image_id": 1, "category_id": COCO_CATEGORY_IDS[reference["final.classes"][i]],
                     "bbox": mask_util.toBbox(rle).tolist(), "area": float(mask_util.area(rle)), "iscrowd": 0,
                     "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()}})
    gt = {"images": [{"id": 1, "file_name": "000001.png", "height": 480, "width": 640}], "annotations": anns,
          "categories": [{"id": c, "name": n} for c, n in zip(COCO_CATEGORY_IDS, COCO_CLASSES)]}
    (d / "gt.json").write_text(json.dumps(gt))
    return d


# the first six of COCOeval.stats, in its order
COCOEVAL_ORDER = ("ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large")


def _pycocotools_stats(gt_file, dets, iou_type) -> list[float]:
    """AP, AP50, AP75, AP small/medium/large as pycocotools reports them (x100; -1: no ground truth of that size)."""
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_file))
        ev = COCOeval(gt, gt.loadRes(dets), iou_type)
        ev.evaluate(), ev.accumulate(), ev.summarize()
    return [v * 100 if v >= 0 else -1.0 for v in ev.stats[:6]]


def _pycocotools_ap(gt_file, dets, iou_type) -> float:
    return _pycocotools_stats(gt_file, dets, iou_type)[0]


def test_eval_equals_pycocotools_on_the_same_detections(tiny_set, ref_model, tmp_path):
    metrics, results = evaluate(lite.predictor(ref_model), tiny_set / "gt.json", tiny_set / "images", progress=False)
    assert metrics["images"] == 1 and metrics["detections"] == 50
    # the same detections, written by `cmlite predict --json`, scored by pycocotools directly
    out = tmp_path / "pred.json"
    assert main(["predict", "--weights", str(CKPT), str(tiny_set / "images" / "000001.png"), "--json", str(out)]) == 0
    dets = json.loads(out.read_text())
    box = _pycocotools_stats(tiny_set / "gt.json", [{k: v for k, v in d.items() if k != "segmentation"}
                                                    for d in dets], "bbox")
    masks = _pycocotools_stats(tiny_set / "gt.json", [dict(d, score=d["mask_score"]) for d in dets], "segm")
    for prefix, want in (("box", box), ("mask", masks)):  # every figure, not only AP
        got = [metrics[f"{prefix}_{s}"] for s in COCOEVAL_ORDER]
        assert [-1.0 if np.isnan(g) else g for g in got] == pytest.approx(want, abs=1e-9), prefix
    assert sum(v > 0 for v in box) >= 3 and sum(v > 0 for v in masks) >= 3  # figures that can differ
    mask = masks[0]
    # ranking masks by score instead of the MaskIoU mask score gives a different AP on this image
    by_score = _pycocotools_ap(tiny_set / "gt.json", dets, "segm")
    assert by_score != pytest.approx(mask, abs=1e-6)


def test_ground_truth_as_detections_scores_100(tiny_set):
    gt = load_coco(tiny_set / "gt.json")
    dets = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0,
             "mask_score": 1.0, "segmentation": a["segmentation"]} for a in gt.dataset["annotations"]]
    m = coco_metrics(gt, dets)
    assert m["box_ap"] == pytest.approx(100) and m["mask_ap"] == pytest.approx(100)
    assert m["mask_ap50"] == pytest.approx(100) and m["box_ap50"] == pytest.approx(100)
    assert coco_metrics(gt, [])["mask_ap"] == 0.0


def test_eval_cli_writes_metrics(tiny_set, tmp_path, converted):
    out = tmp_path / "m.json"
    assert main(["eval", "--model", str(converted["onnx-fp32"]), "--data", str(tiny_set / "gt.json"),
                 "--images", str(tiny_set / "images"), "--json", str(out)]) == 0
    m = json.loads(out.read_text())
    assert {"mask_ap", "box_ap", "mask_ap50", "box_ap50"} <= set(m) and 0 <= m["mask_ap"] <= 100


def test_eval_errors(tiny_set, ref_model, tmp_path):
    seg = lite.predictor(ref_model)
    with pytest.raises(CmliteError, match="annotations not found"):
        evaluate(seg, tmp_path / "none.json", tiny_set / "images")
    (tmp_path / "bad.json").write_text("[]")
    with pytest.raises(CmliteError, match="not a COCO instances file"):
        evaluate(seg, tmp_path / "bad.json", tiny_set / "images")
    with pytest.raises(CmliteError, match="images folder not found"):
        evaluate(seg, tiny_set / "gt.json", tmp_path / "nowhere")
    other = json.loads((tiny_set / "gt.json").read_text())
    other["categories"] = [{"id": 1000, "name": "blob"}]
    for a in other["annotations"]:
        a["category_id"] = 1000
    (tmp_path / "other.json").write_text(json.dumps(other))
    with pytest.raises(CmliteError, match="share nothing"):
        evaluate(seg, tmp_path / "other.json", tiny_set / "images")


def test_limit_scores_only_the_evaluated_images(tmp_path):
    """--limit N must give the AP of those N images alone (the others' ground truth is not scored as missed)."""
    from cmlite.calibration.synth import generate

    generate(tmp_path / "d", 0, 6, 96, 0, progress=False)
    ann = json.loads((tmp_path / "d" / "annotations" / "instances_val.json").read_text())
    first = {i["id"] for i in sorted(ann["images"], key=lambda i: i["id"])[:3]}
    part = {**ann, "images": [i for i in ann["images"] if i["id"] in first],
            "annotations": [a for a in ann["annotations"] if a["image_id"] in first]}
    (tmp_path / "part.json").write_text(json.dumps(part))
    seg = lite.predictor(lite.load_model())
    limited, _ = evaluate(seg, tmp_path / "d" / "annotations" / "instances_val.json", tmp_path / "d" / "val",
                          limit=3, progress=False)
    alone, _ = evaluate(seg, tmp_path / "part.json", tmp_path / "d" / "val", progress=False)
    assert limited["images"] == 3 and limited["mask_ap"] > 0
    for k in ("mask_ap", "box_ap", "mask_ap50", "box_ap75"):
        assert limited[k] == pytest.approx(alone[k]), k
