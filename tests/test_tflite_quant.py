"""INT8 TFLite with a mixed-precision plan: real litert-torch conversion, real ai-edge-quantizer, real LiteRT runs."""
from __future__ import annotations

import shutil
import time

import cv2
import numpy as np
import pytest

pytest.importorskip("litert_torch")
pytest.importorskip("ai_edge_quantizer")

HEAD = "proposal_generator.fcos_head"
PLAN = [f"{HEAD}.cls_tower", "roi_heads.maskiou_head"]


def tflite_keep_float_ops(fp32_file, keep_float: list[str], module_paths=None) -> list[str]:
    """The output tensor names of the ops that the plan (plus TFLITE_KEEP_FLOAT) keeps float, in graph order, as
    quantize_tflite resolves them. module_paths: the model's `named_modules()` paths, needed only for entries whose
    module is never called itself (e.g. "proposal_generator")."""
    from pathlib import Path

    from cmlite.calibration.tflite_quant import _graph_ops, _resolve

    ops = _graph_ops(Path(fp32_file))
    kept, _ = _resolve(ops, keep_float, module_paths)
    return [ops[i]["output"] for i in sorted(kept)]


def own(tensor_name: str) -> str:
    """The op's own module call stack in a litert-torch tensor name (the last of the fused names)."""
    return tensor_name.rsplit(";", 1)[0].split(";")[-1]


@pytest.fixture(scope="module")
def default_model():
    from cmlite import lite

    return lite.load_model("default")


@pytest.fixture(scope="module")
def fp32(tmp_path_factory, default_models):
    """The embedded default converted to TFLite FP32 at 320x320 (the session's), plus a few synthetic images."""
    from cmlite.calibration.synth import generate
    from cmlite.runtimes.manifest import read_manifest

    root = tmp_path_factory.mktemp("tflite_quant")
    generate(root / "data", 6, 3, 320, 1, progress=False)
    folder = default_models["tflite-fp32"]
    assert read_manifest(folder).fixed_hw == (320, 320)
    images = {split: [cv2.imread(str(p)) for p in sorted((root / "data" / split).glob("*.png"))]
              for split in ("train", "val")}
    return root, folder, images


@pytest.fixture(scope="module")
def int8(fp32):
    """Both graphs quantized with PLAN (calibrated on the train images), as an int8 model folder."""
    from cmlite import runtimes
    from cmlite.calibration.tflite_quant import quantize_tflite
    from cmlite.runtimes.manifest import read_manifest, sha256
    from cmlite.runtimes.preprocess import preprocess

    root, folder, images = fp32
    seg = runtimes.load(folder, threads=2)
    cfg = seg.config
    dense, pooled, classes = [], [], []
    for img in images["train"]:
        dense.append({"image": preprocess(img, cfg.min_size, cfg.max_size, cfg.pixel_mean, cfg.size_divisibility,
                                          seg.fixed_hw).tensor})
        trace: dict = {}
        seg.predict(img, trace)
        pooled.append(trace["pooled"])
        classes.append(trace["proposals"].classes)
    rois = np.concatenate(pooled)
    onehot = np.eye(len(seg.class_names), dtype=np.float32)[np.concatenate(classes)]
    b = seg.mask_batch
    masks = [{"rois": rois[i:i + b], "classes_onehot": onehot[i:i + b]} for i in range(0, len(rois) - b + 1, b)]
    assert masks, "the FP32 model found too few instances to calibrate graph 2"

    out = root / "models" / "tflite-int8"
    shutil.copytree(folder, out)
    manifest = read_manifest(out)
    settings = {}
    for kind, samples in (("dense", dense), ("masks", masks)):
        g = manifest.graphs[kind]
        settings[kind] = quantize_tflite(folder / g.file, out / g.file, samples, PLAN, log=lambda m: None)
        g.sha256, g.bytes = sha256(out / g.file), (out / g.file).stat().st_size
    manifest.precision = "int8"
    manifest.quantization = {"plan": PLAN, "backend": settings}
    manifest.write(out)
    return out, settings


def test_plan_maps_to_ops_by_module_path(fp32, default_model):
    _, folder, _ = fp32
    dense = folder / "dense_320x320.tflite"
    tower = tflite_keep_float_ops(dense, [f"{HEAD}.cls_tower"])
    assert any("Sequential_cls_tower/torch.nn.modules.conv.Conv2d_0" in n for n in tower)
    for name in tower:  # the tower's ops, plus every GroupNorm (the TFLite addition), nothing else
        assert "Sequential_cls_tower" in own(name) or "GroupNorm" in own(name), name
    only_gn = set(tflite_keep_float_ops(dense, []))
    assert only_gn and only_gn < set(tower) and all("GroupNorm" in own(n) for n in only_gn)
    # "X/" is only X's own ops: the FPN's top-down adds, none of the bottom-up's
    top_down = set(tflite_keep_float_ops(dense, ["backbone/"])) - only_gn
    assert top_down and not any("bottom_up" in own(n) for n in top_down)
    # the "model." prefix of the graph wrapper is accepted; the masks graph has no dense-graph ops
    assert tflite_keep_float_ops(dense, [f"model.{HEAD}.cls_tower"]) == tower
    assert tflite_keep_float_ops(folder / "masks_b10.tflite", [f"{HEAD}.cls_tower"]) == []
    # a module the model never calls itself (its children are called directly) needs the model's paths
    paths = [n for n, _ in default_model.named_modules()]
    assert set(tflite_keep_float_ops(dense, ["proposal_generator"])) == only_gn
    assert set(tflite_keep_float_ops(dense, ["proposal_generator"], paths)) > set(tower)


