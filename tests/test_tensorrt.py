"""TensorRT, as far as it runs without TensorRT or a GPU: the folders' graphs against TensorRT's parser rules, the
same graphs in ONNX Runtime against PyTorch, the profiles against the shapes the pipeline feeds, the engine
record and the refusals, and `cmlite build-engine`'s arguments. Building engines and GPU inference need TensorRT
on an NVIDIA device (README: "Jetson"); nothing here stands in for TensorRT's results."""
from __future__ import annotations

import json
import re
import shutil
import tomllib

import cv2
import numpy as np
import onnx
import pytest

from cmlite import runtimes
from cmlite.apps.cli import main
from cmlite.converters import tensorrt_export
from cmlite.converters.tensorrt_engine import BuildSettings, engine_shapes, layer_precisions, parse_failure, record_engines
from cmlite.runtimes.errors import CmliteError
from cmlite.runtimes.manifest import ManifestError, read_manifest, sha256
from cmlite.runtimes.preprocess import preprocess
from cmlite.runtimes.tensorrt_backend import check_engine_record, shape_problem

from .conftest import IMAGE, REPO, one_line_error, run_torch_free

TRT = ["tensorrt-fp32", "tensorrt-fp16"]
ORIN = {"gpu": "Orin (nvgpu)", "compute_capability": "8.7", "jetson_model": "NVIDIA Jetson Orin Nano Developer Kit"}


def _tensorrt_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorrt") is not None


@pytest.mark.parametrize("name", TRT)
def test_graphs_hold_only_what_tensorrt_parses(converted, name):
    folder = converted[name]
    float_types = set()
    for kind in ("dense", "masks"):
        proto = onnx.load(str(folder / f"{kind}.onnx"))
        assert tensorrt_export.check_graph(proto) == []
        assert [(o.domain, o.version) for o in proto.opset_import] == [("", 18)]  # TensorRT 10 parses 9..20
        assert all(n.domain == "" and n.op_type in tensorrt_export.SUPPORTED_OPS for n in proto.graph.node)
        for n in proto.graph.node:
            a = {x.name: onnx.helper.get_attribute_value(x) for x in n.attribute}
            if n.op_type == "Resize":  # the FPN's upsampling: a mode TensorRT has, no antialiasing
                assert a.get("mode", b"nearest") in (b"nearest", b"linear") and not a.get("antialias", 0)
        float_types |= {t.data_type for t in proto.graph.initializer if t.data_type in (1, 10)}
        io = [*proto.graph.input, *proto.graph.output]
        assert {v.type.tensor_type.elem_type for v in io} == {onnx.TensorProto.FLOAT}  # float32 in and out
    # strongly typed: the precision is in the graphs (TensorRT 11 has no FP16 builder flag)
    if name.endswith("fp32"):
        assert float_types == {onnx.TensorProto.FLOAT}
    else:
        assert onnx.TensorProto.FLOAT16 in float_types


def test_the_parser_check_refuses_what_tensorrt_cannot_parse():
    """Each rule fires on a graph that breaks it, naming the node."""
    h, T = onnx.helper, onnx.TensorProto
    inits = [onnx.numpy_helper.from_array(np.array(0.1, np.float32), "s"),
             onnx.numpy_helper.from_array(np.array(3, np.uint8), "zp_u8"),
             onnx.numpy_helper.from_array(np.array([1, 2], np.int64), "roi_idx")]
    nodes = [
        h.make_node("Compress", ["x", "c"], ["y0"], name="compress"),
        h.make_node("FusedConv", ["x", "w"], ["y1"], name="ms_op", domain="com.microsoft"),
        h.make_node("Resize", ["x", "", "scales"], ["y2"], name="cubic", mode="cubic", antialias=1),
        h.make_node("MaxPool", ["x"], ["y3"], name="dilated", kernel_shape=[2, 2], dilations=[2, 2]),
        h.make_node("QuantizeLinear", ["x", "s", "zp_u8"], ["y4"], name="asym_q"),
        h.make_node("ReduceMean", ["x", "axes_in"], ["y5"], name="dyn_axes"),
    ]
    g = h.make_graph(nodes, "bad", [h.make_tensor_value_info(n, T.FLOAT, None) for n in ("x", "c", "w", "scales")]
                     + [h.make_tensor_value_info("axes_in", T.INT64, [1])],
                     [h.make_tensor_value_info(f"y{i}", T.FLOAT, None) for i in range(6)], inits)
    problems = tensorrt_export.check_graph(h.make_model(g, opset_imports=[h.make_opsetid("", 21)]))
    text = "\n".join(problems)
    assert "opset 21" in problems[0]
    for words in ("compress (Compress): not an operator", "ms_op (FusedConv): operator of domain 'com.microsoft'",
                  "cubic (Resize): mode cubic", "cubic (Resize): antialiasing", "dilated (MaxPool)",
                  "asym_q (QuantizeLinear): zero point uint8", "dyn_axes (ReduceMean): axes must be an initializer"):
        assert words in text, (words, text)
    with pytest.raises(CmliteError, match="nodes TensorRT cannot parse"):
        tensorrt_export.finish(h.make_model(g, opset_imports=[h.make_opsetid("", 18)]))


