"""OpenVINO backend (CPU). The execution precision is set explicitly from the manifest: OpenVINO would
otherwise pick bf16 on CPUs that have it, which is not what an FP32 artifact promises."""
from __future__ import annotations

import copy

import numpy as np

from .backend import ConvertedSegmenter, require
from .errors import CmliteError

HINTS = {"fp32": "f32", "fp16": "f16", "bf16": "bf16", "int8": "f32"}  # int8: the float parts in f32


class OpenVinoSegmenter(ConvertedSegmenter):
    held = ("requests",)  # release() lets go of them; the next inference loads them again
    device_name = "CPU"

    def open(self) -> None:
        ov = require("openvino", "openvino")
        core = ov.Core()
        caps = core.get_property(self.device_name, "OPTIMIZATION_CAPABILITIES")
        precision = self.manifest.precision
        if precision not in HINTS:
            raise CmliteError(f"OpenVINO backend cannot run {precision} artifacts")
        hint = HINTS[precision]
        if precision == "bf16" and "BF16" not in caps:
            raise CmliteError(f"this CPU cannot run bf16 (OpenVINO reports {', '.join(caps)}); "
                              "use the openvino-fp32 model")
        if precision == "fp16" and "FP16" not in caps:
            hint = "f32"  # FP16 weights, computed in f32 on CPUs without FP16 arithmetic
        self.execution_precision = {"f32": "fp32", "f16": "fp16", "bf16": "bf16"}[hint]
        config = {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1"}
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = str(self.threads)
        self.core, self.config_ov, self.models, kinds = core, config, {}, {}
        for kind in self.kinds:
            model = core.read_model(str(self.graph_path(kind)))
            kinds[self.graph_path(kind).name] = _formats(model)
            if kind == "masks" and self.mask_kind == "masks_noiou":  # the MaskIoU head cut off: OpenVINO drops it
                model = ov.Model([o for o in model.outputs if o.get_any_name() == "mask_prob"],
                                 model.get_parameters(), "masks_noiou")
            self.models[kind] = model
        self.compile, self.requests = {}, {}
        for kind, model in self.models.items():
            self.compile[kind] = lambda m=model: core.compile_model(m, self.device_name, config)
            compiled = self.compile[kind]()
            self.requests[kind] = (compiled.create_infer_request(), [o.get_any_name() for o in compiled.outputs])
        self.check_precision(kinds)

    def replicas(self, n: int, threads: int | None) -> list["OpenVinoSegmenter"]:
        """One model compiled for throughput (n streams of `threads` threads: OpenVINO places each stream on its
        own cores) and an infer request per replica; the weights are held once."""
        config = {**self.config_ov, "PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": str(n)}
        if threads:
            config["INFERENCE_NUM_THREADS"] = str(threads * n)
        compiled = {kind: self.core.compile_model(m, self.device_name, config) for kind, m in self.models.items()}
        out = []
        for _ in range(n):
            r = copy.copy(self)
            r.threads, r.released = threads, False  # its own requests, whatever the original let go of
            r.compile = {kind: (lambda m=m: self.core.compile_model(m, self.device_name, config))
                         for kind, m in self.models.items()}  # after a refused input (see _run)
            r.requests = {kind: (c.create_infer_request(), [o.get_any_name() for o in c.outputs])
                          for kind, c in compiled.items()}
            out.append(r)
        return out

    @property
    def device(self) -> str:
        float_part = "float parts in" if self.manifest.precision == "int8" else "executes"
        return f"openvino {self.manifest.precision} ({float_part} {self.execution_precision}) on {self.device_name}"

    def _run(self, kind: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        request, names = self.requests[kind]
        try:
            request.infer(feeds, share_inputs=True)  # no copy of the input: infer() returns before it changes
        except Exception:
            # a compiled model that refused an input shape refuses every later one too: compiled again (a second
            # or so, only after a failure) for the next image
            self.requests[kind] = (self.compile[kind]().create_infer_request(), names)
            raise
        return {n: request.get_output_tensor(i).data.copy() for i, n in enumerate(names)}

    def infer_dense(self, image: np.ndarray) -> dict[str, np.ndarray]:
        return self._run("dense", {"image": image})

    def infer_masks(self, rois: np.ndarray, onehot: np.ndarray) -> dict[str, np.ndarray]:
        return self._run("masks", {"rois": rois, "classes_onehot": onehot})


def _formats(model) -> set[str]:
    """int8: FakeQuantize ops (NNCF); fp16: f16 weight constants (compressed IR); fp32: f32 constants."""
    out = set()
    for op in model.get_ops():
        kind = op.get_type_name()
        if kind == "FakeQuantize":
            out.add("int8")
        elif kind == "Constant":
            t = op.get_output_element_type(0).get_type_name()
            out |= {"f16": {"fp16"}, "f32": {"fp32"}, "i8": {"int8"}, "u8": {"int8"}}.get(t, set())
    return out
