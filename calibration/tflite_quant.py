"""INT8 TFLite (LiteRT) graphs with ai-edge-quantizer, under a mixed-precision plan.

    settings = quantize_tflite(fp32_file, out_file, samples, keep_float=["roi_heads.maskiou_head"])

Static int8 (int8 per-channel weights, int8 activations calibrated on `samples`) for every op the quantizer
supports, except the ops of the plan's modules, which stay float; inputs and outputs stay float32 (the quantizer
adds the QUANTIZE/DEQUANTIZE ops), so the runtime feeds and reads the graph exactly as the FP32 one.

How ops are mapped to PyTorch modules: litert-torch names each op's output tensor after the nn.Module call stack
that produced it, one segment per *called* module, "<module>.<Class>_<attribute>" joined by "/", e.g.

    converters.graphs.DenseGraph/lite.fcos.FCOSHead_fcos_head/torch.nn.modules.container.Sequential_cls_tower/
        torch.nn.modules.normalization.GroupNorm_1;7

(the graph wrapper, then only the last attribute of each module's path; ";7" tells same-named tensors apart).
Modules that are never called themselves (ProposalGenerator, ROIHeads: the model calls their children directly;
ModuleLists) leave no segment, so a name is a subsequence of the module path. Fused ops (conv + BN + ReLU) join
several such names with ";" and may mention a neighbour's name too; the op's own module is the last one. Weights
carry no names ("arith.constant12"). So a plan entry is resolved by its *visible* path (the components that
appear as called modules in the graph) and an op is kept float when its module lies under an entry ("X/": when
it is X's own op, as in calibration/plan.py). Ops that write a signature output are named after it and belong to
the module of the op that feeds them. The quantizer's recipe `regex` is searched in an op's "scope" (its output
tensor names joined by ";"), which would also hit the neighbours named in fused ops; so the ops are resolved here
and handed to the quantizer as one regex of their exact scopes.

A plan entry whose own module is never called (e.g. "proposal_generator") can only be resolved with the model's
module paths (`module_paths=[n for n, _ in model.named_modules()]`); without them it matches nothing here (and is
reported as unmatched, as are entries for modules of the other graph).

TFLite-specific: every GroupNorm stays float (TFLITE_KEEP_FLOAT, by class, so any tower depth). litert-torch
decomposes it into RESHAPE/MEAN/SUB/MUL/RSQRT ops; in int8 the variance and its RSQRT lose precision and XNNPACK
has no int8 RSQRT (graph 1 splits into 7 delegate partitions, 40 ops on the reference kernels). Float GroupNorm
keeps 3 partitions, as FP32, at no measurable cost. Measured on the previous embedded default (320x320, 200 val images,
32 calibration frames, AMD EPYC AVX2 without VNNI): mask AP FP32 28.27, all int8 27.99, GroupNorm float 28.05;
graph 1 78 -> 71 ms (1 thread), 42 -> 39 ms (2 threads): int8 gains little without VNNI.
"""
from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import numpy as np

from cmlite.runtimes.errors import CmliteError
from cmlite.runtimes.manifest import graph_kind

# Added to every plan on TFLite: class names of modules whose ops stay float, and why.
TFLITE_KEEP_FLOAT = {
    "GroupNorm": "decomposed into MEAN/SUB/MUL/RSQRT ops: in int8 the group variance and its RSQRT lose precision "
                 "and XNNPACK has no int8 RSQRT (the graph falls apart into partitions); float costs nothing "
                 "measurable",
}
RECIPE = "static_wi8_ai8"
_SEGMENT = re.compile(r"((?:\w+\.)*[A-Za-z0-9]+)_(.*)")  # "<module>.<Class>_<attribute>" (no "_" in Class)
_SPLIT = re.compile(r"/(?=(?:\w+\.)+[A-Za-z0-9]+_)")  # "/" that starts a segment ("stem_1/conv" is one attribute)


def _modules(tensor_name: str) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """The module call stacks named in a tensor name: [(attributes, classes)], last = the op's own."""
    out = []
    for part in tensor_name.split(";")[:-1]:  # the text after the last ";" is the counter
        if not part:
            continue
        segments = [_SEGMENT.fullmatch(s) for s in _SPLIT.split(part)[1:]]  # [0] is the graph wrapper
        if all(segments):
            out.append((tuple(s[2] for s in segments), tuple(s[1].rsplit(".", 1)[-1] for s in segments)))
    return out