@pytest.mark.parametrize("name", TRT)
def test_tensorrt_graphs_in_onnxruntime_reproduce_pytorch(converted, ref_run, name):
    """The exact graphs TensorRT builds from, through the project's pipeline, against the FP32 model."""
    from cmlite.apps.parity import compare

    precision = name.split("-")[1]
    seg = runtimes.load(converted[name], threads=2, backend="onnx")
    res = compare(ref_run[:2], seg, cv2.imread(str(IMAGE)), precision)
    s = res.summary()
    assert s["ref_instances"] == 50 and s["matched"] == 50 and s["instances"] == 50
    if precision == "fp32":
        assert all(ok for _, _, ok in res.stages), res.stages
        assert s["max_abs_score_diff"] < 1e-4 and s["min_box_iou"] > 0.999 and s["min_mask_iou"] > 0.98
    else:
        assert s["max_abs_score_diff"] < 1e-2 and s["min_box_iou"] >= 0.99 and s["median_mask_iou"] >= 0.99


def test_profiles_cover_the_shapes_the_pipeline_feeds(converted):
    m = read_manifest(converted["tensorrt-fp32"])
    cfg = m.pipeline
    prof = m.tensorrt["profiles"]
    lo, opt, hi = (prof["dense"]["image"][k] for k in ("min", "opt", "max"))
    assert opt == list(preprocess(np.zeros((480, 640, 3), np.uint8), cfg.min_size, cfg.max_size, cfg.pixel_mean,
                                  cfg.size_divisibility).tensor.shape)  # the webcam frame
    for hw in [(480, 640), (640, 480), (1080, 1920), (1920, 1080), (600, 1000), (1000, 600), (10, 3000),
               (3000, 10), (20, 20), (4000, 4000), (333, 777), (6000, 100)]:
        shape = preprocess(np.zeros((*hw, 3), np.uint8), cfg.min_size, cfg.max_size, cfg.pixel_mean,
                           cfg.size_divisibility).tensor.shape
        assert shape_problem("image", shape, lo, hi) is None, (hw, shape, lo, hi)
    assert shape_problem("image", (1, 3, hi[2] + 32, 32), lo, hi) is not None
    rois = prof["masks"]["rois"]
    assert rois["min"][0] == 1 and rois["max"][0] == cfg.post_nms_topk == 50 and rois["max"][1:] == [128, 14, 14]
    assert prof["masks"]["classes_onehot"]["max"] == [50, 80]
    # a fixed-size folder has one shape; the DLA's static shapes are the opt ones, fed by the pipeline's fit
    fixed = tensorrt_export.plan_profiles(cfg, (320, 448), 128, 80)["dense"]["image"]
    assert fixed["min"] == fixed["opt"] == fixed["max"] == [1, 3, 320, 448]
    dla = engine_shapes(m, dla=True)
    assert dla["fixed_hw"] == opt[2:] and dla["mask_batch"] == 16
    assert all(p["min"] == p["opt"] == p["max"] for g in dla["profiles"].values() for p in g.values())
    assert engine_shapes(m, dla=False)["profiles"] == prof


def _with_engines(converted, tmp_path, version="10.3.0", device=ORIN):
    """A copy of the FP16 folder with two files recorded as its engines by the code build-engine uses. The
    files' contents are arbitrary: these tests check the record and the checks made before TensorRT loads."""
    folder = tmp_path / "tensorrt-fp16"
    shutil.copytree(converted["tensorrt-fp16"], folder)
    rng = np.random.default_rng(0)
    files = {}
    for kind in ("dense", "masks"):
        files[kind] = folder / f"{kind}.engine"
        files[kind].write_bytes(rng.bytes(1000))
    m = read_manifest(folder)
    shapes = engine_shapes(m, dla=False)
    record_engines(m, folder, files, version, device, BuildSettings(), shapes, {"dense": {"FP16": 90}}, 12.0)
    return folder


