"""Converted models through the one runtime interface: official results, manifest, torch-free, bad input."""
from __future__ import annotations

import json
import re
import shutil

import cv2
import numpy as np
import pytest

from cmlite import runtimes
from cmlite.runtimes.errors import CmliteError
from cmlite.runtimes.manifest import SCHEMA, read_manifest, sha256

from .conftest import CKPT, IMAGE, box_iou, mask_iou, run_torch_free

FP32 = ["onnx-fp32", "openvino-fp32", "tflite-fp32"]


@pytest.mark.parametrize("name", FP32)
def test_fp32_backends_reproduce_official_instances(converted, reference, name):
    """FP32 graphs agree with the official outputs to float rounding: measured here, scores within 1.3e-6,
    boxes within 0.0006 px, at most 2 mask pixels differing per instance (on its 480x640 frame)."""
    seg = runtimes.load(converted[name], threads=2)
    inst = seg.predict(cv2.imread(str(IMAGE)))
    assert len(inst) == 50
    np.testing.assert_array_equal(inst.classes, reference["final.classes"])
    np.testing.assert_allclose(inst.scores, reference["final.scores"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(inst.mask_scores, reference["final.mask_scores"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(inst.boxes, reference["final.boxes"], rtol=0, atol=0.01)
    assert (inst.masks != reference["final.masks"]).sum(axis=(1, 2)).max() <= 20
    assert mask_iou(inst.masks, reference["final.masks"]).min() >= 0.99


@pytest.mark.parametrize("name", ["onnx-fp16", "openvino-fp16", "tflite-fp16"])
def test_fp16_parity_figures(converted, ref_run, name):
    from cmlite.apps.parity import compare

    res = compare(ref_run[:2], runtimes.load(converted[name]), cv2.imread(str(IMAGE)), "fp16")
    s = res.summary()
    assert s["matched"] == s["ref_instances"] == 50 and s["instances"] == 50
    assert s["min_box_iou"] >= 0.99 and s["median_mask_iou"] >= 0.99 and s["min_mask_iou"] >= 0.8
    assert s["max_abs_score_diff"] < 1e-2
    stages = dict((n, ok) for n, _, ok in res.stages)
    assert stages["input"] and stages["graph1"] and stages["proposals"] and stages["levels"]


def test_manifest_is_the_contract(converted):
    folder = converted["openvino-fp16"]
    m = read_manifest(folder)
    d = json.loads((folder / "manifest.json").read_text())
    assert d["schema"] == SCHEMA and m.target == "openvino" and m.precision == "fp16"
    assert m.model["variant"] == "V-19-eSE" and len(m.class_names) == 80 and m.model["maskiou"]
    assert m.input["colour"] == "BGR" and m.input["layout"] == "NCHW" and m.input["fixed_hw"] is None
    assert m.input["mean"] == [103.53, 116.28, 123.675] and m.pipeline.min_size == 600
    assert [i["name"] for i in m.graphs["dense"].inputs] == ["image"]
    assert m.graphs["dense"].output_names()[:2] == ["logits_0", "logits_1"]
    assert m.graphs["masks"].output_names() == ["mask_prob", "maskiou"]
    for g in m.graphs.values():
        assert sha256(folder / g.file) == g.sha256
        assert all(sha256(folder / f) == h for f, h in g.aux_files.items()) and g.aux_files  # the .bin
    prov = m.provenance
    assert prov["source_checkpoint"] == CKPT.name and prov["source_sha256"] == sha256(CKPT)
    assert {"torch", "onnx", "openvino"} <= set(prov["tools"]) and prov["created"]


@pytest.mark.parametrize("name", FP32)
def test_converted_models_run_without_torch(converted, name):
    proc = run_torch_free(f"""
        import cv2
        from cmlite import runtimes
        seg = runtimes.load({str(converted[name])!r}, threads=1)
        inst = seg.predict(cv2.imread({str(IMAGE)!r}))
        assert "torch" not in {{m.split(".")[0] for m in sys.modules if sys.modules[m] is not None}}
        print(len(inst))
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "50"


@pytest.mark.parametrize("name", FP32)
def test_cli_predict_with_a_converted_model_reproduces_official_instances(converted, tmp_path, reference, name):
    from pycocotools import mask as mask_util

    from cmlite.apps.cli import main
    from cmlite.lite.classes import COCO_CATEGORY_IDS

    out = tmp_path / "r.json"
    assert main(["predict", "--model", str(converted[name]), str(IMAGE), "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert len(res) == 50
    np.testing.assert_array_equal([COCO_CATEGORY_IDS.index(r["category_id"]) for r in res], reference["final.classes"])
    xywh = np.array([r["bbox"] for r in res])
    assert box_iou(np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], 1), reference["final.boxes"]).min() >= 0.99
    masks = np.stack([mask_util.decode(r["segmentation"]) for r in res])
    assert mask_iou(masks, reference["final.masks"]).min() >= 0.99


def test_missing_backend_package_gives_one_line(converted):
    proc = run_torch_free(f"""
        sys.modules["onnxruntime"] = None
        from cmlite.apps.cli import main
        sys.exit(main(["predict", "--model", {str(converted["onnx-fp32"])!r}, {str(IMAGE)!r}]))
    """)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "pip install onnxruntime" in proc.stderr


@pytest.mark.parametrize("name, file", [("onnx-fp32", "masks.onnx"), ("openvino-fp32", "dense.bin"),
                                        ("openvino-fp32", "masks.xml"), ("tflite-fp16", "masks"),
                                        ("tensorrt-fp16", "dense.onnx")])
def test_damaged_and_missing_files_are_named(converted, tmp_path, name, file):
    """Every file a folder needs is hashed: graphs, an IR's weights (.bin), TFLite and TensorRT graphs."""
    broken = tmp_path / name
    shutil.copytree(converted[name], broken)
    path = next(p for p in sorted(broken.iterdir()) if p.name.startswith(file))
    with open(path, "r+b") as f:
        f.seek(path.stat().st_size // 2)
        f.write(b"\x00\x01\x02")
    with pytest.raises(CmliteError, match=f"{re.escape(path.name)}: sha256 differs"):
        runtimes.load(broken)
    path.unlink()
    with pytest.raises(CmliteError, match=f"{re.escape(path.name)} .*missing"):
        runtimes.load(broken)


def test_damaged_and_incomplete_folders(converted, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(converted["onnx-fp32"], broken)
    (broken / "manifest.json").write_text("{not json")
    with pytest.raises(CmliteError, match="not valid JSON"):
        runtimes.load(broken)
    (broken / "manifest.json").write_text(json.dumps({"schema": "other/9"}))
    with pytest.raises(CmliteError, match="unknown manifest schema"):
        runtimes.load(broken)
    with pytest.raises(CmliteError, match="no manifest.json"):
        runtimes.load(tmp_path)


def test_fixed_mask_batch_pads_and_chunks(converted):
    seg = runtimes.load(converted["onnx-fp32"])
    img = cv2.imread(str(IMAGE))
    trace: dict = {}
    seg.predict(img, trace)
    pooled = trace["pooled"]
    onehot = np.eye(80, dtype=np.float32)[trace["proposals"].classes]
    whole = seg.run_masks(pooled, onehot)
    seg.mask_batch = 16  # 50 RoIs -> 4 chunks, the last padded with 14 empty RoIs
    chunked = seg.run_masks(pooled, onehot)
    for a, b in zip(whole, chunked):
        assert a.shape == b.shape and np.abs(a - b).max() < 1e-5


def test_tflite_folder_has_fixed_shapes(converted):
    m = read_manifest(converted["tflite-fp32"])
    assert m.fixed_hw == (608, 800) and m.graphs["masks"].batch == 10
    assert m.graphs["dense"].inputs == [{"name": "image", "shape": [1, 3, 608, 800], "dtype": "float32"}]
    assert sorted(m.graphs["masks"].output_names()) == ["mask_prob", "maskiou"]
    seg = runtimes.load(converted["tflite-fp32"])
    portrait = cv2.rotate(cv2.imread(str(IMAGE)), cv2.ROTATE_90_CLOCKWISE)  # 800x600 does not fit: shrunk to fit
    trace: dict = {}
    inst = seg.predict(portrait, trace)
    assert trace["preprocessed"].resized_hw == (608, 456) and inst.masks.shape[1:] == (640, 480)


@pytest.mark.slow
def test_depthwise_variant_without_maskiou_converts_at_a_small_size(tmp_path):
    """A depthwise variant without the MaskIoU head: graph 2 has one output on every target, and the mask
    score is the score."""
    import torch

    from cmlite import lite
    from cmlite.apps.parity import compare
    from cmlite.converters.convert import convert
    from cmlite.lite.model import CenterMaskLite
    from cmlite.lite.variants import get_variant

    torch.manual_seed(0)
    model = CenterMaskLite(get_variant("V-19-slim-dw-eSE").with_(maskiou=False)).eval()
    head = model.proposal_generator.fcos_head
    with torch.no_grad():  # distinct scores (a class prior, as FCOS initialises it) and boxes of some size
        head.cls_logits.bias.normal_(-3.0, 0.5)
        head.bbox_pred.bias.uniform_(0.5, 2.0)
    model.config = model.config.with_(min_size=128, max_size=160)
    folders = convert(model, tmp_path, ["onnx", "tflite"], ["fp32"], fixed_hw=(128, 160), log=lambda m: None)
    img = cv2.resize(cv2.imread(str(IMAGE)), (160, 120))
    for folder in folders:
        seg = runtimes.load(folder)
        assert read_manifest(folder).graphs["masks"].output_names() == ["mask_prob"]
        res = compare(lite.predictor(model), seg, img, "fp32")
        assert all(ok for name, _, ok in res.stages if name != "instances"), (folder.name, res.stages)
        assert res.summary()["matched"] == res.summary()["ref_instances"] > 0
        inst = seg.predict(img)
        np.testing.assert_array_equal(inst.mask_scores, inst.scores)


def test_folder_size_counts_every_file(converted):
    """The size `convert` prints is the files on disk, an IR's .bin (its weights) included."""
    for name, folder in converted.items():
        m = read_manifest(folder)
        on_disk = sum(p.stat().st_size for p in folder.iterdir() if p.name != "manifest.json")
        assert m.size_bytes(folder) == on_disk, name
    ov = read_manifest(converted["openvino-fp32"])
    assert ov.size_bytes(converted["openvino-fp32"]) > 10 * sum(g.bytes for g in ov.graphs.values())


@pytest.mark.parametrize("name", ["onnx-fp32", "openvino-fp32", "tflite-fp32", "tensorrt-fp32", "onnx-fp16",
                                  "tflite-fp16"])
def test_maskiou_off_skips_the_head_and_nothing_else(converted, ref_model, ref_run, name):
    """Graph 2 without the MaskIoU head: the official instances and masks, and the mask score is the score, as in
    models without the head. ONNX, TFLite and TensorRT folders carry that graph (hashed); OpenVINO cuts it at
    load. The official model gives the same instances, masks and scores without its head (the head only ranks)."""
    from cmlite import lite

    backend = "onnx" if name.startswith("tensorrt") else None
    img = cv2.imread(str(IMAGE))
    full = runtimes.load(converted[name], threads=2, backend=backend).predict(img)
    seg = runtimes.load(converted[name], threads=2, backend=backend, maskiou=False)
    inst = seg.predict(img)
    assert seg.mask_kind == "masks_noiou" and len(inst) == 50
    m = read_manifest(converted[name])
    assert ("masks_noiou" in m.graphs) == (m.target != "openvino")
    if "masks_noiou" in m.graphs:
        assert m.graphs["masks_noiou"].output_names() == ["mask_prob"]
    np.testing.assert_array_equal(inst.boxes, full.boxes)
    np.testing.assert_array_equal(inst.masks, full.masks)
    np.testing.assert_array_equal(inst.mask_scores, inst.scores)
    assert not np.array_equal(full.mask_scores, full.scores)
    eager = lite.predictor(ref_model, maskiou=False).predict(img)
    np.testing.assert_array_equal(eager.mask_scores, eager.scores)
    if name.endswith("fp32"):  # FP16 scores differ a little, and so does the order of close ones
        assert mask_iou(inst.masks, eager.masks).min() >= 0.99 and mask_iou(inst.masks, ref_run[0].masks).min() >= 0.99


def test_a_folder_without_the_headless_graph_says_what_to_do(converted, tmp_path):
    folder = tmp_path / "tflite-fp32"
    shutil.copytree(converted["tflite-fp32"], folder)
    d = json.loads((folder / "manifest.json").read_text())
    (folder / d["graphs"].pop("masks_noiou")["file"]).unlink()
    (folder / "manifest.json").write_text(json.dumps(d))
    assert runtimes.load(folder).maskiou  # with the head, as before
    with pytest.raises(CmliteError, match=r"no graph 2 without the MaskIoU head.*convert it again.*--maskiou on"):
        runtimes.load(folder, maskiou=False)


@pytest.mark.parametrize("where", ["../outside.onnx", "/tmp/cmlite-outside.onnx", "sub/../../outside.onnx",
                                   "link.onnx", "aux:../outside.bin", "engine:../x.engine"])
def test_files_named_by_a_manifest_stay_inside_its_folder(converted, tmp_path, where):
    """A manifest that names a file outside its folder (a path that climbs out, an absolute one, a link out) is
    refused in one line before any file is read: a model folder from elsewhere cannot make cmlite read (or hash,
    or load) an arbitrary file."""
    folder = tmp_path / "model"
    shutil.copytree(converted["openvino-fp32" if where.startswith("aux") else "onnx-fp32"], folder)
    outside = tmp_path / "outside.onnx"
    outside.write_bytes(b"not to be read")
    m = json.loads((folder / "manifest.json").read_text())
    if where == "link.onnx":
        (folder / "link.onnx").symlink_to(outside)
        m["graphs"]["dense"]["file"] = "link.onnx"
    elif where.startswith("aux:"):
        m["graphs"]["dense"]["aux_files"] = {where[4:]: "0" * 64}
    elif where.startswith("engine:"):
        m["tensorrt"] = {"engines": {"files": {"dense": {"file": where[7:], "sha256": "0" * 64}}}}
    else:
        m["graphs"]["dense"]["file"] = where
    (folder / "manifest.json").write_text(json.dumps(m))
    outside.chmod(0o000)  # reading it would fail differently: the refusal comes first
    try:
        with pytest.raises(CmliteError, match=r"outside the model's folder: a manifest names only files inside"):
            runtimes.load(folder)
    finally:
        outside.chmod(0o644)


def test_a_malformed_manifest_names_the_key_and_the_command_that_remakes_it(tiny_models, tmp_path):
    """Before: a manifest without `pipeline` said "convert the model again" for an INT8 folder (quantize makes it),
    and `post_nms_topk: "16"` gave a TypeError's text without the key."""
    folder = tmp_path / "onnx-int8"
    shutil.copytree(tiny_models["onnx-int8"], folder)
    d = json.loads((folder / "manifest.json").read_text())
    d["provenance"]["command"] = "cmlite demo --out out/"  # what made the demo's folders
    bad = {k: v for k, v in d.items() if k != "pipeline"}
    (folder / "manifest.json").write_text(json.dumps(bad))
    with pytest.raises(CmliteError, match=r"no 'pipeline' entry\); quantize it again: cmlite demo --out out/"):
        read_manifest(folder)
    d["pipeline"]["post_nms_topk"] = "16"
    (folder / "manifest.json").write_text(json.dumps(d))
    with pytest.raises(CmliteError, match=r"post_nms_topk '16' \(a whole number\)"):
        read_manifest(folder)
    del d["provenance"]["command"]
    (folder / "manifest.json").write_text(json.dumps(d))
    with pytest.raises(CmliteError, match=r"quantize it again: cmlite quantize --calib IMAGES --targets onnx"):
        read_manifest(folder)
