"""Process settings for the frame loop, applied once when a model is loaded (runtimes.load, lite.predictor).

- numpy's BLAS on one thread. The host work (RoIAlign, paste) is many tiny matrix products: a threaded BLAS
  spends 10-30x longer on them than one thread does (measured: paste 400 ms vs 11 ms on 2 cores), and its
  idle workers, woken by those calls, spin on the cores the graphs need (OpenVINO's graph 1 of the default
  model: 14.6 ms instead of 9.2 when host stages ran in another thread). The graphs use their own pools;
  PyTorch's are not numpy's BLAS and stay as they are.
- glibc's malloc keeps freed memory for the next frame. Every frame allocates the same large arrays (the input
  tensor, graph outputs, RoI features: 20-30 MB at 600x800); by default glibc maps each such block fresh from
  the kernel and unmaps it when freed, so every frame pays a page fault per 4 kB it touches: 2-4 ms a frame on
  the host stages of V-19-eSE at 600x800 (measured). Blocks up to 32 MB now come from the heap, which keeps up
  to 64 MB of freed memory: the process holds its high-water mark instead of returning it between frames. A
  no-op where the C library is not glibc. One malloc arena serves every thread: glibc's default gives each
  thread its own, and each keeps up to that much freed memory, so the throughput mode's lanes (a thread each)
  multiplied it: V-19-eSE LiteRT INT8 on two lanes peaked at 2.31x one stream's memory, with one arena 1.59x (ONNX
  Runtime 1.67x -> 1.48x), at the same fps (benchmarks/memory_steps.py; docs/speed.md).

CMLITE_SYSTEM_MALLOC=1 leaves malloc as it is; CMLITE_MALLOC_ARENAS=N gives it N arenas; CMLITE_BLAS_THREADS=N gives
numpy's BLAS N threads instead.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8  # glibc's malloc.h
MMAP_THRESHOLD = 32 << 20  # glibc's maximum
TRIM_THRESHOLD = 64 << 20
MALLOC_ARENAS = 1  # one arena for every thread (glibc makes one per thread otherwise, each keeping its freed memory)


@functools.lru_cache(maxsize=1)
def prepare_process() -> dict:
    """Apply both settings (once per process); returns what was applied."""
    return {"malloc": _keep_freed_memory(), "blas_threads": _blas_threads(int(os.environ.get("CMLITE_BLAS_THREADS", 1)))}


def _keep_freed_memory() -> bool:
    if os.environ.get("CMLITE_SYSTEM_MALLOC", "") not in ("", "0"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    mallopt(M_ARENA_MAX, int(os.environ.get("CMLITE_MALLOC_ARENAS", MALLOC_ARENAS)))
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def _blas_threads(n: int) -> int | None:
    """numpy's BLAS libraries (not PyTorch's) to n threads; the count set, or None where none was found."""
    import numpy  # noqa: F401  (loads its BLAS, so the controller finds it)
    from threadpoolctl import ThreadpoolController

    libs = [lib for lib in ThreadpoolController().select(user_api="blas").lib_controllers
            if "numpy" in lib.filepath or "scipy_openblas" in lib.filepath]
    for lib in libs:
        lib.set_num_threads(n)
    return n if libs else None
