"""The ONNX graphs TensorRT builds its engines from, checked against what TensorRT's ONNX parser accepts, and the
optimization profiles that go with them.

A `tensorrt-<precision>/` folder holds the same two graphs as every other target, in the form TensorRT 10/11
builds strongly typed (the precision is in the graph, not in builder flags, which TensorRT 11 removed):
- fp32: the FP32 graphs; fp16: FP16 weights and compute with float32 inputs/outputs (`onnx_export.to_fp16`);
- int8: explicit Q/DQ (`cmlite quantize --targets tensorrt`: int8 symmetric, zero points 0, per-channel
  weights), the float parts FP32.
The engines themselves are built on the device (`cmlite build-engine`, converters/tensorrt_engine.py), which uses
the profiles and `trtexec_commands` from here: so `onnx` is imported only by the graph checks (no torch, no onnx
on the device).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from cmlite.runtimes.config import PipelineConfig
from cmlite.runtimes.errors import CmliteError

# the ONNX parser of TensorRT 10.0+ reads opsets 9 to 20 (onnx-tensorrt docs/operators.md, 10.x branches)
OPSET_RANGE = (9, 20)
MIN_TENSORRT = 10
# operators the TensorRT 10 ONNX parser supports (onnx-tensorrt docs/operators.md, release 10.1, "Y" rows)
SUPPORTED_OPS = frozenset("""
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast CastLike Ceil Celu
Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DeformConv DepthToSpace DequantizeLinear Div
Dropout Einsum Elu Equal Erf Exp Expand EyeLike Flatten Floor Gather GatherElements GatherND Gelu Gemm
GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GridSample GroupNormalization GRU HardSigmoid
HardSwish Hardmax Identity If ImageScaler InstanceNormalization IsInf IsNaN LayerNormalization LeakyRelu Less
LessOrEqual Log LogSoftmax Loop LRN LSTM LpNormalization LpPool MatMul Max MaxPool Mean MeanVarianceNormalization
Min Mish Mod Mul Neg NonMaxSuppression NonZero Not OneHot Or Pad ParametricSoftplus Pow PRelu QuantizeLinear
RandomNormal RandomNormalLike RandomUniform RandomUniformLike Range Reciprocal ReduceL1 ReduceL2 ReduceLogSum
ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize
ReverseSequence RNN RoiAlign Round ScaledTanh Scan Scatter ScatterElements ScatterND Selu Shape Shrink Sigmoid Sign
Sin Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan Tanh ThresholdedRelu Tile
TopK Transpose Trilu Unsqueeze Upsample Where Xor""".split())
RESIZE_COORDINATES = {"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners"}
REDUCE_OPS = {"ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean", "ReduceMin",
              "ReduceProd", "ReduceSum", "ReduceSumSquare"}
CAMERA_FRAME = (480, 640)  # the frame a webcam gives: graph 1's most common shape, TensorRT's opt profile


def _attrs(node) -> dict:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def check_graph(proto) -> list[str]:
    """What TensorRT's ONNX parser would refuse in this graph (an onnx.ModelProto), one line each (empty: it
    parses)."""
    problems = []
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None or not OPSET_RANGE[0] <= opset <= OPSET_RANGE[1]:
        problems.append(f"opset {opset}: TensorRT {MIN_TENSORRT} parses opsets {OPSET_RANGE[0]}-{OPSET_RANGE[1]}")
    g = proto.graph
    consts = {t.name for t in g.initializer} | {o for n in g.node if n.op_type == "Constant" for o in n.output}
    init = {t.name: t for t in g.initializer}
    for n in g.node:
        where = f"{n.name or n.output[0]} ({n.op_type})"
        a = _attrs(n)
        if n.domain not in ("", "ai.onnx"):
            problems.append(f"{where}: operator of domain {n.domain!r}, which TensorRT's parser does not know")
        elif n.op_type not in SUPPORTED_OPS:
            problems.append(f"{where}: not an operator TensorRT supports")
        if n.op_type in REDUCE_OPS and len(n.input) > 1 and n.input[1] and n.input[1] not in consts:
            problems.append(f"{where}: axes must be an initializer")
        if n.op_type in ("Slice", "Unsqueeze", "Squeeze") and len(n.input) > (3 if n.op_type == "Slice" else 1):
            axes = n.input[3] if n.op_type == "Slice" else n.input[1]
            if axes and axes not in consts:
                problems.append(f"{where}: axes must be constant")
        if n.op_type == "Resize":
            if a.get("mode", b"nearest").decode() not in ("nearest", "linear"):
                problems.append(f"{where}: mode {a['mode'].decode()} (TensorRT: nearest or linear)")
            ctm = a.get("coordinate_transformation_mode", b"half_pixel").decode()
            if ctm not in RESIZE_COORDINATES:
                problems.append(f"{where}: coordinate_transformation_mode {ctm} is not supported")
            if a.get("antialias", 0):
                problems.append(f"{where}: antialiasing is not supported")
        if n.op_type == "MaxPool" and (len(n.output) > 1 or any(d != 1 for d in a.get("dilations", []))):
            problems.append(f"{where}: indices output or dilations other than 1")
        if n.op_type in ("QuantizeLinear", "DequantizeLinear"):
            problems += _qdq_problems(n, where, init)
    return problems


def _qdq_problems(n, where: str, init: dict) -> list[str]:
    """TensorRT's explicit quantization: int8, zero points 0, constant positive scales, per-tensor or per-channel."""
    import onnx

    out = []
    if len(n.input) < 3 or n.input[2] not in init:
        return [f"{where}: zero point missing or not an initializer (TensorRT wants int8 zeros)"]
    zp = onnx.numpy_helper.to_array(init[n.input[2]])
    if zp.dtype != np.int8 or zp.any():
        out.append(f"{where}: zero point {zp.dtype} {zp.ravel()[:3]} (TensorRT: int8, all 0)")
    if n.input[1] not in init:
        out.append(f"{where}: scale is not an initializer")
    else:
        scale = onnx.numpy_helper.to_array(init[n.input[1]])
        if scale.ndim > 1 or not (scale > 0).all():
            out.append(f"{where}: scale must be positive, a scalar or one per channel")
    if n.op_type == "DequantizeLinear" and n.input[0] in init and \
            onnx.numpy_helper.to_array(init[n.input[0]]).dtype != np.int8:
        out.append(f"{where}: quantized weights must be int8")
    return out