def _graph_ops(fp32_file: Path) -> list[dict]:
    """Every op of the main subgraph: index, type, quantizer scope, own module (attributes, classes) or None."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as fu

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    model = fu.read_model(str(fp32_file))
    graph = model.subgraphs[0]
    ops, producer = [], {}
    for i, op in enumerate(graph.operators):
        code = model.operatorCodes[op.opcodeIndex]
        out_name = fu.get_tensor_name(graph.tensors[op.outputs[0]])
        mods = _modules(out_name)
        # An op that writes a signature output is named after the output ("serving_default_logits_0_output"):
        # it belongs to the module of the op that feeds it (the last layer or a layout transpose after it).
        src = next((producer[t] for t in op.inputs if t in producer), None)
        ops.append({"index": i, "type": names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "?"),
                    "scope": fu.get_op_scope(op, graph.tensors), "output": out_name,
                    "module": mods[-1] if mods else src and src["module"], "all_modules": [m[0] for m in mods]})
        producer.update((t, ops[-1]) for t in op.outputs)
    return ops


def _resolve(ops: list[dict], keep_float: list[str], module_paths=None) -> tuple[dict[int, str], list[str]]:
    """{op index: the plan entry (or TFLite rule) that keeps it float}, and the plan entries that match no op.

    "X" selects module X and everything below it, "X/" only X's own ops (as in calibration/plan.py)."""
    called = {attrs[:k] for op in ops for attrs in op["all_modules"] for k in range(len(attrs) + 1)}
    plan = [p.removeprefix("model.") for p in keep_float]
    paths = {p.removeprefix("model.") for p in module_paths or ()}
    for p in plan:  # without the model's paths: the entries and their ancestors
        parts = p.rstrip("/").split(".")
        paths.update(".".join(parts[:k]) for k in range(1, len(parts) + 1))
    visible, owner = {"": ()}, {(): ""}  # module path -> visible path; visible path of a called module -> path
    for path in sorted(paths - {""}, key=lambda s: s.count(".")):
        parent, _, name = path.rpartition(".")
        v = visible[parent] + (name,)
        visible[path] = v if v in called else visible[parent]
        if v in called and owner.setdefault(v, path) != path:
            raise CmliteError(f"the TFLite op names cannot tell modules {owner[v]} and {path} apart")

    def selects(entry: str, attrs: tuple[str, ...]) -> bool:
        path = entry.rstrip("/")
        v = visible[path]
        if owner.get(v) == path:  # a called module: its ops' names start with its visible path
            return attrs == v if entry.endswith("/") else attrs[:len(v)] == v
        if entry.endswith("/") or module_paths is None:  # never called: only the model's paths place its children
            return False
        home = next(owner[attrs[:k]] for k in range(len(attrs), -1, -1) if attrs[:k] in owner)
        return home == path or home.startswith(path + ".")

    kept, used = {}, set()
    for op in ops:
        if op["module"] is None:
            continue
        attrs, classes = op["module"]
        entry = next((p for p in plan if selects(p, attrs)), None)
        if entry is not None:
            used.add(entry)
        elif classes[-1:] and classes[-1] in TFLITE_KEEP_FLOAT:
            entry = f"{classes[-1]} (TFLite)"
        if entry is not None:
            kept[op["index"]] = entry
    return kept, [p for p in plan if p not in used]


