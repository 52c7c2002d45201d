"""PyTorch -> TFLite with litert-torch (no TensorFlow needed; runs offline).

TFLite graphs have fixed shapes: graph 1 one input size (the image is padded with the mean to it),
graph 2 a fixed RoI batch (the runtime pads and chunks). Inputs and outputs stay NCHW and are named
through the signature ("serving_default"), so the runtime maps them by name, never by position.
FP16 stores FP16 weights (ai-edge-quantizer float casting); activations stay FP32.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from torch import nn

from cmlite.lite.model import CenterMaskLite
from cmlite.runtimes.manifest import GraphSpec
from cmlite.runtimes.quiet import quiet
from cmlite.runtimes.target_table import Target

from .folders import graph_spec
from .graphs import DenseGraph, MaskGraph, sample_inputs

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # the converter's C++ info lines


def quiet_converter():
    """litert-torch and the quantizer print torchao load failures, deprecations and size reports (Python), and
    absl's and oneDNN's lines (C++, runtimes/quiet.py)."""
    return quiet("", "torch.utils._pytree", python_warnings=True, stdout=True, stderr=True, native=True)


def _convert(module: nn.Module, kwargs: dict, path: Path) -> Path:
    with quiet_converter():
        import litert_torch

        litert_torch.convert(module.eval(), sample_kwargs=kwargs).export(str(path))
    return path


def _fp16(src: Path, dst: Path) -> Path:
    with quiet_converter():
        from ai_edge_quantizer import qtyping, quantizer
        from ai_edge_quantizer.algorithm_manager import AlgorithmName

        qt = quantizer.Quantizer(str(src))
        qt.add_weight_only_config(regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED, num_bits=16,
                                  granularity=qtyping.QuantGranularity.TENSORWISE,
                                  algorithm_key=AlgorithmName.FLOAT_CASTING)
        qt.quantize().export_model(str(dst), overwrite=True)
    return dst


def io_spec(path: Path) -> tuple[list[dict], list[dict]]:
    """Signature inputs and outputs (names, shapes, dtypes) as the interpreter reports them."""
    from cmlite.runtimes.litert_backend import interpreter_class

    runner = interpreter_class()(model_path=str(path)).get_signature_runner()

    def entries(details: dict, layout: bool):
        out = []
        for name, d in details.items():
            e = {"name": name, "shape": [int(v) for v in d["shape"]], "dtype": d["dtype"].__name__}
            if layout:
                e["layout"] = "NCHW" if len(d["shape"]) == 4 else "NC"
            out.append(e)
        return out

    return entries(runner.get_input_details(), False), entries(runner.get_output_details(), True)


def convert_fp32(model: CenterMaskLite, work: Path, fixed_hw: tuple[int, int], mask_batch: int,
                 log=print) -> dict[str, Path]:
    """Both graphs as FP32 .tflite files in `work` (the FP16 ones are derived from these), and graph 2 without the
    MaskIoU head when the model has one (LiteRT cannot drop it at load)."""
    image, rois, onehot = sample_inputs(model, fixed_hw, mask_batch)
    h, w = fixed_hw
    files = {"dense": work / f"dense_{h}x{w}.tflite", "masks": work / f"masks_b{mask_batch}.tflite"}
    log(f"  converting graph 1 ({h}x{w}) and graph 2 (batch {mask_batch}) with litert-torch ...")
    _convert(DenseGraph(model, as_dict=True), {"image": image}, files["dense"])
    mask_inputs = {"rois": rois, "classes_onehot": onehot}
    _convert(MaskGraph(model, as_dict=True), mask_inputs, files["masks"])
    if model.variant.maskiou:
        files["masks_noiou"] = work / f"masks_noiou_b{mask_batch}.tflite"
        _convert(MaskGraph(model, as_dict=True, maskiou=False), mask_inputs, files["masks_noiou"])
    return files


def build(fp32, precision: str, folder: Path, target: Target) -> dict[str, GraphSpec]:
    """A TFLite folder at the target's fixed input from the run's FP32 .tflite files (converters.fp32_graphs):
    copied for fp32, FP16 weights for fp16."""
    graphs = {}
    for kind, src in fp32.tflite(fp32.input_hw(target)).items():
        path = folder / src.name
        if precision == "fp16":
            _fp16(src, path)
        else:
            shutil.copyfile(src, path)
        graphs[kind] = graph_spec(folder, path.name, io_spec, fp32.mask_batch if kind.startswith("masks") else None)
    return graphs