def test_engine_record_and_the_checks_before_loading(converted, tmp_path):
    folder = _with_engines(converted, tmp_path)
    m = read_manifest(folder)
    e = m.engines
    assert e["tensorrt_version"] == "10.3.0" and e["device"] == ORIN and e["settings"]["workspace_mb"] == 1024
    assert {k: f["sha256"] for k, f in e["files"].items()} == {k: sha256(folder / f"{k}.engine")
                                                              for k in ("dense", "masks")}
    assert e["profiles"] == m.tensorrt["profiles"] and e["shapes"] == {"fixed_hw": None, "mask_batch": None}
    m.verify_files(folder)
    assert m.size_bytes(folder) == sum(p.stat().st_size for p in folder.iterdir() if p.name != "manifest.json")
    check_engine_record(e, "10.3.0", ORIN, folder)  # the same TensorRT and GPU: no complaint
    with pytest.raises(CmliteError, match=rf"built with TensorRT 10.3.0, this is TensorRT 10.7.0; rebuild the "
                                          rf"engines on this device: cmlite build-engine {re.escape(str(folder))}$"):
        check_engine_record(e, "10.7.0", ORIN, folder)
    with pytest.raises(CmliteError, match=r"compute capability 8.7\), this GPU is NVIDIA A2 \(compute capability "
                                          r"8.6\); rebuild"):
        check_engine_record(e, "10.3.0", {"gpu": "NVIDIA A2", "compute_capability": "8.6"}, folder)
    with pytest.warns(UserWarning, match="same architecture"):
        check_engine_record(e, "10.3.0", {**ORIN, "gpu": "NVIDIA RTX A6000"}, folder)
    with pytest.raises(CmliteError, match="no TensorRT engines yet.*cmlite build-engine"):
        check_engine_record(None, "10.3.0", ORIN, folder)
    (folder / "masks.engine").write_bytes(b"damaged")
    with pytest.raises(ManifestError, match="engine damaged or replaced.*build it again: cmlite build-engine"):
        runtimes.load(folder)
    (folder / "masks.engine").unlink()
    with pytest.raises(ManifestError, match="engine missing"):
        runtimes.load(folder)
    runtimes.load(folder, verify=False, backend="onnx")  # the ONNX graphs still run off the device


