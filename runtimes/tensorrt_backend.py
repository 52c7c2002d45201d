"""TensorRT backend (TensorRT 10/11: named I/O tensors, set_input_shape, set_tensor_address, execute_async_v3).

Runs the engines `cmlite build-engine` wrote into the folder on this device. Each graph has its own execution
context, CUDA stream and page-locked host / device buffers sized once for its profile's largest shapes and
reused for every frame; each call sets the actual input shapes (within the profile) and copies only the bytes
used. Graph 2 runs more RoIs than its profile's maximum in chunks. Everything around the graphs is the shared
pipeline (runtimes/pipeline.py), as on every backend.
"""
from __future__ import annotations

import importlib
import warnings

import numpy as np

from .backend import ConvertedSegmenter
from .errors import CmliteError

MIN_VERSION = 10
INSTALL = ("on a Jetson it comes with JetPack: sudo apt install python3-libnvinfer (in a virtual environment made "
           "with --system-site-packages); on x86 with an NVIDIA GPU: pip install tensorrt-cu12 (NVIDIA's wheels, "
           "CUDA 12) or tensorrt-cu13; off the GPU, run the folder's ONNX graphs in ONNX Runtime: --backend onnx "
           "(predict, eval, parity, bench, camera) or runtimes.load(folder, backend='onnx')")


def require_tensorrt():
    """`import tensorrt` (10 or later), or one line saying how to get it."""
    try:
        trt = importlib.import_module("tensorrt")
    except ImportError as e:
        raise CmliteError(f"TensorRT's Python package is not installed ({e}): {INSTALL}") from None
    major = int(str(trt.__version__).split(".")[0])
    if major < MIN_VERSION:
        raise CmliteError(f"TensorRT {trt.__version__} is too old: cmlite builds and runs TensorRT {MIN_VERSION} or "
                          f"later (JetPack 6.1+ on Jetson; pip install tensorrt-cu12 on x86)")
    return trt


def rebuild_hint(folder) -> str:
    return f"rebuild the engines on this device: cmlite build-engine {folder}"


def check_engine_record(engines: dict | None, trt_version: str, device: dict, folder) -> None:
    """The engines were built by this TensorRT for this GPU's architecture; else one line with the rebuild
    command. (TensorRT engines are tied to the TensorRT version and the compute capability they were built
    with; another GPU model of the same architecture runs them, possibly slower: a warning.)"""
    if not engines or not engines.get("files"):
        raise CmliteError(f"{folder} has no TensorRT engines yet: they are built on the device that runs them; "
                          f"{rebuild_hint(folder)}")
    built, here = engines.get("tensorrt_version"), str(trt_version)
    if built != here:
        raise CmliteError(f"{folder}: the engines were built with TensorRT {built}, this is TensorRT {here}; "
                          f"{rebuild_hint(folder)}")
    was = engines.get("device", {})
    if was.get("compute_capability") != device.get("compute_capability"):
        raise CmliteError(f"{folder}: the engines were built for {was.get('gpu')} (compute capability "
                          f"{was.get('compute_capability')}), this GPU is {device.get('gpu')} (compute capability "
                          f"{device.get('compute_capability')}); {rebuild_hint(folder)}")
    if was.get("gpu") != device.get("gpu"):
        warnings.warn(f"{folder}: engines built on {was.get('gpu')}, running on {device.get('gpu')} (same "
                      f"architecture); for the best kernels, {rebuild_hint(folder)}", stacklevel=2)


def shape_problem(name: str, shape: tuple[int, ...], lo, hi) -> str | None:
    """Why `shape` is outside the profile [lo, hi], or None when it fits."""
    if len(shape) != len(lo) or any(not a <= s <= b for s, a, b in zip(shape, lo, hi)):
        return (f"input {name} of shape {tuple(shape)} is outside the engine's profile {tuple(lo)}..{tuple(hi)}; "
                f"rebuild the engines for it (cmlite convert --targets tensorrt with the model's settings, then "
                f"cmlite build-engine)")
    return None