def finish(proto):
    """The graph as TensorRT gets it: opset imports of domains no node uses dropped (ONNX Runtime's quantizer adds
    a dozen), then checked; a graph the parser would refuse is an error naming its nodes."""
    used = {n.domain for n in proto.graph.node} | {""}
    keep = [o for o in proto.opset_import if o.domain in used or o.domain == "ai.onnx"]
    del proto.opset_import[:]
    proto.opset_import.extend(keep)
    problems = check_graph(proto)
    if problems:
        raise CmliteError(f"{len(problems)} nodes TensorRT cannot parse: " + "; ".join(problems[:5]))
    return proto


def write(src: Path, dst: Path) -> Path:
    import onnx

    proto = finish(onnx.load(str(src)))
    onnx.save(proto, str(dst))
    return dst


def _padded(n: int, d: int) -> int:
    return -(-n // d) * d


def plan_profiles(cfg: PipelineConfig, fixed_hw: tuple[int, int] | None, channels: int, num_classes: int,
                  mask_cap: int | None = None, opt_frame: tuple[int, int] = CAMERA_FRAME) -> dict:
    """min/opt/max input shapes per graph, from the preprocessing rules.

    Graph 1: the short side is resized to min_size and the long side capped at max_size, then padded to the size
    divisibility (at least MIN_STEPS steps); so each side lies between those steps and max_size padded.
    opt is the camera frame's resize (640x480 -> 320x448 at the default size). A fixed-size folder has one shape.
    Graph 2: 1 RoI up to the detection cap (post_nms_topk; the runtime runs more in chunks), opt a typical frame's
    count (16, or the cap when lower)."""
    from cmlite.runtimes.preprocess import MIN_STEPS, resized_size

    d = cfg.size_divisibility
    if fixed_hw:
        lo = opt = hi = [1, 3, *fixed_hw]
    else:
        side = _padded(cfg.max_size, d)
        oh, ow = resized_size(*opt_frame, cfg.min_size, cfg.max_size)
        least = MIN_STEPS * d  # the padding's least side (runtimes/preprocess.py)
        lo, opt, hi = [1, 3, least, least], [1, 3, _padded(oh, d), _padded(ow, d)], [1, 3, side, side]
    cap = mask_cap or cfg.post_nms_topk
    typical = min(cap, 16)
    res = cfg.pooler_resolution
    return {
        "dense": {"image": {"min": lo, "opt": opt, "max": hi}},
        "masks": {"rois": {"min": [1, channels, res, res], "opt": [typical, channels, res, res],
                           "max": [cap, channels, res, res]},
                  "classes_onehot": {"min": [1, num_classes], "opt": [typical, num_classes],
                                     "max": [cap, num_classes]}},
    }


def section(manifest) -> dict:
    """The manifest's `tensorrt` entry before the engines exist (from the manifest's own settings and graphs)."""
    rois = next(i for i in manifest.graphs["masks"].inputs if i["name"] == "rois")
    profiles = plan_profiles(manifest.pipeline, manifest.fixed_hw, int(rois["shape"][1]), len(manifest.class_names))
    return {"min_version": MIN_TENSORRT, "typing": "strong (the precision is in the graphs)",
            "graph_precision": {"fp32": "fp32", "fp16": "fp16 (float32 inputs/outputs)",
                                "int8": "int8 Q/DQ, float parts fp32"}[manifest.precision],
            "profiles": profiles, "engines": None}


def _dims(shape) -> str:
    return "x".join(str(int(s)) for s in shape)


def trtexec_commands(folder: Path, manifest, profiles: dict, workspace_mb: int = 1024, dla_core: int | None = None,
                     timing_cache: str | None = None) -> list[str]:
    """The trtexec lines that build the same engines as `cmlite build-engine` with these settings
    (`profiles`: tensorrt_engine.engine_shapes' for them)."""
    cmds = []
    for kind in manifest.graphs:
        prof = profiles["masks" if kind.startswith("masks") else kind]
        shapes = {k: ",".join(f"{n}:{_dims(p[k])}" for n, p in prof.items()) for k in ("min", "opt", "max")}
        parts = [f"trtexec --onnx={Path(folder) / manifest.graphs[kind].file}",
                 f"--saveEngine={Path(folder) / (kind + '.engine')}", "--stronglyTyped",
                 f"--minShapes={shapes['min']}", f"--optShapes={shapes['opt']}", f"--maxShapes={shapes['max']}",
                 f"--memPoolSize=workspace:{workspace_mb}M"]
        if dla_core is not None:
            parts += [f"--useDLACore={dla_core}", "--allowGPUFallback"]
        if timing_cache:
            parts.append(f"--timingCacheFile={timing_cache}")
        cmds.append(" ".join(parts))
    return cmds
