"""A model on a Triton Inference Server: graph 1 and graph 2 run there over gRPC (tritonclient), the host work here.

    seg = runtimes.load("triton://127.0.0.1:8001/openvino-int8")            # loopback: no key
    seg = runtimes.load("triton://10.0.0.5:8001/openvino-int8?key=SECRET")  # or CMLITE_TRITON_KEY=SECRET

A repository written by `cmlite triton export` serves each converted folder as NAME_dense and NAME_masks; NAME_dense's
config carries the folder's manifest, read here: the preprocessing, classes and thresholds are the folder's, so the
results equal the folder run locally within its precision's tolerance. The key goes in the `cmlite-key` header
(gRPC: triton-grpc-protocol-cmlite-key), which `cmlite triton serve` requires off loopback (Triton's
restricted-protocol option).
"""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np

from .errors import CmliteError, error_line
from .manifest import GRAPH_KINDS, parse_manifest
from .pipeline import Segmenter

KEY_HEADER = "cmlite-key"  # the server's restricted-protocol key (HTTP clients send this header) ...
GRPC_KEY_HEADER = f"triton-grpc-protocol-{KEY_HEADER}"  # ... which Triton's gRPC endpoint reads under this prefix
KEY_ENV = "CMLITE_TRITON_KEY"
DEFAULT_GRPC_PORT = 8001
TIMEOUT_S = 10.0  # the first calls (health, configs): a server that does not answer in this long is down


def parse_url(url: str) -> tuple[str, str, str | None]:
    """triton://HOST[:PORT]/NAME[?key=KEY] -> ("HOST:PORT", NAME, key or None)."""
    parts = urlsplit(url)
    name = parts.path.strip("/")
    try:
        port = parts.port or DEFAULT_GRPC_PORT
    except ValueError:
        port = None
    if parts.scheme != "triton" or not parts.hostname or not name or "/" in name or port is None:
        raise CmliteError(f"{url}: expected triton://HOST:PORT/NAME (the gRPC address `cmlite triton serve` printed "
                          f"and a model it serves), e.g. triton://127.0.0.1:8001/onnx-fp32")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    key = (parse_qs(parts.query).get("key") or [None])[0] or os.environ.get(KEY_ENV) or None
    return f"{host}:{port}", name, key


def grpc_client():
    try:
        import tritonclient.grpc as grpcclient
        from tritonclient.utils import InferenceServerException
    except ImportError:
        raise CmliteError("a triton:// model needs tritonclient: pip install \"cmlite[serve]\"") from None
    return grpcclient, InferenceServerException


