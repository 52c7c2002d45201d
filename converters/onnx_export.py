"""PyTorch -> ONNX (opset 18, torch.export-based exporter), simplified with onnxslim and checked.

Graph 1 has dynamic H and W (multiples of 32) unless a fixed size is asked for; graph 2 a dynamic RoI
count unless a fixed batch is asked for. FP16 graphs keep float32 inputs and outputs.
"""
from __future__ import annotations

import ast
import importlib
import shutil
from pathlib import Path

import onnx
import torch

from cmlite.lite.model import CenterMaskLite
from cmlite.runtimes.manifest import GRAPH_KINDS, GraphSpec
from cmlite.runtimes.quiet import quiet
from cmlite.runtimes.target_table import Target

from .folders import graph_spec
from .graphs import DENSE_INPUTS, MASK_INPUTS, DenseGraph, MaskGraph, dense_output_names, mask_output_names, \
    sample_inputs

OPSET = 18
# the exporter logs about torchvision ops we do not use and warns about its internals
EXPORTER_LOGGERS = ("torch.onnx", "torch.onnx._internal.exporter._registration", "torch._export", "torch.export")


def _module_scopes(proto: onnx.ModelProto) -> dict[str, str]:
    """Output tensor -> the PyTorch module path of the node that makes it ("backbone.fpn_lateral3"; "" for ops
    of the wrapper itself), from the exporter's name_scopes metadata."""
    scopes = {}
    for node in proto.graph.node:
        meta = {p.key: p.value for p in node.metadata_props}
        names = ast.literal_eval(meta.get("pkg.torch.onnx.name_scopes", "[]"))
        scope = names[-2] if len(names) >= 2 else ""
        scope = scope[len("model."):] if scope.startswith("model.") else ("" if scope == "model" else scope)
        for out in node.output:
            scopes[out] = scope
    return scopes


def _name_by_module(proto: onnx.ModelProto, scopes: dict[str, str]) -> None:
    """Name every node "<module path>/<OpType>_<i>" so that a plan of PyTorch module names selects nodes in ONNX
    Runtime, OpenVINO and TensorRT alike. Fused nodes keep their last output, whose maker names the module."""
    for i, node in enumerate(proto.graph.node):
        scope = next((scopes[o] for o in node.output if o in scopes), "")
        node.name = f"{scope}/{node.op_type}_{i}" if scope else f"{node.op_type}_{i}"


def _finish(proto: onnx.ModelProto, path: Path) -> Path:
    import onnxslim

    scopes = _module_scopes(proto)
    proto = onnxslim.slim(proto)
    if scopes:
        _name_by_module(proto, scopes)
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(path))  # one self-contained file (the graphs are far below 2 GB)
    return path


def _export(module: torch.nn.Module, args: tuple, inputs, outputs, dynamic_shapes) -> onnx.ModelProto:
    with quiet(*EXPORTER_LOGGERS, python_warnings=True), torch.inference_mode(False), torch.no_grad():
        program = torch.onnx.export(module.eval(), args, None, input_names=list(inputs), output_names=list(outputs),
                                    opset_version=OPSET, dynamo=True, dynamic_shapes=dynamic_shapes, verbose=False)
    return program.model_proto


def export_dense(model: CenterMaskLite, path: Path, fixed_hw: tuple[int, int] | None = None) -> Path:
    image, _, _ = sample_inputs(model, fixed_hw or (320, 416), 1)
    dyn = None
    if fixed_hw is None:
        h, w = torch.export.Dim("h", min=1, max=256), torch.export.Dim("w", min=1, max=256)
        dyn = ({2: 32 * h, 3: 32 * w},)
    names = dense_output_names(len(model.config.pooler_strides))
    return _finish(_export(DenseGraph(model), (image,), DENSE_INPUTS, names, dyn), path)


def export_masks(model: CenterMaskLite, path: Path, batch: int | None = None) -> Path:
    _, rois, onehot = sample_inputs(model, (32, 32), batch or 8)
    dyn = None
    if batch is None:
        n = torch.export.Dim("n", min=1, max=4096)
        dyn = ({0: n}, {0: n})
    names = mask_output_names(model.variant.maskiou)
    return _finish(_export(MaskGraph(model), (rois, onehot), MASK_INPUTS, names, dyn), path)


def masks_only(src: Path, dst: Path) -> Path:
    """Graph 2 cut at mask_prob: the same nodes, names and weights (float or Q/DQ) without the MaskIoU head, the
    `masks_noiou` graph of a model that has one."""
    from onnx.utils import Extractor

    proto = Extractor(onnx.load(str(src))).extract_model(list(MASK_INPUTS), ["mask_prob"])
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(dst))
    return dst


def to_fp16(src: Path, dst: Path) -> Path:
    """FP16 weights and compute, float32 inputs/outputs (ONNX Runtime's converter)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    proto = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    return _finish(proto, dst)  # the converter appends its input casts last; slimming re-sorts the graph


def io_spec(path: Path) -> tuple[list[dict], list[dict]]:
    """Inputs and outputs of an ONNX file as manifest entries (symbolic dims as strings)."""
    g = onnx.load(str(path), load_external_data=False).graph

    def dims(v):
        return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in v.type.tensor_type.shape.dim]

    def dtype(v):
        return onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type).name

    inputs = [{"name": v.name, "shape": dims(v), "dtype": dtype(v)} for v in g.input]
    outputs = [{"name": v.name, "shape": dims(v), "dtype": dtype(v), "layout": "NCHW" if len(dims(v)) == 4 else "NC"}
               for v in g.output]
    return inputs, outputs


def finish_graph(folder: Path, path: Path, target: Target, batch: int | None = None) -> GraphSpec:
    """A written ONNX graph's manifest entry; a target with parser rules (TensorRT's) has it checked and rewritten
    by them first."""
    if target.rules:
        importlib.import_module(f"cmlite.converters.{target.rules}").write(path, path)
    return graph_spec(folder, path.name, io_spec, batch)


def build(fp32, precision: str, folder: Path, target: Target) -> dict[str, GraphSpec]:
    """A target's folder of ONNX graphs (ONNX Runtime, TensorRT) from the run's FP32 export
    (converters.fp32_graphs.Fp32Graphs): fp32 copied, fp16 converted; graph 2 without the MaskIoU head beside
    where the model has the head and the target's runtime cannot drop it at load."""
    graphs = {}
    for kind in GRAPH_KINDS:
        dst = folder / f"{kind}.onnx"
        if precision == "fp32":
            shutil.copyfile(fp32.onnx(kind), dst)
        else:
            to_fp16(fp32.onnx(kind), dst)
        graphs[kind] = finish_graph(folder, dst, target)
    if fp32.model.variant.maskiou and not target.drops_maskiou_at_load:
        graphs["masks_noiou"] = finish_graph(folder, masks_only(folder / "masks.onnx", folder / "masks_noiou.onnx"),
                                             target)
    return graphs