@pytest.mark.skipif(_tensorrt_installed(), reason="tensorrt is installed here: the missing-package path cannot run")
def test_missing_tensorrt_gives_one_line(converted, capsys):
    with pytest.raises(CmliteError) as e:
        runtimes.load(converted["tensorrt-fp16"])
    line = str(e.value)
    assert "\n" not in line and "python3-libnvinfer" in line and "pip install tensorrt-cu12" in line
    assert "backend='onnx'" in line and "--backend onnx (predict, eval, parity, bench, camera)" in line
    for argv in (["predict", str(IMAGE), "--model", str(converted["tensorrt-fp32"])],
                 ["build-engine", str(converted["tensorrt-fp32"])]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "python3-libnvinfer" in err, err
    # before: only the Python API could run them off the GPU; now every model command can
    assert main(["predict", str(IMAGE), "--model", str(converted["tensorrt-fp32"]), "--backend", "onnx"]) == 0
    assert "onnxruntime fp32 (tensorrt graphs) on CPU" in capsys.readouterr().out
    assert "a checkpoint runs in PyTorch" in one_line_error(capsys, ["predict", str(IMAGE), "--backend", "onnx"])


def test_build_engine_and_the_runtime_need_neither_torch_nor_onnx(converted):
    """On the device: `--trtexec` works and the missing-TensorRT line is TensorRT's, not an import of torch/onnx."""
    folder = converted["tensorrt-fp16"]
    proc = run_torch_free(f"""
        import sys
        sys.modules["onnx"] = None
        from cmlite.apps.cli import main
        assert main(["build-engine", {str(folder)!r}, "--trtexec"]) == 0
        code = main(["build-engine", {str(folder)!r}])
        from cmlite import runtimes
        try:
            runtimes.load({str(folder)!r})
        except Exception as e:
            print("LOAD:", type(e).__name__, e)
        sys.exit(code)
    """)
    assert "--saveEngine=" in proc.stdout and "--adopt" in proc.stdout, proc.stderr
    if not _tensorrt_installed():
        assert proc.returncode == 2 and "python3-libnvinfer" in proc.stderr and "LOAD: CmliteError" in proc.stdout
        assert "torch" not in proc.stderr.split("python3-libnvinfer")[0], proc.stderr


def test_build_engine_arguments(converted, tmp_path, capsys):
    fp16, fp32 = str(converted["tensorrt-fp16"]), str(converted["tensorrt-fp32"])
    assert "not a TensorRT folder" in one_line_error(capsys, ["build-engine", str(converted["onnx-fp32"])])
    assert "--workspace 0" in one_line_error(capsys, ["build-engine", fp16, "--workspace", "0"])
    assert "numbered from 0" in one_line_error(capsys, ["build-engine", fp16, "--dla", "-1"])
    assert "FP16 and INT8 only" in one_line_error(capsys, ["build-engine", fp32, "--dla", "0"])
    assert "is a folder" in one_line_error(capsys, ["build-engine", fp16, "--timing-cache", str(tmp_path)])
    assert "no manifest.json" in one_line_error(capsys, ["build-engine", str(tmp_path)])
    with pytest.raises(SystemExit):
        main(["build-engine", fp16, "--dla", "zero"])
    capsys.readouterr()
    # --trtexec: the same engines as build-engine, as trtexec command lines (profiles from the manifest)
    prof = read_manifest(fp16).tensorrt["profiles"]
    for dla in (None, 1):
        argv = ["build-engine", fp16, "--trtexec", "--workspace", "512", "--timing-cache", str(tmp_path / "c")]
        assert main(argv + (["--dla", str(dla)] if dla is not None else [])) == 0
        lines = capsys.readouterr().out.strip().splitlines()
        # graph 1, graph 2, graph 2 without the MaskIoU head (graph 2's profile), then the line that records them
        assert len(lines) == 4 and lines[3].startswith("# then record them") and "--adopt" in lines[3]
        for line, kind in zip(lines, ("dense", "masks", "masks_noiou")):
            assert f"--onnx={fp16}/{kind}.onnx" in line and f"--saveEngine={fp16}/{kind}.engine" in line
            assert "--stronglyTyped" in line and "--memPoolSize=workspace:512M" in line
            assert f"--timingCacheFile={tmp_path / 'c'}" in line and ("--useDLACore=1" in line) == (dla == 1)
            shapes = {k: dict(re.findall(r"(\w+):([\dx]+)", re.search(rf"--{k}Shapes=(\S+)", line).group(1)))
                      for k in ("min", "opt", "max")}
            for k in ("min", "opt", "max"):
                want = {n: "x".join(map(str, p["opt" if dla is not None else k]))
                        for n, p in prof[kind.removesuffix("_noiou")].items()}
                assert shapes[k] == want, (kind, k)


def test_parse_failures_and_layer_precisions_read_tensorrts_formats():
    line = parse_failure("dense.onnx", [("backbone.fpn_lateral3/Conv_12", "Conv", "Invalid weights"),
                                        ("x/Add_3", "Add", "other")], "10.3.0")
    assert "node backbone.fpn_lateral3/Conv_12 (Conv, module backbone.fpn_lateral3): Invalid weights and 1 more" \
        in line and "update TensorRT" in line and "\n" not in line
    # IEngineInspector JSON (detailed verbosity): TensorRT 10's "Format/Datatype" strings; 11's split fields
    info = {"Layers": [
        {"Name": "conv1", "Outputs": [{"Name": "a", "Format/Datatype": "Channel major FP16 format where channel % 8 == 0"}]},
        {"Name": "conv2", "Outputs": [{"Name": "b", "Format/Datatype": "Row major linear FP32"}]},
        {"Name": "q", "Outputs": [{"Name": "c", "Format/Datatype": "Thirty-two wide channel vectorized row major Int8 format"}]},
        {"Name": "conv3", "Outputs": [{"Name": "d", "Format": "Channel major", "DataType": "FP16"}]},
        "a layer name only (other verbosity)"], "Bindings": ["image"]}
    assert layer_precisions(json.dumps(info)) == {"FP16": 2, "FP32": 1, "INT8": 1}
    assert layer_precisions("not json") == {}


def test_the_tensorrt_extra_does_not_pull_tensorrt():
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    names = [re.split(r"[<>=!\[ ;]", r, maxsplit=1)[0].lower() for r in extras["tensorrt"]]
    assert names == ["cuda-python"]
    assert not any(n.startswith(("tensorrt", "nvidia-tensorrt")) for reqs in extras.values() for r in reqs
                   for n in [re.split(r"[<>=!\[ ;]", r, maxsplit=1)[0].lower()])
    assert "tensorrt" not in extras["all"][0].split("[")[1]  # CI and workstations do not get CUDA bindings


def test_small_tensorrt_folders_hold_only_what_tensorrt_parses(tiny_models):
    """The fast tier's TensorRT folders (FP32 and INT8 Q/DQ, 128x160): every graph passes the parser rules and
    the manifest's profiles cover the fixed input."""
    for name in ("tensorrt-fp32", "tensorrt-int8"):
        folder = tiny_models[name]
        m = read_manifest(folder)
        for kind in m.graphs:
            assert tensorrt_export.check_graph(onnx.load(str(folder / m.graphs[kind].file))) == [], (name, kind)
        image = m.tensorrt["profiles"]["dense"]["image"]
        assert image["min"] == image["opt"] == image["max"] == [1, 3, 128, 160], image