class TritonSegmenter(Segmenter):
    def __init__(self, url: str, maskiou: bool = True, **overrides):
        self.url = url
        self.address, self.name, key = parse_url(url)
        self.headers = {GRPC_KEY_HEADER: key} if key else None
        self.grpc, self.ServerError = grpc_client()
        self._local = threading.local()  # a client per thread: graph 1 and 2 may run at once (overlap mode)
        manifest, masks_config = self._configs()
        self.manifest = manifest
        self.maskiou = bool(maskiou) and bool(manifest.model.get("maskiou", True))
        self.config = manifest.pipeline.with_(**overrides)
        self.class_names = manifest.class_names
        self.category_ids = tuple(manifest.model["category_ids"])
        self.fixed_hw = manifest.fixed_hw
        self.max_rois = masks_config.get("max_batch_size") or None  # graph 2's batch limit on the server
        self.mask_outputs = ["mask_prob", "maskiou"] if self.maskiou else ["mask_prob"]
        self.dense_outputs = [o["name"] for o in manifest.graphs["dense"].outputs]
        self.overrides = overrides

    @property
    def client(self):
        c = getattr(self._local, "client", None)
        if c is None:
            c = self._local.client = self.grpc.InferenceServerClient(url=self.address)
        return c

    def _refused(self, e: Exception) -> CmliteError:
        text = error_line(e)
        if "restricted" in text.lower() or KEY_HEADER in text.lower():
            given = "refused the key" if self.headers else "asks for a key"
            return CmliteError(f"{self.url}: the server {given} ({text}): give the key `cmlite triton serve` "
                               f"printed, as ?key=... in the URL or {KEY_ENV}")
        if "unavailable" in text.lower() or "failed to connect" in text.lower() or "deadline" in text.lower():
            return CmliteError(f"{self.url}: no Triton server answers at {self.address} ({text}); start one: cmlite "
                               f"triton serve REPO (its gRPC address is the one to give)")
        return CmliteError(f"{self.url}: Triton at {self.address}: {text}")

    def _call(self, method: str, *args, **kwargs):
        try:
            return getattr(self.client, method)(*args, headers=self.headers, **kwargs)
        except self.ServerError as e:
            raise self._refused(e) from None

    def _configs(self) -> tuple:
        """The manifest (from NAME_dense's config) and NAME_masks' config, with one line for each way it fails."""
        if not self._call("is_server_live", client_timeout=TIMEOUT_S):
            raise CmliteError(f"{self.url}: the Triton server at {self.address} is not live yet; try again")
        configs = {}
        for graph in GRAPH_KINDS:
            model = f"{self.name}_{graph}"
            try:
                configs[graph] = self.client.get_model_config(model, headers=self.headers, as_json=True,
                                                              client_timeout=TIMEOUT_S)["config"]
            except self.ServerError as e:
                if "unknown model" not in str(e).lower() and "not found" not in str(e).lower():
                    raise self._refused(e) from None
                raise CmliteError(f"{self.url}: the server at {self.address} has no model {self.name!r} (no {model}); "
                                  f"it serves: {', '.join(self._names()) or 'no cmlite model'}") from None
            if not self._call("is_model_ready", model, client_timeout=TIMEOUT_S):
                raise CmliteError(f"{self.url}: {model} is not ready on the server (it failed to load: see the "
                                  f"server's log)")
        text = configs["dense"].get("parameters", {}).get("cmlite_manifest", {}).get("string_value")
        if not text:
            raise CmliteError(f"{self.url}: {self.name}_dense carries no cmlite manifest; export the repository with "
                              f"`cmlite triton export`")
        return parse_manifest(json.loads(text), Path(f"{self.name}_dense") / "config.pbtxt"), configs["masks"]

    def _names(self) -> list[str]:
        index = self._call("get_model_repository_index", as_json=True).get("models", [])
        return sorted({m["name"][:-len("_dense")] for m in index if m.get("name", "").endswith("_dense")})

    def replicas(self, n: int, threads: int | None) -> list["TritonSegmenter"]:
        """n clients of the same model: n frames in flight on the server at once (throughput mode)."""
        return [TritonSegmenter(self.url, self.maskiou, **self.overrides).settings_from(self) for _ in range(n)]

    @property
    def device(self) -> str:
        return f"triton {self.address}/{self.name} ({self.manifest.target} {self.manifest.precision} on the server)"

    def _infer(self, model: str, feeds: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        inputs = []
        for name, array in feeds.items():
            t = self.grpc.InferInput(name, list(array.shape), "FP32")
            t.set_data_from_numpy(np.ascontiguousarray(array, np.float32))
            inputs.append(t)
        wanted = [self.grpc.InferRequestedOutput(n) for n in outputs]
        result = self._call("infer", f"{self.name}_{model}", inputs, outputs=wanted)
        return {n: result.as_numpy(n) for n in outputs}

    def infer_dense(self, image: np.ndarray) -> dict[str, np.ndarray]:
        return self._infer("dense", {"image": image}, self.dense_outputs)

    def infer_masks(self, rois: np.ndarray, onehot: np.ndarray) -> dict[str, np.ndarray]:
        step = self.max_rois or len(rois)
        chunks = [self._infer("masks", {"rois": rois[i:i + step], "classes_onehot": onehot[i:i + step]},
                              self.mask_outputs) for i in range(0, len(rois), step)]
        return {k: np.concatenate([c[k] for c in chunks]) for k in self.mask_outputs}
