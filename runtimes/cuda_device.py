"""CUDA memory, streams and device facts for the TensorRT runtime and engine builder.

cuda-python (`cuda.bindings.runtime`, or `cuda.cudart` in cuda-python < 12.6) first; pycuda where a Jetson image
ships it instead. Page-locked host buffers are numpy views, allocated once and reused across frames.
"""
from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

from .errors import CmliteError

INSTALL = ('pip install "cuda-python==<your CUDA major>.*" (JetPack 6: 12.*; `nvcc --version` tells) '
           "or, on a Jetson, sudo apt install python3-pycuda")


class Buffer:
    """A page-locked host array and a device allocation of the same size."""

    def __init__(self, host: np.ndarray, device: int, release):
        self.host, self.device, self._release = host, device, release

    def free(self) -> None:
        if self._release:
            self._release()
            self._release = None


class CudaRuntime:
    """cuda-python's runtime API."""

    name = "cuda-python"

    def __init__(self, cudart):
        self.rt = cudart

    def _call(self, result):
        err, *rest = result if isinstance(result, tuple) else (result,)
        if int(err) != 0:
            raise CmliteError(f"CUDA error {err} ({self.rt.cudaGetErrorString(err)[1].decode()}); is the GPU visible "
                              f"(nvidia-smi / tegrastats) and this process allowed to use it?")
        return rest[0] if len(rest) == 1 else rest

    def buffer(self, size: int, dtype: np.dtype) -> Buffer:
        dtype = np.dtype(dtype)
        nbytes = max(size, 1) * dtype.itemsize
        host_ptr = self._call(self.rt.cudaMallocHost(nbytes))
        dev_ptr = self._call(self.rt.cudaMalloc(nbytes))
        c_type = ctypes.POINTER(np.ctypeslib.as_ctypes_type(dtype))
        host = np.ctypeslib.as_array(ctypes.cast(host_ptr, c_type), (max(size, 1),))

        def release():
            self.rt.cudaFree(dev_ptr)
            self.rt.cudaFreeHost(host_ptr)

        return Buffer(host, int(dev_ptr), release)

    def stream(self):
        return self._call(self.rt.cudaStreamCreate())

    def stream_handle(self, stream) -> int:
        return int(stream)

    def to_device(self, buf: Buffer, nbytes: int, stream) -> None:
        self._call(self.rt.cudaMemcpyAsync(buf.device, buf.host.ctypes.data, nbytes,
                                           self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice, stream))

    def to_host(self, buf: Buffer, nbytes: int, stream) -> None:
        self._call(self.rt.cudaMemcpyAsync(buf.host.ctypes.data, buf.device, nbytes,
                                           self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, stream))

    def synchronize(self, stream) -> None:
        self._call(self.rt.cudaStreamSynchronize(stream))

    def device(self) -> dict:
        dev = self._call(self.rt.cudaGetDevice())
        prop = self._call(self.rt.cudaGetDeviceProperties(dev))
        name = prop.name.decode(errors="replace").rstrip("\x00") if isinstance(prop.name, bytes) else str(prop.name)
        return device_facts(name, prop.major, prop.minor)

    def current(self):
        """Context manager making the device current in this thread (the runtime API does so itself)."""
        import contextlib

        return contextlib.nullcontext()


class PyCuda:
    """pycuda's driver API on the device's primary context (the one TensorRT's runtime uses)."""

    name = "pycuda"

    def __init__(self, driver):
        self.drv = driver
        driver.init()
        self.dev = driver.Device(0)
        self.ctx = self.dev.retain_primary_context()

    def current(self):
        import contextlib

        @contextlib.contextmanager
        def pushed():
            self.ctx.push()
            try:
                yield
            finally:
                self.drv.Context.pop()

        return pushed()

    def buffer(self, size: int, dtype: np.dtype) -> Buffer:
        with self.current():
            host = self.drv.pagelocked_empty(max(size, 1), np.dtype(dtype))
            dev = self.drv.mem_alloc(host.nbytes)
        return Buffer(host, int(dev), dev.free)

    def stream(self):
        with self.current():
            return self.drv.Stream()

    def stream_handle(self, stream) -> int:
        return stream.handle

    def to_device(self, buf: Buffer, nbytes: int, stream) -> None:
        self.drv.memcpy_htod_async(buf.device, buf.host.view(np.uint8)[:nbytes], stream)

    def to_host(self, buf: Buffer, nbytes: int, stream) -> None:
        self.drv.memcpy_dtoh_async(buf.host.view(np.uint8)[:nbytes], buf.device, stream)

    def synchronize(self, stream) -> None:
        stream.synchronize()

    def device(self) -> dict:
        return device_facts(self.dev.name(), *self.dev.compute_capability())


def cuda_api():
    """cuda-python, else pycuda; neither: one line saying what to install."""
    for module in ("cuda.bindings.runtime", "cuda.cudart"):
        try:
            import importlib

            return CudaRuntime(importlib.import_module(module))
        except ImportError:
            continue
    try:
        import pycuda.driver as driver
    except ImportError:
        raise CmliteError(f"TensorRT needs CUDA's Python bindings, and neither cuda-python nor pycuda is installed: "
                          f"{INSTALL}") from None
    return PyCuda(driver)


def jetson_model(path: str = "/proc/device-tree/model") -> str | None:
    """The board's name on a Jetson ("NVIDIA Jetson Orin Nano Developer Kit"), None elsewhere."""
    try:
        text = Path(path).read_bytes().decode(errors="replace").strip("\x00 \n")
    except OSError:
        return None
    return text if "jetson" in text.lower() or "nvidia" in text.lower() else None


def device_facts(gpu: str, major: int, minor: int) -> dict:
    return {"gpu": gpu, "compute_capability": f"{major}.{minor}", "jetson_model": jetson_model()}
