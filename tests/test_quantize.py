"""`cmlite quantize` end to end on the embedded default: every target's INT8 folder, the plan on every backend,
the TensorRT Q/DQ form node by node, calibration methods that differ, and bad input."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from cmlite import lite
from cmlite import runtimes
from cmlite.apps.cli import main
from cmlite.calibration import ort_quant
from cmlite.calibration import plan as plans
from cmlite.calibration.frames import read_frames
from cmlite.calibration.quantize import Validation, quantize
from cmlite.calibration.synth import generate
from cmlite.converters import node_module
from cmlite.runtimes.errors import CmliteError

from .conftest import run_torch_free

PLAN_BLOCKS = ["cls_tower", "maskiou_head"]  # an explicit plan, so that every backend must apply one
TARGETS = ["onnx", "openvino", "tflite", "tensorrt"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("qdata")
    generate(d / "calib", 16, 0, 320, 1, progress=False)  # calibration: another seed's train split
    generate(d / "val", 0, 30, 320, 0, progress=False)  # the first 30 images of the default's val split
    return {"calib": d / "calib" / "train", "ann": d / "val" / "annotations" / "instances_val.json",
            "val": d / "val" / "val"}


@pytest.fixture(scope="module")
def quantized(tmp_path_factory, data):
    out = tmp_path_factory.mktemp("int8")
    frames = read_frames(str(data["calib"]), 16, progress=False)
    folders = quantize(lite.load_model(), out, TARGETS, frames, "minmax", Validation(data["ann"], data["val"]),
                       keep_float=PLAN_BLOCKS, fixed_hw=(320, 320), threads=2, log=lambda m: None)
    return {runtimes.read_manifest(f).target: f for f in folders}


def test_every_target_within_a_loose_ap_bound(quantized):
    for target, folder in quantized.items():
        q = runtimes.read_manifest(folder).quantization
        acc = q["accuracy"]
        # measured on these 30 images: FP32 63.4 (the PyTorch figure), mask AP drops of -0.1 to 0.7 and box AP
        # drops up to 1.3 (on 200 images 0.2 or less; see the README)
        assert acc["fp32"]["mask_ap"] == pytest.approx(63.4, abs=0.3), (target, acc)
        assert acc["mask_ap_drop"] <= 1.5 and acc["int8"]["box_ap"] >= acc["fp32"]["box_ap"] - 2.5, (target, acc)


def test_manifest_records_how_it_was_quantized(quantized, data):
    for target, folder in quantized.items():
        m = runtimes.read_manifest(folder)
        assert m.precision == "int8" and m.target == target
        q = m.quantization
        cal = q["calibration"]
        assert cal["kind"] == "folder" and cal["count"] == 16 and len(cal["frame_ids"]) == 16
        assert cal["digest"] == read_frames(str(data["calib"]), 16, progress=False).digest
        assert cal["mask_rois"] > 16
        assert q["method"] == "minmax" and q["plan"]["keep_float"] == plans.expand(PLAN_BLOCKS)
        # graph 2 without the MaskIoU head: cut from the INT8 graph 2 (ONNX), quantized itself (TFLite), cut at
        # load (OpenVINO)
        assert set(q["backend"]) == {"dense", "masks"} | ({"masks_noiou"} if target == "tflite" else set())
        assert set(m.graphs) == {"dense", "masks"} | (set() if target == "openvino" else {"masks_noiou"})
        m.verify_files(folder)


def test_up_to_date_fp32_folders_are_reused_as_twins(default_models, data, tmp_path):
    """Before: quantize converted its FP32 twins again (~60 s) though the folder beside held up-to-date ones."""
    logs = []
    frames = read_frames(str(data["calib"]), 8, progress=False)
    models = default_models["onnx-fp32"].parent
    [folder] = quantize(lite.load_model(), tmp_path, ["onnx"], frames, keep_float=[], threads=2, log=logs.append,
                        fp32_dirs=[models], source=lite.DEFAULT_WEIGHTS)
    assert f"FP32 twins: reusing {models / 'onnx-fp32'} (up to date)" in logs
    assert not any("exporting graph" in m for m in logs)  # nothing converted
    assert runtimes.read_manifest(folder).precision == "int8" and runtimes.load(folder).predict(frames.frames[0])
    from cmlite.converters.convert import up_to_date

    assert up_to_date(models / "tflite-fp32", lite.load_model(), lite.DEFAULT_WEIGHTS, None) == \
        "input (320, 320), not dynamic"  # what would not be reused, and why


def test_a_damaged_int8_folder_says_quantize_again(quantized, tmp_path):
    """Before: "convert the model again", which makes FP32 folders; an INT8 one comes from `cmlite quantize`."""
    import shutil

    folder = tmp_path / "onnx-int8"
    shutil.copytree(quantized["onnx"], folder)
    (folder / "masks.onnx").unlink()
    with pytest.raises(CmliteError, match=r"masks.onnx \(graph masks\) is missing; quantize it again: cmlite quantize "
                                          r"--calib IMAGES --targets onnx --out "):
        runtimes.load(folder)
    (folder / "dense.onnx").write_bytes(b"damaged")
    m = runtimes.read_manifest(folder)
    m.provenance["command"] = "cmlite quantize --calib shots/ --targets onnx --out models/"
    m.write(folder)
    with pytest.raises(CmliteError, match="quantize it again: cmlite quantize --calib shots/ --targets onnx"):
        runtimes.load(folder)


@pytest.mark.parametrize("target", TARGETS)
def test_int8_folders_run_without_torch(quantized, data, target):
    backend = ", backend='onnx'" if target == "tensorrt" else ""  # TensorRT's graphs in ONNX Runtime here
    proc = run_torch_free(f"""
        import cv2
        from cmlite import runtimes
        seg = runtimes.load({str(quantized[target])!r}, threads=1{backend})
        inst = seg.predict(cv2.imread({str(data['val'] / '000001.png')!r}))
        assert "torch" not in {{m.split(".")[0] for m in sys.modules if sys.modules[m] is not None}}
        print(len(inst), float(inst.scores.max()))
    """)
    assert proc.returncode == 0, proc.stderr
    n, top = proc.stdout.split()
    assert int(n) > 0 and float(top) > 0.5


def _onnx_quantized_convs(path) -> dict[str, bool]:
    """Conv node -> are its weights quantized (a DequantizeLinear makes them; a float node keeps float weights)."""
    g = onnx.load(str(path)).graph
    producer = {o: n for n in g.node for o in n.output}
    return {n.name: n.input[1] in producer and producer[n.input[1]].op_type == "DequantizeLinear"
            for n in g.node if n.op_type in ("Conv", "ConvTranspose", "Gemm")}


def _ov_quantized_convs(xml) -> dict[str, bool]:
    import openvino as ov

    out = {}
    for op in ov.Core().read_model(str(xml)).get_ordered_ops():
        if op.get_type_name() in ("Convolution", "GroupConvolution", "ConvolutionBackpropData", "MatMul"):
            out[op.get_friendly_name()] = _ov_weights_quantized(op.input_value(1).get_node())
    return out


def _ov_weights_quantized(node, depth: int = 5) -> bool:
    """Weights reach the op through a FakeQuantize or from an int8 constant (NNCF's two forms)."""
    kind = node.get_type_name()
    if kind == "FakeQuantize" or (kind == "Constant" and node.get_element_type().to_dtype().itemsize == 1):
        return True
    return depth > 0 and any(_ov_weights_quantized(v.get_node(), depth - 1) for v in node.input_values())


def test_the_plan_is_applied_identically_on_every_backend(quantized):
    plan = plans.expand(PLAN_BLOCKS)
    kept = {}
    for target in ("onnx", "tensorrt"):
        for kind in ("dense", "masks"):
            for name, q in _onnx_quantized_convs(quantized[target] / f"{kind}.onnx").items():
                assert q != any(plans.matches(name, e) for e in plan), (target, name)
                kept.setdefault(target, set()).update({node_module(name)} if not q else set())
    for kind in ("dense", "masks"):
        convs = _ov_quantized_convs(quantized["openvino"] / f"{kind}.xml")
        assert sum(convs.values()) > (10 if kind == "dense" else 3)
        for name, q in convs.items():
            if "/" in name:  # named after its module (not an output-named op)
                assert q != any(plans.matches(name, e) for e in plan), ("openvino", name)
    assert kept["onnx"] == kept["tensorrt"] and kept["onnx"]
    assert all(any(m == e or m.startswith(e + ".") or m.startswith(e + "/") for e in plan) for m in kept["onnx"])
    from tests.test_tflite_quant import tflite_keep_float_ops

    for kind in ("dense", "masks"):
        f = runtimes.read_manifest(quantized["tflite"]).graphs[kind].file
        assert tflite_keep_float_ops(quantized["tflite"] / f, plan)  # the plan selects ops in both TFLite graphs


def test_tensorrt_form_node_by_node(quantized):
    """int8 symmetric Q/DQ, zero points 0, per-channel weight scales on axis 0, bias float (TensorRT's form);
    the CPU form beside it has uint8 activations. The graphs pass TensorRT's parser check with only the default
    domain imported, and the manifest carries the profiles build-engine uses."""
    from cmlite.converters.tensorrt_export import check_graph

    m = runtimes.read_manifest(quantized["tensorrt"])
    image = m.tensorrt["profiles"]["dense"]["image"]  # quantized at a fixed 320x320: one shape
    assert image["min"] == image["opt"] == image["max"] == [1, 3, 320, 320] and m.tensorrt["engines"] is None
    assert m.tensorrt["profiles"]["masks"]["rois"]["max"][0] == m.pipeline.post_nms_topk
    for kind in ("dense", "masks"):
        proto = onnx.load(str(quantized["tensorrt"] / f"{kind}.onnx"))
        assert check_graph(proto) == [] and [o.domain for o in proto.opset_import] == [""]
        g = proto.graph
        init = {t.name: onnx.numpy_helper.to_array(t) for t in g.initializer}
        producer = {o: n for n in g.node for o in n.output}
        qdq = [n for n in g.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
        assert qdq
        for n in qdq:
            zp = init[n.input[2]]
            assert zp.dtype == np.int8 and not zp.any(), n.name
        for n in g.node:
            if n.op_type not in ("Conv", "Gemm") or n.input[1] not in producer:
                continue
            dq = producer[n.input[1]]
            assert dq.op_type == "DequantizeLinear" and dq.input[0] in init and init[dq.input[0]].dtype == np.int8
            scale = init[dq.input[1]]
            axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
            if n.op_type == "Conv":
                assert scale.ndim == 1 and scale.size == init[dq.input[0]].shape[0] and axis == 0, n.name
            if len(n.input) > 2:
                assert n.input[2] in init and init[n.input[2]].dtype == np.float32, n.name  # bias stays float
    cpu = onnx.load(str(quantized["onnx"] / "dense.onnx")).graph
    init = {t.name: onnx.numpy_helper.to_array(t) for t in cpu.initializer}
    acts = [init[n.input[2]] for n in cpu.node if n.op_type == "QuantizeLinear"]
    assert acts and all(z.dtype == np.uint8 for z in acts)


def _tensor_ranges(cache) -> dict[str, tuple[float, float]]:
    """tensor -> (min, max) from ONNX Runtime's calibration cache."""
    from onnxruntime.quantization.calibrate import load_tensors_data

    data = load_tensors_data(cache)
    return {k: (float(np.asarray(v.range_value[0]).min()), float(np.asarray(v.range_value[1]).max()))
            for k, v in data.data.items()}


@pytest.mark.slow
def test_calibration_methods_differ(tmp_path, data):
    """minmax, percentile and entropy give different ranges (ORT's own Entropy would equal MinMax)."""
    import cv2

    from cmlite.calibration.samples import collect
    from cmlite.converters.onnx_export import export_masks

    model = lite.load_model()
    frames = [cv2.imread(str(p)) for p in sorted(data["calib"].iterdir())[:4]]
    samples = collect(lite.predictor(model, threads=2), frames, progress=False)  # any Segmenter makes them
    pre = ort_quant.preprocess(export_masks(model, tmp_path / "masks.onnx"), tmp_path / "masks.pre.onnx")
    ranges = {m: _tensor_ranges(ort_quant.calibrate(pre, samples.masks, m, tmp_path / f"{m}.json"))
              for m in ort_quant.METHODS}
    keys = sorted(set(ranges["minmax"]) & set(ranges["entropy"]) & set(ranges["percentile"]))
    assert len(keys) > 10
    width = {m: np.array([ranges[m][k][1] - ranges[m][k][0] for k in keys]) for m in ranges}
    for m in ("percentile", "entropy"):
        assert (width[m] <= width["minmax"] * 1.0001 + 1e-6).all()  # clipping methods never widen the range
        assert (width[m] < width["minmax"] * 0.99).mean() > 0.3, m  # and really clip, on many tensors
    assert not np.allclose(width["percentile"], width["entropy"])


def test_search_keeps_float_the_fewest_most_sensitive_blocks():
    cost = {"stage2": 1.5, "cls_tower": 0.8, "mask_head": 0.3}  # AP each block loses when quantized

    def evaluate(entries):
        return 30.0 - sum(c for b, c in cost.items() if not set(plans.BLOCKS[b]) <= set(entries))

    r = plans.search(evaluate, 30.0, 1.0, log=lambda m: None)
    assert r.blocks == ["stage2", "cls_tower"] and r.int8_ap == pytest.approx(29.7)
    assert r.sensitivity["stage2"] == pytest.approx(1.5) and r.all_int8_ap == pytest.approx(27.4)
    assert plans.search(evaluate, 30.0, 3.0, log=lambda m: None).plan == []


def test_plan_entries_select_modules_and_own_ops():
    assert plans.matches("backbone.bottom_up.stem.stem_1/norm/Conv_1", "backbone.bottom_up.stem")
    assert not plans.matches("backbone.bottom_up.stage20/Conv_1", "backbone.bottom_up.stage2")
    assert plans.matches("backbone/Add_7", "backbone/") and not plans.matches("backbone.fpn_output3/Conv_9",
                                                                                "backbone/")
    import re

    [rx] = plans.regex(["backbone/"])
    assert re.match(rx, "backbone/Add_7") and not re.match(rx, "backbone.top_block.p6/Conv_3")


def _tree(path):
    return {p.relative_to(path): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_cli_search_and_bad_input(tmp_path, data, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("untouched")
    before = _tree(out)
    empty = tmp_path / "empty"
    empty.mkdir()
    bad = [(["--calib", str(empty)], "is empty"),
           (["--calib", str(tmp_path / "missing")], "not found"),
           (["--calib", "camera:7", "--camera-seconds", "0.2"], "camera"),
           (["--calib", str(data["calib"]), "--targets", "onnx,caffe"], "caffe"),
           (["--calib", str(data["calib"]), "--val", str(data["ann"])], "--val-images")]
    for args, words in bad:
        assert main(["quantize", "--out", str(out), *args]) == 2
        err = [line for line in capsys.readouterr().err.splitlines() if "error" in line or "Traceback" in line]
        assert len(err) == 1 and err[0].startswith("cmlite: error:") and words in err[0], err
    # a validation set whose classes are not the model's
    other = json.loads(data["ann"].read_text())
    for c in other["categories"]:
        c["name"] = "other_" + c["name"]
    (tmp_path / "other.json").write_text(json.dumps(other))
    assert main(["quantize", "--out", str(out), "--calib", str(data["calib"]), "--targets", "onnx",
                 "--val", str(tmp_path / "other.json"), "--val-images", str(data["val"])]) == 2
    assert "do not match" in capsys.readouterr().err
    assert _tree(out) == before


@pytest.mark.slow
def test_cli_writes_folders_and_table(tmp_path, data, capsys):
    out = tmp_path / "out"
    assert main(["quantize", "--calib", str(data["calib"]), "--calib-count", "8", "--targets", "onnx", "--out",
                 str(out), "--val", str(data["ann"]), "--val-images", str(data["val"]), "--val-limit", "6",
                 "--max-ap-drop", "100", "--threads", "2"]) == 0
    table = capsys.readouterr().out
    assert "onnx-int8" in table and "->" in table
    q = runtimes.read_manifest(out / "onnx-int8").quantization
    assert q["plan"]["keep_float"] == [] and q["plan"]["search"]["steps"][0]["float"] == []  # within budget at once
    assert q["calibration"]["count"] == 8 and q["accuracy"]["int8"]["images"] == 6
    assert sorted(p.name for p in out.iterdir()) == ["onnx-int8"]


@pytest.mark.slow
def test_interrupted_run_leaves_nothing(tmp_path, data):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("untouched")
    before = _tree(out)

    def log(msg):
        if msg.startswith("quantizing tensorrt"):
            raise KeyboardInterrupt  # after the ONNX folder was built

    frames = read_frames(str(data["calib"]), 8, progress=False)
    with pytest.raises(KeyboardInterrupt):
        quantize(lite.load_model(), out, ["onnx", "tensorrt"], frames, keep_float=[], threads=2, log=log)
    assert _tree(out) == before and [p.name for p in out.iterdir()] == ["keep.txt"]


def test_parity_knows_int8_tolerances(quantized, data):
    import cv2

    from cmlite.apps.parity import compare

    img = cv2.imread(str(data["val"] / "000001.png"))
    ref = lite.predictor(lite.load_model(), threads=2)
    res = compare(ref, runtimes.load(quantized["onnx"], threads=2), img, "int8")
    stages = {n: ok for n, _, ok in res.stages}
    assert stages["input"] and stages["graph1"], res.stages  # INT8 graph 1 within its tolerance
    s = res.summary()
    assert s["matched"] >= 0.8 * s["ref_instances"] > 0 and s["median_mask_iou"] > 0.9
    strict = compare(ref, runtimes.load(quantized["onnx"], threads=2), img, "fp32")
    assert strict.first_divergence == "graph1"  # the same model judged as FP32 diverges at graph 1


def test_every_target_quantizes_a_small_model(tiny_models):
    """Every quantizer in the target table, at 128x160 on 4 frames (the fast tier's run through all of them): the
    INT8 folder records how it was made, holds int8 graphs its runtime loads (TensorRT's in ONNX Runtime), and
    finds most of what its FP32 twin finds."""
    import cv2

    from cmlite.apps.parity import match_instances
    from cmlite.runtimes.target_table import TARGETS

    from .conftest import IMAGE

    image = cv2.resize(cv2.imread(str(IMAGE)), (160, 120))
    for name, row in TARGETS.items():
        folder = tiny_models[f"{name}-int8"]
        m = runtimes.read_manifest(folder)
        m.verify_files(folder)
        q = m.quantization
        assert m.precision == "int8" and m.target == name and m.fixed_hw == (128, 160)
        assert q["calibration"]["count"] == 8 and q["plan"]["keep_float"] == [] and q["method"] == "minmax"
        assert set(q["backend"]) <= set(m.graphs) and {"dense", "masks"} <= set(q["backend"])
        assert (m.tensorrt is not None) == bool(row.rules)
        fp32 = runtimes.load(tiny_models[f"{row.twin_target}-fp32"], threads=2).predict(image)
        int8 = runtimes.load(folder, threads=2, backend=row.measured_here_with).predict(image)
        matches, _ = match_instances(fp32, int8)
        assert len(fp32) and sum(x.got >= 0 for x in matches) >= 0.5 * len(fp32), name


def test_fewer_calibration_frames_than_asked_is_said(tmp_path, capsys):
    """Before: `--calib-count 32` on a folder of 10 images used 10 and said nothing."""
    generate(tmp_path / "d", 10, 0, 64, 0, progress=False)
    assert main(["quantize", "--calib", str(tmp_path / "d" / "train"), "--calib-count", "32", "--weights",
                 str(tmp_path / "missing.pth"), "--out", str(tmp_path / "out")]) == 2  # stops at the checkpoint
    err = capsys.readouterr().err
    assert "calibration: 10 frames from folder" in err and "--calib-count 32 asked for more: the source has only 10" in err
