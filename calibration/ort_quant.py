"""INT8 ONNX with ONNX Runtime's quantization tool: calibrated ranges once, then QDQ graphs in two forms.

- CPU form (`target="onnx"`): uint8 asymmetric activations, int8 per-channel weights (U8S8, fast on x86 CPUs).
- TensorRT form (`target="tensorrt"`): int8 symmetric activations and weights, zero points 0, per-channel
  weight scales on axis 0, bias left float: TensorRT's explicit-quantization form.

`--method` really does what it says: ONNX Runtime's `quantize_static(calibrate_method=Entropy)` would build its
entropy calibrator with 128 bins and 128 quantized bins (one candidate threshold, i.e. MinMax), so the
calibrator is made here with proper histogram options and its ranges are handed to `quantize_static` through
its calibration cache. The ranges are computed once per graph and reused for every plan and both forms.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx

from cmlite.runtimes.errors import SettingsError
from cmlite.runtimes.manifest import GRAPH_KINDS
from cmlite.runtimes.quiet import quiet

from . import plan as plans

METHODS = ("minmax", "percentile", "entropy")
# histogram settings: 2048 bins; entropy searches thresholds over 128 quantized bins (TensorRT's legacy
# calibrator's setting); percentile clips the top 0.001 % of |x|
CALIBRATOR_OPTIONS = {"minmax": {}, "percentile": {"num_bins": 2048, "percentile": 99.999, "symmetric": False},
                      "entropy": {"num_bins": 2048, "num_quantized_bins": 128, "symmetric": False}}
# The Q/DQ form each target's runtime wants. reduce_range (7-bit weights) keeps ONNX Runtime's int8 kernels from
# saturating on x86 CPUs without VNNI; TensorRT accumulates in int32 and takes the full range.
FORMS = {
    "onnx": {"activation_type": "QUInt8", "weight_type": "QInt8", "extra_options": {}, "reduce_range": True},
    "tensorrt": {"activation_type": "QInt8", "weight_type": "QInt8", "reduce_range": False,
                 "extra_options": {"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False}},
}


class _Reader:
    """ONNX Runtime's CalibrationDataReader protocol over a list of feeds."""

    def __init__(self, samples: list[dict[str, np.ndarray]]):
        self.samples = samples
        self.it = iter(samples)

    def get_next(self):
        return next(self.it, None)

    def rewind(self):
        self.it = iter(self.samples)

    def __len__(self):
        return len(self.samples)


def _ort_method(method: str):
    from onnxruntime.quantization import CalibrationMethod

    return {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
            "entropy": CalibrationMethod.Entropy}[method]


def preprocess(src: Path, dst: Path) -> Path:
    """ONNX Runtime's recommended pre-processing (shape inference and graph optimization) before quantization."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with quiet("", stdout=True):
        quant_pre_process(str(src), str(dst), skip_symbolic_shape=True)  # the dynamic H, W defeat it
    return dst


def calibrate(model: Path, samples: list[dict[str, np.ndarray]], method: str, cache: Path) -> Path:
    """Activation ranges of `model` on the samples by `method`, written to an ORT calibration cache file."""
    from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data

    if method not in METHODS:
        raise SettingsError(f"unknown calibration method {method!r}; choose from {', '.join(METHODS)}")
    ort_method = _ort_method(method)
    with tempfile.TemporaryDirectory(prefix="cmlite-calib-") as tmp, quiet("", stdout=True):
        calibrator = create_calibrator(model, [], augmented_model_path=str(Path(tmp) / "augmented.onnx"),
                                       calibrate_method=ort_method, extra_options=CALIBRATOR_OPTIONS[method])
        calibrator.collect_data(_Reader(samples))
        save_tensors_data(calibrator.compute_data(), cache)
    return cache


def quantize(model: Path, cache: Path, out: Path, method: str, keep_float: list[str], form: str = "onnx",
             reduce_range: bool = False) -> dict:
    """A QDQ graph from a pre-processed FP32 model and its calibration cache; nodes the plan selects stay float.

    Returns the settings to record in the manifest."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    f = FORMS[form]
    reduce_range = reduce_range and f["reduce_range"]
    nodes = [n.name for n in onnx.load(str(model), load_external_data=False).graph.node]
    excluded = plans.selected(nodes, keep_float)
    ort_method = _ort_method(method)
    with quiet("", stdout=True):
        quantize_static(str(model), str(out), None, quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=reduce_range,
                        activation_type=getattr(QuantType, f["activation_type"]),
                        weight_type=getattr(QuantType, f["weight_type"]), nodes_to_exclude=excluded,
                        calibrate_method=ort_method, calibration_cache_path=str(cache),
                        extra_options=dict(f["extra_options"]))
    return {"tool": "onnxruntime.quantization.quantize_static", "format": "QDQ", "per_channel": True, "reduce_range": reduce_range,
            "activations": f["activation_type"], "weights": f["weight_type"], "method": method,
            "calibrator": CALIBRATOR_OPTIONS[method], **f["extra_options"], "nodes_kept_float": len(excluded)}


def build_int8(q, target, twin: Path, graphs: dict, folder: Path, keep_float: list[str]) -> tuple[dict, dict]:
    """A target's INT8 ONNX graphs (ONNX Runtime, TensorRT) from ONNX Runtime's calibration of the FP32 twin
    (q: calibration.quantize.Quantizer; graphs: the twin's manifest entries). Graph 2 without the MaskIoU head is
    cut from the quantized graph 2. -> ({graph: GraphSpec}, {graph: settings})."""
    from cmlite.converters.onnx_export import finish_graph, masks_only

    settings, out = {}, {}
    for kind in GRAPH_KINDS:
        path = folder / f"{kind}.onnx"
        settings[kind] = quantize(*q.ort_ranges(kind), path, q.method, keep_float, form=target.name,
                                  reduce_range=q.reduce_range)
        out[kind] = finish_graph(folder, path, target, graphs[kind].batch)
    if "masks_noiou" in graphs:
        out["masks_noiou"] = finish_graph(folder, masks_only(folder / "masks.onnx", folder / "masks_noiou.onnx"),
                                          target, graphs["masks_noiou"].batch)
    return out, settings
