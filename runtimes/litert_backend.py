"""TFLite backend through LiteRT (`ai-edge-litert`), falling back to `tflite-runtime`. XNNPACK runs the graphs."""
from __future__ import annotations

import os

import numpy as np

from .backend import ConvertedSegmenter
from .errors import CmliteError
from .manifest import graph_kind
from .quiet import native_logs

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ info lines


def interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            raise CmliteError("this model needs LiteRT, which is not installed: pip install ai-edge-litert "
                              "(or tflite-runtime where LiteRT has no wheel)") from None
    return Interpreter


class LiteRtSegmenter(ConvertedSegmenter):
    held = ("runners",)  # release() lets go of them; the next inference loads them again
    def open(self) -> None:
        interpreter = interpreter_class()
        self.runners, kinds = {}, {}
        self._first = set(self.kinds)  # runners whose first call (XNNPACK's set-up, and its log line) is to come
        if "masks" in self.kinds and self.mask_kind not in self.manifest.graphs:
            raise self.no_graph(self.mask_kind)
        for kind in self.open_kinds:
            with native_logs():
                interp = interpreter(model_path=str(self.graph_path(kind)), num_threads=self.threads or None)
                self.runners[graph_kind(kind)] = interp.get_signature_runner()
            dtypes = {np.dtype(d["dtype"]) for d in interp.get_tensor_details()}
            kinds[self.graph_path(kind).name] = {name for name, dt in (("int8", "int8"), ("fp16", "float16"),
                                                                       ("fp32", "float32")) if np.dtype(dt) in dtypes}
        self.check_precision(kinds)

    @property
    def device(self) -> str:
        hw = "x".join(map(str, self.fixed_hw)) if self.fixed_hw else "?"
        return f"tflite {self.manifest.precision} ({hw}) on CPU (XNNPACK)"

    def _run(self, kind: str, **feeds) -> dict[str, np.ndarray]:
        if kind in self._first:  # XNNPACK applies itself on the first call, and says so on stderr
            self._first.discard(kind)
            with native_logs():
                return self.runners[kind](**feeds)
        return self.runners[kind](**feeds)

    def infer_dense(self, image: np.ndarray) -> dict[str, np.ndarray]:
        return self._run("dense", image=image)

    def infer_masks(self, rois: np.ndarray, onehot: np.ndarray) -> dict[str, np.ndarray]:
        return self._run("masks", rois=rois, classes_onehot=onehot)
