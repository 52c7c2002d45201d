"""`cmlite convert`: planning, atomic folders, argument errors."""
from __future__ import annotations

import pytest

from apps.cli import main
from converters import convert as conv
from runtimes.errors import CmliteError

from .conftest import CKPT


def test_plan_targets_and_precisions():
    jobs = conv.plan(["onnx", "openvino"], ["fp32", "bf16"])
    assert [j.name for j in jobs] == ["onnx-fp32", "openvino-fp32", "openvino-bf16"]
    with pytest.raises(CmliteError, match="unknown target 'coreml'"):
        conv.plan(["coreml"], ["fp32"])
    with pytest.raises(CmliteError, match="needs calibration data"):
        conv.plan(["onnx"], ["int8"])


def test_default_fixed_size_is_a_padded_4_3_frame():
    from runtimes.config import PipelineConfig

    assert conv.default_fixed_hw(PipelineConfig()) == (608, 800)
    assert conv.default_fixed_hw(PipelineConfig(min_size=320, max_size=533)) == (320, 448)


def test_failed_conversion_leaves_nothing_half_written(tmp_path, ref_model, monkeypatch):
    out = tmp_path / "out"
    (out / "onnx-fp32").mkdir(parents=True)
    (out / "onnx-fp32" / "manifest.json").write_text("previous good model")

    def boom(*args, **kwargs):
        raise KeyboardInterrupt  # as if the user pressed Ctrl-C mid-export

    from converters import onnx_export

    monkeypatch.setattr(onnx_export, "export_masks", boom)
    with pytest.raises(KeyboardInterrupt):
        conv.convert(ref_model, out, ["onnx"], ["fp32"], log=lambda m: None)
    assert sorted(p.name for p in out.iterdir()) == ["onnx-fp32"]  # no temporary folder left
    assert (out / "onnx-fp32" / "manifest.json").read_text() == "previous good model"


@pytest.mark.parametrize("argv,msg", [
    (["--targets", "onnx", "--input-size", "600x800"], "multiples of 32"),
    (["--targets", "onnx", "--input-size", "big"], "expected HxW"),
    (["--targets", "tensorflow"], "unknown target"),
])
def test_convert_argument_errors(tmp_path, capsys, argv, msg):
    assert main(["convert", "--weights", str(CKPT), "--out", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1