def tensor_dtypes(tflite_file: Path) -> dict[str, str]:
    """Tensor name -> element type ("FLOAT32", "INT8", ...) of a .tflite file's main subgraph."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as fu

    types = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    return {fu.get_tensor_name(t): types[t.type] for t in fu.read_model(str(tflite_file)).subgraphs[0].tensors}


def quantize_tflite(fp32_file: Path, out_file: Path, samples: list[dict[str, np.ndarray]], keep_float: list[str],
                    log=print, module_paths=None) -> dict:
    """INT8 version of one cmlite FP32 .tflite graph (dense or masks). samples: calibration inputs by signature
    input name ({"image": (1,3,H,W) float32} or {"rois": ..., "classes_onehot": ...}) at the graph's fixed shape.
    keep_float: PyTorch module-path prefixes whose ops stay float. Returns the per-backend settings to record in
    the manifest (recipe summary, which ops were kept float and why, the I/O dtype, ai-edge-quantizer version)."""
    from ai_edge_quantizer import qtyping, quantizer
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    from cmlite.converters.tflite_export import quiet_converter

    fp32_file, out_file = Path(fp32_file), Path(out_file)
    ops = _graph_ops(fp32_file)
    kept, unmatched = _resolve(ops, keep_float, module_paths)
    if unmatched:
        log(f"  {fp32_file.name}: no op here for {', '.join(unmatched)}")
    log(f"  {fp32_file.name}: int8 with {len(kept)} of {len(ops)} ops float, calibrating on {len(samples)} "
        f"samples ...")
    with quiet_converter():
        qt = quantizer.Quantizer(str(fp32_file))
        qt.add_static_config(".*", qtyping.TFLOperationName.ALL_SUPPORTED, activation_num_bits=8, weight_num_bits=8)
        if kept:  # exact scopes: a looser regex would also hit the neighbours named in fused ops
            regex = "^(?:" + "|".join(re.escape(ops[i]["scope"]) for i in sorted(kept)) + ")$"
            qt.update_quantization_recipe(regex, qtyping.TFLOperationName.ALL_SUPPORTED,
                                          algorithm_key=AlgorithmName.NO_QUANTIZE)
        for io in (qtyping.TFLOperationName.INPUT, qtyping.TFLOperationName.OUTPUT):  # float32 in and out
            qt.update_quantization_recipe(".*", io, algorithm_key=AlgorithmName.NO_QUANTIZE)
        calibration = qt.calibrate({"serving_default": samples}, num_threads=1)
        qt.quantize(calibration).export_model(str(out_file), overwrite=True)
    dtypes = tensor_dtypes(out_file)
    unsupported: dict[str, int] = {}  # ops the recipe does not cover (e.g. REDUCE_MAX): the quantizer leaves them float
    for op in ops:
        if op["index"] not in kept and dtypes.get(op["output"]) == "FLOAT32":
            unsupported[op["type"]] = unsupported.get(op["type"], 0) + 1
    plan_ops: dict[str, int] = {}
    tflite: dict[str, dict] = {}
    for entry in kept.values():
        if entry.endswith(" (TFLite)"):
            cls = entry.split(" ")[0]
            tflite.setdefault(cls, {"ops": 0, "reason": TFLITE_KEEP_FLOAT[cls]})["ops"] += 1
        else:
            plan_ops[entry] = plan_ops.get(entry, 0) + 1
    return {"tool": "ai-edge-quantizer", "version": metadata.version("ai-edge-quantizer"),
            "recipe": f"{RECIPE}: int8 per-channel symmetric weights, int8 activations (min/max over "
                      f"{len(samples)} calibration samples); the ops kept float run in float32",
            "io_dtype": "float32", "ops": len(ops), "float_ops": len(kept) + sum(unsupported.values()),
            "keep_float": {"plan": plan_ops, "unmatched": unmatched, "tflite": tflite,
                           "not_quantizable": unsupported}}


def build_int8(q, target, twin: Path, graphs: dict, folder: Path, keep_float: list[str]) -> tuple[dict, dict]:
    """A TFLite INT8 folder: each .tflite of the FP32 twin (graph 2 without the MaskIoU head too) quantized by
    ai-edge-quantizer on the twin's own calibration inputs. -> ({graph: GraphSpec}, {graph: settings})."""
    from cmlite.converters import tflite_export
    from cmlite.converters.folders import graph_spec

    settings, out = {}, {}
    for kind, old in graphs.items():
        samples = getattr(q.samples[target.twin_target], graph_kind(kind))  # masks_noiou: graph 2's inputs
        settings[kind] = quantize_tflite(twin / old.file, folder / old.file, samples, keep_float, log=q.log)
        out[kind] = graph_spec(folder, old.file, tflite_export.io_spec, old.batch)
    return out, settings
