"""Inside Triton's Python backend: one graph of a converted folder, run by cmlite's own runtime.

`cmlite triton export --backend python` writes a model.py that hands every request here (converters/triton_repo.py):
graph 1 answers one image per request; graph 2 runs the RoIs of every request Triton hands it at once (dynamic
batching: several clients' frames in one call; a fixed RoI count, as LiteRT's, is padded and chunked as in-process)
and splits the results back, without the MaskIoU head when no request asks for it. A request that fails gets its
error line; the others are answered.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .errors import error_line
from .loader import load


class GraphModel:
    def __init__(self, args: dict, pb_utils):
        self.pb = pb_utils
        config = json.loads(args["model_config"])
        params = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        self.graph = params["cmlite_graph"]
        threads = int(params.get("cmlite_threads") or 0) or None
        self.folder = Path(args["model_repository"]) / str(args["model_version"]) / "model"
        self.threads = threads
        self.seg = load(self.folder, threads=threads, graphs=(self.graph,))
        self.outputs = [o["name"] for o in config["output"]]
        self._noiou = None  # graph 2 without the MaskIoU head, opened when a batch asks for none of its outputs

    def _tensors(self, out: dict[str, np.ndarray]) -> list:
        return [self.pb.Tensor.from_dlpack(n, np.ascontiguousarray(out[n])) for n in self.outputs
                if out.get(n) is not None]

    def _failed(self, e: Exception):
        return self.pb.InferenceResponse(output_tensors=[], error=self.pb.TritonError(
            f"{self.seg.device}: {type(e).__name__}: {error_line(e)}"))

    def _input(self, request, name: str) -> np.ndarray:
        return np.from_dlpack(self.pb.get_input_tensor_by_name(request, name))

    def execute(self, requests: list) -> list:
        return self._dense(requests) if self.graph == "dense" else self._masks(requests)

    def _dense(self, requests: list) -> list:
        out = []
        for r in requests:
            try:
                out.append(self.pb.InferenceResponse(self._tensors(self.seg.infer_dense(self._input(r, "image")))))
            except Exception as e:  # this image's shape refused: the others go on
                out.append(self._failed(e))
        return out

    def _mask_graph(self, requests: list):
        """Graph 2 as the batch needs it: without the MaskIoU head (a third less work) when no request asks for
        maskiou, as the camera's clients (--maskiou off) do; the full graph otherwise, or where the folder has no
        graph without the head."""
        if "maskiou" not in self.outputs or any("maskiou" in r.requested_output_names() for r in requests):
            return self.seg
        if self._noiou is None:
            try:
                self._noiou = load(self.folder, threads=self.threads, graphs=("masks",), maskiou=False)
            except Exception:
                self._noiou = self.seg
        return self._noiou

    def _masks(self, requests: list) -> list:
        try:
            rois = [self._input(r, "rois") for r in requests]
            hot = [self._input(r, "classes_onehot") for r in requests]
            probs, iou = self._mask_graph(requests).run_masks(np.concatenate(rois), np.concatenate(hot))
        except Exception as e:
            return [self._failed(e) for _ in requests]
        ends = np.cumsum([len(r) for r in rois])[:-1]
        split_iou = np.split(iou, ends) if iou is not None else [None] * len(requests)
        return [self.pb.InferenceResponse(self._tensors({"mask_prob": p, "maskiou": i}))
                for p, i in zip(np.split(probs, ends), split_iou)]