class _Engine:
    """One engine: its context, stream and reused buffers."""

    def __init__(self, trt, engine, cuda, label: str):
        self.trt, self.engine, self.cuda, self.label = trt, engine, cuda, label
        with cuda.current():
            self.context = engine.create_execution_context()
            self.stream = cuda.stream()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self.inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]
        self.profile = {n: tuple(tuple(int(d) for d in s) for s in engine.get_tensor_profile_shape(n, 0))
                        for n in self.inputs}
        for n in self.inputs:  # the largest shapes size the buffers
            self.context.set_input_shape(n, self.profile[n][2])
        self.buffers = {}
        for n in names:
            shape = tuple(self.context.get_tensor_shape(n))
            self.buffers[n] = cuda.buffer(int(np.prod(shape)), np.dtype(trt.nptype(engine.get_tensor_dtype(n))))
            self.context.set_tensor_address(n, self.buffers[n].device)

    @property
    def max_batch(self) -> int:
        return self.profile[self.inputs[0]][2][0]

    def __call__(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        cuda = self.cuda
        with cuda.current():
            for n in self.inputs:
                buf = self.buffers[n]
                x = np.ascontiguousarray(feeds[n], dtype=buf.host.dtype)
                problem = shape_problem(n, x.shape, self.profile[n][0], self.profile[n][2])
                if problem:
                    raise CmliteError(f"{self.label}: {problem}")
                self.context.set_input_shape(n, x.shape)
                buf.host[: x.size] = x.ravel()
                cuda.to_device(buf, x.nbytes, self.stream)
            if not self.context.execute_async_v3(cuda.stream_handle(self.stream)):
                raise CmliteError(f"{self.label}: TensorRT could not run the engine (its messages above say why)")
            shapes = {}
            for n in self.outputs:
                shapes[n] = tuple(self.context.get_tensor_shape(n))
                buf = self.buffers[n]
                cuda.to_host(buf, int(np.prod(shapes[n])) * buf.host.itemsize, self.stream)
            cuda.synchronize(self.stream)
        # copies: the buffers are reused by the next frame while the pipeline may still hold these outputs
        return {n: self.buffers[n].host[: int(np.prod(s))].reshape(s).copy() for n, s in shapes.items()}

    def free(self) -> None:
        for b in self.buffers.values():
            b.free()
        self.buffers = {}


class TensorRtSegmenter(ConvertedSegmenter):
    def open(self) -> None:
        from .cuda_device import cuda_api

        trt = require_tensorrt()
        cuda = cuda_api()
        device = cuda.device()
        engines = self.manifest.engines
        check_engine_record(engines, trt.__version__, device, self.folder)
        shapes = engines.get("shapes") or {}
        if shapes.get("fixed_hw"):  # built with fixed shapes (DLA): the pipeline fits frames into them
            self.fixed_hw = tuple(shapes["fixed_hw"])
        self.mask_batch = shapes.get("mask_batch") or self.mask_batch
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engines = {}
        if "masks" in self.kinds and self.mask_kind not in engines["files"]:
            raise self.no_graph(self.mask_kind)
        for kind, e in engines["files"].items():
            if kind not in self.open_kinds:
                continue
            with cuda.current():
                engine = self.runtime.deserialize_cuda_engine((self.folder / e["file"]).read_bytes())
            if engine is None:
                raise CmliteError(f"{self.folder / e['file']}: TensorRT {trt.__version__} cannot load this engine "
                                  f"(built elsewhere or damaged); {rebuild_hint(self.folder)}")
            self.engines[kind] = _Engine(trt, engine, cuda, f"{self.folder.name}/{e['file']}")
        self.device_facts = device

    @property
    def device(self) -> str:
        d = getattr(self, "device_facts", {})
        where = d.get("jetson_model") or d.get("gpu") or "GPU"
        dla = (self.manifest.engines or {}).get("settings", {}).get("dla_core")
        return (f"tensorrt {self.manifest.precision} on {where} (sm {d.get('compute_capability')})"
                + (f", DLA core {dla}" if dla is not None else ""))

    def infer_dense(self, image: np.ndarray) -> dict[str, np.ndarray]:
        return self.engines["dense"]({"image": image})

    def infer_masks(self, rois: np.ndarray, onehot: np.ndarray) -> dict[str, np.ndarray]:
        run = self.engines[self.mask_kind]
        step = run.max_batch
        if len(rois) <= step:
            return run({"rois": rois, "classes_onehot": onehot})
        chunks = [run({"rois": rois[i:i + step], "classes_onehot": onehot[i:i + step]})
                  for i in range(0, len(rois), step)]
        return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}

    def close(self) -> None:
        for e in getattr(self, "engines", {}).values():
            e.free()
        self.engines = {}

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
