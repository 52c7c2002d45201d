"""What the figures were measured on: the CPU model and the instruction sets that decide INT8/BF16 speed."""
from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_line() -> str:
    """CPU model and the instruction sets that decide INT8/BF16 speed (figures mean nothing without them)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, val = line.partition(":")
            if key.strip() == "model name":
                model = val.strip()
            elif key.strip() in ("flags", "Features"):
                flags = set(val.split())
    except OSError:
        pass
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "asimddp", "i8mm")
    return f"{model}, {os.cpu_count()} cores; {' '.join(f for f in wanted if f in flags) or 'no avx2/vnni/bf16'}"
