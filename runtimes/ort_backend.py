"""ONNX Runtime backend (CPU execution provider; others when installed and asked for)."""
from __future__ import annotations

import os

import numpy as np

from . import target_table
from .backend import ConvertedSegmenter, require
from .manifest import graph_kind


# ONNX Runtime's memory pattern pre-plans one block for every activation of a shape: 40 MB more peak memory for
# V-19-eSE INT8 at 600x800 on one thread (269 against 228 MB) for no speed measured (361 against 362 ms); off,
# its arena still reuses what it allocated. CMLITE_ORT_MEM_PATTERN=1 turns it back on (benchmarks/memory_steps.py).
MEM_PATTERN = False


class OrtSegmenter(ConvertedSegmenter):
    held = ("sessions",)  # release() lets go of them; the next inference loads them again
    providers = ("CPUExecutionProvider",)

    def open(self) -> None:
        ort = require("onnxruntime", "onnxruntime")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.simulates_qdq:
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        opts.intra_op_num_threads = self.threads or 0  # 0: ONNX Runtime's default (all cores)
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        # idle pool threads must not spin: the host work between the graphs needs the cores
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.enable_mem_pattern = os.environ.get("CMLITE_ORT_MEM_PATTERN", "1" if MEM_PATTERN else "0") == "1"
        self._check_formats()
        self.sessions = {graph_kind(k): ort.InferenceSession(self._graph(k), opts, providers=list(self.providers))
                         for k in self.open_kinds}
        self.output_names = {k: [o.name for o in s.get_outputs()] for k, s in self.sessions.items()}

    def replicas(self, n: int, threads: int | None) -> list["OrtSegmenter"]:
        """One session of `threads` threads shared by the n lanes: ONNX Runtime runs concurrent calls each on its
        calling thread (and `threads` - 1 of the pool), so the lanes run at once while the weights are held once."""
        return [self.replica(threads)] * n

    def _graph(self, kind: str):
        """A graph's file, or for masks_noiou of a folder that predates it, graph 2 cut at mask_prob in memory."""
        if kind in self.manifest.graphs:
            return str(self.graph_path(kind))
        try:
            import onnx
            from onnx.utils import Extractor
        except ImportError:
            raise self.no_graph(kind) from None
        return Extractor(onnx.load(str(self.graph_path("masks")))).extract_model(
            ["rois", "classes_onehot"], ["mask_prob"]).SerializeToString()

    def _check_formats(self) -> None:
        """The graphs' number formats against the manifest, where the onnx package is at hand (a device may have
        only ONNX Runtime). Before the sessions exist, so the parsed graph is freed before they take memory."""
        try:
            import onnx
        except ImportError:
            return
        self.check_precision({self.graph_path(k).name: _formats(onnx.load(str(self.graph_path(k))))
                              for k in self.kinds})

    @property
    def simulates_qdq(self) -> bool:
        """TensorRT's INT8 graphs run here as their reference: Q/DQ computed in float (no fusion into ORT's int8
        kernels, whose int8 x int8 products saturate on x86 CPUs without VNNI: -6.4 mask AP measured on AVX2),
        which is what TensorRT's int32 accumulation gives."""
        return target_table.get(self.manifest.target).qdq_in_float and self.manifest.precision == "int8"

    @property
    def device(self) -> str:
        row = target_table.get(self.manifest.target)  # another target's ONNX graphs (--backend onnx) say so
        graphs = "" if row.runs_onnx_graphs else f" ({row.name} graphs" + \
            (", Q/DQ simulated in float)" if self.simulates_qdq else ")")
        return f"onnxruntime {self.manifest.precision}{graphs} on CPU"

    def _run(self, kind: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self.output_names[kind], self.sessions[kind].run(None, feeds)))

    def infer_dense(self, image: np.ndarray) -> dict[str, np.ndarray]:
        return self._run("dense", {"image": image})

    def infer_masks(self, rois: np.ndarray, onehot: np.ndarray) -> dict[str, np.ndarray]:
        return self._run("masks", {"rois": rois, "classes_onehot": onehot})


def _formats(proto) -> set[str]:
    """int8: QuantizeLinear/DequantizeLinear or 8-bit weights; fp16/fp32: the float weights' type."""
    codes = {1: "fp32", 10: "fp16", 2: "int8", 3: "int8"}  # onnx.TensorProto: FLOAT, FLOAT16, UINT8, INT8
    out = {codes[t.data_type] for t in proto.graph.initializer if t.data_type in codes}
    if any(n.op_type in ("QuantizeLinear", "DequantizeLinear", "QLinearConv", "ConvInteger", "MatMulInteger")
           for n in proto.graph.node):
        out.add("int8")
    return out