def test_kept_ops_stay_float_and_the_rest_is_int8(fp32, int8):
    from ai_edge_litert.interpreter import Interpreter

    from cmlite.calibration.tflite_quant import _graph_ops, tensor_dtypes

    _, folder, _ = fp32
    out, settings = int8
    for file, kind in (("dense_320x320.tflite", "dense"), ("masks_b10.tflite", "masks")):
        kept = set(tflite_keep_float_ops(folder / file, PLAN))
        dtypes = tensor_dtypes(out / file)
        s = settings[kind]
        left_float = s["keep_float"]["not_quantizable"]  # ops the recipe does not cover (REDUCE_MAX)
        assert kept and s["io_dtype"] == "float32" and s["float_ops"] == len(kept) + sum(left_float.values())
        for op in _graph_ops(folder / file):  # every op's output tensor keeps its name in the quantized graph
            want = "FLOAT32" if op["output"] in kept or op["type"] in left_float else "INT8"
            assert dtypes[op["output"]] == want, (op["type"], op["output"])
        assert s["ops"] - s["float_ops"] > 0
        runner = Interpreter(model_path=str(out / file)).get_signature_runner()
        io = {**runner.get_input_details(), **runner.get_output_details()}
        assert {d["dtype"] for d in io.values()} == {np.float32}
    dense = settings["dense"]["keep_float"]
    assert dense["plan"] == {f"{HEAD}.cls_tower": dense["plan"][f"{HEAD}.cls_tower"]}
    assert dense["tflite"]["GroupNorm"]["ops"] > 0 and dense["tflite"]["GroupNorm"]["reason"]
    assert dense["unmatched"] == ["roi_heads.maskiou_head"]
    assert settings["masks"]["keep_float"]["plan"]["roi_heads.maskiou_head"] > 0


def test_int8_model_runs_close_to_fp32(fp32, int8):
    from cmlite import runtimes
    from cmlite.runtimes.pipeline import NUM_LEVELS

    _, folder, images = fp32
    out, _ = int8
    ref, seg = runtimes.load(folder, threads=2), runtimes.load(out, threads=2)
    assert seg.manifest.precision == "int8" and "int8" in seg.device
    for img in images["val"]:
        a, b = {}, {}
        ia, ib = ref.predict(img, a), seg.predict(img, b)
        for i in range(NUM_LEVELS):
            la, lb = a["dense"].levels[i][0], b["dense"].levels[i][0]
            assert np.abs(la - lb).max() / np.abs(la).max() < 0.3, i
        assert abs(len(ia) - len(ib)) <= 2
        if len(ia) and len(ib):
            assert abs(float(ia.scores[0]) - float(ib.scores[0])) < 0.1


def test_int8_graph_runs_on_xnnpack(fp32, int8):
    """No dramatic slowdown against FP32 (an op XNNPACK cannot run in int8 falls back to the slow kernels)."""
    from cmlite import runtimes
    from cmlite.runtimes.preprocess import preprocess

    _, folder, images = fp32
    out, _ = int8
    ref, seg = runtimes.load(folder, threads=1), runtimes.load(out, threads=1)
    cfg = ref.config
    tensor = preprocess(images["val"][0], cfg.min_size, cfg.max_size, cfg.pixel_mean, cfg.size_divisibility,
                        ref.fixed_hw).tensor
    times: dict[str, list[float]] = {"fp32": [], "int8": []}
    for _ in range(5):  # interleaved, so a busy machine slows both alike
        for name, s in (("fp32", ref), ("int8", seg)):
            t = time.perf_counter()
            s.infer_dense(tensor)
            times[name].append(time.perf_counter() - t)
    assert np.median(times["int8"]) < 2 * np.median(times["fp32"]), times


def test_small_int8_graphs_hold_int8_and_keep_float_io(tiny_models):
    """The fast tier's TFLite INT8 folder (128x160, nothing kept float): int8 tensors in both graphs, float32 in
    and out, and the recorded settings say so."""
    from cmlite import runtimes
    from cmlite.calibration.tflite_quant import tensor_dtypes

    folder = tiny_models["tflite-int8"]
    m = runtimes.read_manifest(folder)
    for kind, g in m.graphs.items():
        dtypes = set(tensor_dtypes(folder / g.file).values())
        assert "INT8" in dtypes, (kind, dtypes)
        assert {i["dtype"] for i in g.inputs} == {o["dtype"] for o in g.outputs} == {"float32"}
        assert m.quantization["backend"][kind]["io_dtype"] == "float32"
