"""INT8 OpenVINO IR with NNCF post-training quantization (`nncf.quantize`), the same frames and plan as every target.

The plan's module entries become an NNCF ignored scope (regular expressions over the IR's op names, which carry
the ONNX node names "<module path>/<OpType>_<i>"). `--method` picks NNCF's activation range estimator:
minmax -> MINMAX, percentile -> MEAN_QUANTILE, entropy -> HISTOGRAM (NNCF has no KL-divergence calibration;
its histogram estimator searches the range that minimises the quantization error instead).

Activations are quantized symmetrically (PRESET) and per tensor: NNCF's default gives the inputs of some
depthwise convolutions (the eSE stages' reductions) a per-channel FakeQuantize, which OpenVINO's ARM CPU plugin fuses
into the convolution and then refuses at compile time (`any_of(scale.size(), OC, 1U)`); per tensor compiles on
both, at the same AP on x86.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from cmlite.runtimes.manifest import graph_kind
from cmlite.runtimes.quiet import quiet

from . import plan as plans

# NNCF's PERFORMANCE preset: symmetric activations (MIXED: asymmetric). Measured side by side (default model, 200 val
# images; Xeon Sapphire Rapids class, avx512_vnni amx_int8, 2 cores): mask AP 57.4 vs 57.3, end to end p50 19.3 vs
# 20.9 ms at 1 thread and 14.9 vs 16.3 at 2 (graph 1 10.7 vs 12.5 ms); on ARM (emulated) its mask AP is within 0.3
# of x86 where MIXED's was 0.9 below (tests/arm_check.py). Not measured on an AVX2-only CPU.
PRESET = "PERFORMANCE"
ESTIMATORS = {"minmax": "MINMAX", "percentile": "MEAN_QUANTILE", "entropy": "HISTOGRAM"}


def quantize(xml: Path, samples: list[dict[str, np.ndarray]], out_xml: Path, method: str,
             keep_float: list[str]) -> dict:
    """Quantize an FP32 IR; writes out_xml (+ .bin). Returns the settings to record in the manifest."""
    import nncf
    import openvino as ov
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, QuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    model = ov.Core().read_model(str(xml))
    names = [op.get_friendly_name() for op in model.get_ordered_ops()]
    patterns = plans.regex(keep_float)
    ignored = nncf.IgnoredScope(patterns=patterns, validate=False)
    estimator = getattr(RangeEstimatorParametersSet, ESTIMATORS[method])
    with quiet("nncf", stdout=True, stderr=True):  # NNCF logs per step and draws its own progress bars
        quantized = nncf.quantize(model, nncf.Dataset(samples), preset=getattr(nncf.QuantizationPreset, PRESET),
                                  subset_size=len(samples), ignored_scope=ignored,
                                  advanced_parameters=AdvancedQuantizationParameters(
                                      activations_range_estimator_params=estimator,
                                      activations_quantization_params=QuantizationParameters(per_channel=False)))
    ov.save_model(quantized, str(out_xml), compress_to_fp16=False)
    return {"tool": "nncf.quantize", "nncf": nncf.__version__, "preset": PRESET, "method": method,
            "range_estimator": ESTIMATORS[method], "activations": "per-tensor", "ignored_scope_patterns": patterns,
            "ops_kept_float": len(plans.selected(names, keep_float)), "fast_bias_correction": True}


def build_int8(q, target, twin: Path, graphs: dict, folder: Path, keep_float: list[str]) -> tuple[dict, dict]:
    """An OpenVINO INT8 folder: each IR of the FP32 twin quantized by NNCF on the twin's own calibration inputs.
    -> ({graph: GraphSpec}, {graph: settings})."""
    from cmlite.converters import openvino_export
    from cmlite.converters.folders import graph_spec

    settings, out = {}, {}
    for kind, old in graphs.items():
        samples = getattr(q.samples[target.twin_target], graph_kind(kind))  # masks_noiou: graph 2's inputs
        settings[kind] = quantize(twin / old.file, samples, folder / old.file, q.method, keep_float)
        out[kind] = graph_spec(folder, old.file, openvino_export.io_spec, old.batch,
                               [Path(old.file).with_suffix(".bin").name])
    return out, settings
