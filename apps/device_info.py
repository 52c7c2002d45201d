"""What figures were measured on: the device fingerprint every benchmark report carries.

CPU model and the instruction sets that decide INT8/BF16 speed (x86: AVX2, AVX-512 VNNI, AVX-VNNI, AVX-512
BF16, AMX; ARM: dot product, i8mm, bf16, SVE), cores usable by this process, memory, OS, Python, the version of
every backend package; on a Jetson the board, L4T, JetPack and power mode; with an NVIDIA GPU its name,
driver and compute capability. Nothing here imports a backend (versions come from the package metadata).
"""
from __future__ import annotations

import functools
import os
import platform
import re
import shutil
import subprocess
from pathlib import Path

from cmlite.runtimes.versions import package_versions

# the flags that decide INT8/BF16 speed, as /proc/cpuinfo names them (x86 "flags", ARM "Features")
ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16",
             "asimd", "asimddp", "i8mm", "bf16", "sve", "sve2")
# what the flag means for a reader of the report
ISA_NAMES = {"asimddp": "dotprod"}
PACKAGES = ("cmlite", "numpy", "opencv-python-headless", "opencv-python", "onnxruntime", "onnxruntime-gpu",
            "onnxruntime-openvino", "openvino", "nncf", "ai-edge-litert", "tflite-runtime", "tensorrt", "cuda-python",
            "pycuda", "torch", "onnx", "litert-torch", "ai-edge-quantizer", "pycocotools")


def _read(path: str | Path) -> str | None:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return None


def _run(*cmd: str, timeout: float = 10) -> str | None:
    if not shutil.which(cmd[0]):
        return None
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def parse_cpuinfo(text: str) -> tuple[str | None, set[str]]:
    """(model name, flags) from /proc/cpuinfo (x86 'model name'/'flags', ARM 'Features' and 'CPU part')."""
    model, flags = None, set()
    for line in text.splitlines():
        key, _, val = line.partition(":")
        key = key.strip()
        if key in ("model name", "Model", "Hardware") and not model:
            model = val.strip() or None
        elif key in ("flags", "Features") and not flags:
            flags = set(val.split())
    return model, flags


@functools.lru_cache(maxsize=1)
def cpu() -> dict:
    model, flags = parse_cpuinfo(_read("/proc/cpuinfo") or "")
    if not model:
        lscpu = _run("lscpu") or ""
        m = re.search(r"^Model name:\s*(.+)$", lscpu, re.M)
        model = m.group(1).strip() if m else (platform.processor() or platform.machine())
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    quota = None  # a container's CPU limit (cgroup v2): "max 100000" is none, "200000 100000" is 2 cores
    parts = (_read("/sys/fs/cgroup/cpu.max") or "").split()
    if len(parts) == 2 and parts[0] != "max":
        quota = round(int(parts[0]) / int(parts[1]), 2)
    governor = (_read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor") or "").strip() or None
    return {"model": model, "arch": platform.machine(), "logical_cores": os.cpu_count(), "usable_cores": usable,
            "cgroup_cpu_limit": quota, "governor": governor,
            "isa": [ISA_NAMES.get(f, f) for f in ISA_FLAGS if f in flags]}


def cpu_line() -> str:
    """CPU model and the instruction sets that decide INT8/BF16 speed (figures mean nothing without them)."""
    c = cpu()
    isa = [f for f in c["isa"] if f not in ("asimd",)]
    return f"{c['model']}, {c['usable_cores']} cores; {' '.join(isa) or 'no avx2/vnni/bf16/dotprod'}"


def memory_gb() -> float | None:
    m = re.search(r"^MemTotal:\s+(\d+) kB", _read("/proc/meminfo") or "", re.M)
    if m:
        return round(int(m.group(1)) / 2**20, 1)
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def parse_l4t(text: str) -> str | None:
    """'35.4.1' from /etc/nv_tegra_release ('# R35 (release), REVISION: 4.1, GCID: ...')."""
    m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text)
    return f"{m.group(1)}.{m.group(2)}" if m else None


def parse_nvpmodel(text: str) -> str | None:
    """'MAXN' from `nvpmodel -q` ('NV Power Mode: MAXN' then the mode number)."""
    m = re.search(r"NV Power Mode:\s*(\S+)", text)
    return m.group(1) if m else None


def parse_nvidia_smi(text: str) -> list[dict]:
    """Rows of `nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader`."""
    gpus = []
    for line in text.strip().splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) >= 4:
            gpus.append({"name": cells[0], "driver": cells[1], "memory": cells[2], "compute_capability": cells[3]})
    return gpus


def jetson() -> dict | None:
    """Board, L4T release, JetPack version and power mode; None off a Jetson."""
    model = (_read("/proc/device-tree/model") or "").strip("\x00\n ")
    release = _read("/etc/nv_tegra_release")
    if not release and "jetson" not in model.lower():
        return None
    jetpack = _run("dpkg-query", "-W", "-f=${Version}", "nvidia-jetpack")
    return {"board": model or None, "l4t": parse_l4t(release or ""),
            "jetpack": jetpack.strip() if jetpack else None,
            "power_mode": parse_nvpmodel(_run("nvpmodel", "-q") or "")}


def nvidia_gpus() -> list[dict] | None:
    out = _run("nvidia-smi", "--query-gpu=name,driver_version,memory.total,compute_cap", "--format=csv,noheader")
    return parse_nvidia_smi(out) if out else None


def fingerprint(name: str | None = None) -> dict:
    """The device section of a benchmark report."""
    return {"name": name or platform.node() or "device", "cpu": cpu(), "memory_gb": memory_gb(),
            "os": platform.platform(), "python": platform.python_version(), "packages": package_versions(*PACKAGES),
            "jetson": jetson(), "nvidia_gpus": nvidia_gpus()}
