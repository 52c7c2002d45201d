"""ONNX Runtime backend (CPU execution provider; others when installed and asked for)."""
from __future__ import annotations

import numpy as np

from .backend import ConvertedSegmenter, require


class OrtSegmenter(ConvertedSegmenter):
    providers = ("CPUExecutionProvider",)

    def open(self) -> None:
        ort = require("onnxruntime", "onnxruntime")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = self.threads or 0  # 0: ONNX Runtime's default (all cores)
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        # idle pool threads must not spin: the host work between the graphs needs the cores
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.sessions = {k: ort.InferenceSession(str(self.graph_path(k)), opts, providers=list(self.providers))
                         for k in ("dense", "masks")}
        self.output_names = {k: [o.name for o in s.get_outputs()] for k, s in self.sessions.items()}

    def _run(self, kind: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self.output_names[kind], self.sessions[kind].run(None, feeds)))

    def infer_dense(self, image: np.ndarray) -> dict[str, np.ndarray]:
        return self._run("dense", {"image": image})

    def infer_masks(self, rois: np.ndarray, onehot: np.ndarray) -> dict[str, np.ndarray]:
        return self._run("masks", {"rois": rois, "classes_onehot": onehot})
