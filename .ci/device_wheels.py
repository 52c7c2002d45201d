"""Do the device extras install on aarch64? Resolves cmlite[onnx], cmlite[tflite] and cmlite[openvino] for linux
aarch64 (Jetson Orin's CPU side on JetPack 6: CPython 3.10, glibc 2.35; Raspberry Pi 5: CPython 3.11 on
Raspberry Pi OS Bookworm, glibc 2.36, or 3.12 on Ubuntu 24.04), binary wheels only, with pip's resolver (`pip install --dry-run --report`, nothing
downloaded but metadata). The requirements are read from pyproject.toml: the core dependencies plus the extra.

    python .ci/device_wheels.py          # prints what resolved; exit 1 if any part has no wheel

tests/test_packaging.py runs it in CI.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXTRAS = ("onnx", "tflite", "openvino")
PYTHONS = ("3.10", "3.11", "3.12")  # JetPack 6; Raspberry Pi OS Bookworm; Ubuntu 24.04
# every manylinux tag up to glibc 2.35 (JetPack 6 is Ubuntu 22.04): pip matches platform tags exactly
PLATFORMS = ["manylinux2014_aarch64", *(f"manylinux_2_{v}_aarch64" for v in range(17, 36))]


def requirements(extra: str) -> list[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [*project["dependencies"], *project["optional-dependencies"][extra]]


def resolve(extra: str, python: str) -> tuple[list[tuple[str, str, str]], str | None]:
    """[(name, version, wheel file)] and None, or [] and pip's error."""
    abi = "cp" + python.replace(".", "")
    with tempfile.TemporaryDirectory() as d:
        report = Path(d) / "report.json"
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
               "--disable-pip-version-check", "--report", str(report), "--only-binary=:all:",
               *(a for p in PLATFORMS for a in ("--platform", p)), "--python-version", python,
               "--implementation", "cp", "--abi", abi, "--target", str(Path(d) / "target"), *requirements(extra)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            lines = [x for x in proc.stderr.splitlines() if x.startswith("ERROR")] or proc.stderr.splitlines()[-3:]
            return [], " / ".join(lines)
        got = json.loads(report.read_text())["install"]
    return [(i["metadata"]["name"], i["metadata"]["version"], i["download_info"]["url"].rsplit("/", 1)[-1])
            for i in got], None


def main() -> int:
    t0 = time.perf_counter()
    failed = []
    print(f"device extras on linux aarch64 (binary wheels only, {PLATFORMS[0]} .. {PLATFORMS[-1]}):")
    for extra in EXTRAS:
        for python in PYTHONS:
            wheels, error = resolve(extra, python)
            print(f"\ncmlite[{extra}], CPython {python}: " + ("resolved" if not error else f"FAILED: {error}"))
            for name, version, wheel in wheels:
                print(f"  {name:<24} {version:<14} {wheel}")
            if error:
                failed.append(f"cmlite[{extra}] on CPython {python}")
    print(f"\n{len(EXTRAS) * len(PYTHONS) - len(failed)} of {len(EXTRAS) * len(PYTHONS)} resolved in "
          f"{time.perf_counter() - t0:.0f} s" + (f"; no wheels for: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
