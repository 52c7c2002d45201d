"""`cmlite convert`: planning, atomic folders, argument errors."""
from __future__ import annotations

import shutil

import pytest

from cmlite.apps.cli import main
from cmlite.converters import convert as conv
from cmlite.runtimes.errors import CmliteError

from .conftest import CKPT


def test_plan_targets_and_precisions():
    jobs = conv.plan(["onnx", "openvino"], ["fp32", "bf16"])
    assert [j.name for j in jobs] == ["onnx-fp32", "openvino-fp32", "openvino-bf16"]
    with pytest.raises(CmliteError, match="unknown target 'coreml'"):
        conv.plan(["coreml"], ["fp32"])
    with pytest.raises(CmliteError, match="needs calibration data"):
        conv.plan(["onnx"], ["int8"])
    with pytest.raises(CmliteError, match="nothing to convert: bf16 is not available for onnx .available: onnx "
                                          "fp32/fp16, openvino fp32/fp16/bf16"):
        conv.plan(["onnx"], ["bf16"])


@pytest.mark.parametrize("precisions", ["fp32,fp8", "fp8"])
def test_unknown_precisions_are_refused(tmp_path, capsys, precisions):
    """Before: fp32,fp8 converted fp32 and said nothing of fp8; fp8 alone printed a Python dict."""
    from .conftest import one_line_error

    line = one_line_error(capsys, ["convert", "--targets", "onnx", "--precision", precisions, "--out",
                                   str(tmp_path / "out")])
    assert "unknown precision 'fp8'; choose from bf16, fp16, fp32 (int8: cmlite quantize)" in line
    assert "{" not in line and not (tmp_path / "out").exists()


def test_default_fixed_size_is_a_padded_4_3_frame():
    from cmlite.runtimes.config import PipelineConfig

    assert conv.default_fixed_hw(PipelineConfig()) == (608, 800)
    assert conv.default_fixed_hw(PipelineConfig(min_size=320, max_size=533)) == (320, 448)


def _tree(root):
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None for p in sorted(root.rglob("*"))}


def test_failed_conversion_leaves_nothing_half_written(tmp_path, ref_model, converted, monkeypatch):
    """Interrupted in its second folder, a conversion leaves the output tree exactly as it was, bytes included:
    the first folder (complete by then) does not replace the previous one either."""
    out = tmp_path / "out"
    (out / "onnx-fp32").mkdir(parents=True)
    (out / "onnx-fp32" / "manifest.json").write_text("previous good model")
    (out / "onnx-fp32" / "dense.onnx").write_bytes(b"previous graph")
    (out / "notes.txt").write_text("the user's own file")
    before = _tree(out)

    def boom(*args, **kwargs):
        raise KeyboardInterrupt  # as if the user pressed Ctrl-C mid-conversion

    from cmlite.converters import tensorrt_export

    from cmlite.converters import onnx_export

    def exported(kind):  # the session's export of this model (the exporter's 30 s once is enough)
        return lambda model, path, *a, **k: shutil.copyfile(converted["onnx-fp32"] / f"{kind}.onnx", path)

    monkeypatch.setattr(onnx_export, "export_dense", exported("dense"))
    monkeypatch.setattr(onnx_export, "export_masks", exported("masks"))
    monkeypatch.setattr(tensorrt_export, "write", boom)
    with pytest.raises(CmliteError, match=r"onnx-fp32 exists: give --overwrite to replace it"):
        conv.convert(ref_model, out, ["onnx", "tensorrt"], ["fp32"], log=lambda m: None)  # as data synth refuses
    with pytest.raises(KeyboardInterrupt):
        conv.convert(ref_model, out, ["onnx", "tensorrt"], ["fp32"], log=lambda m: None, overwrite=True)
    assert _tree(out) == before  # no temporary folder left, nothing replaced
    import multiprocessing

    # helper processes of the converters' libraries (OpenVINO's telemetry) are spawned: a fork while JAX's
    # threads run can deadlock
    assert multiprocessing.get_start_method() == "spawn"


@pytest.mark.parametrize("argv,msg", [
    (["--targets", "onnx", "--input-size", "600x800"], "multiples of 32"),
    (["--targets", "onnx", "--input-size", "big"], "expected HxW"),
    (["--targets", "tensorflow"], "unknown target"),
])
def test_convert_argument_errors(tmp_path, capsys, argv, msg):
    assert main(["convert", "--weights", str(CKPT), "--out", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1


def test_every_target_converts_a_small_model_that_reproduces_pytorch(tiny_models):
    """Every exporter in the target table, at 128x160 (the fast tier's run through all of them): a manifest the
    loader reads with every file hashed and the input recorded, and the same instances and stages as PyTorch on
    every backend that runs here (TensorRT's graphs in ONNX Runtime, its stand-in)."""
    import cv2

    from cmlite import lite, runtimes
    from cmlite.apps.parity import compare
    from cmlite.runtimes.target_table import TARGETS

    from .conftest import IMAGE

    image = cv2.resize(cv2.imread(str(IMAGE)), (160, 120))
    reference = lite.predictor(tiny_models["model"], threads=2)
    for name, row in TARGETS.items():
        folder = tiny_models[f"{name}-fp32"]
        m = runtimes.read_manifest(folder)
        m.verify_files(folder)
        assert m.target == name and m.precision == "fp32" and m.fixed_hw == (128, 160)
        assert all(f.endswith(row.files) for g in m.graphs.values() for f in (g.file, *g.aux_files))
        assert ("masks_noiou" in m.graphs) == (not row.drops_maskiou_at_load)
        assert (m.tensorrt is not None) == bool(row.rules)
        seg = runtimes.load(folder, threads=2, backend=row.measured_here_with)
        res = compare(reference, seg, image, "fp32")
        s = res.summary()
        assert res.first_divergence is None and s["matched"] == s["ref_instances"] == s["instances"] > 0, \
            (name, res.stages, s)
