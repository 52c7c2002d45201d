"""The package as users install it: the wheel's only top-level name is cmlite, the installed wheel runs a
converted model without torch, and the device extras resolve to binary wheels on aarch64."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from tests.conftest import REPO, run_torch_free

PACKAGES = ("lite", "runtimes", "converters", "calibration", "apps")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The wheel built from a copy of the tracked sources (the checkout is left as it is)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    for name in PACKAGES:
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                           "--wheel-dir", str(out), str(src)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = out.glob("cmlite-*.whl")
    return path


def test_the_wheel_has_one_top_level_name(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"cmlite"}, sorted(top)
    for p in PACKAGES:
        assert f"cmlite/{p}/__init__.py" in names
    assert "cmlite/__init__.py" not in names  # a namespace: nothing runs on `import cmlite`
    assert any(n.startswith("cmlite/lite/weights/") and n.endswith(".pth") for n in names)  # the default model
    meta = zipfile.ZipFile(wheel)
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "cmlite = cmlite.apps.cli:main" in meta.read(entry).decode()


def test_the_installed_wheel_runs_a_converted_model_without_torch(wheel, tmp_path, default_onnx):
    """Installed on its own (--target), first on the path: cmlite.runtimes comes from the wheel, torch unused."""
    site = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(site),
                           str(wheel)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    code = f"""
        sys.path.insert(0, {str(site)!r})
        import numpy as np
        from cmlite import runtimes
        assert runtimes.__file__.startswith({str(site)!r}), runtimes.__file__
        seg = runtimes.load({str(default_onnx)!r}, threads=1)
        inst = seg.predict(np.full((240, 320, 3), 114, np.uint8))
        assert "torch" not in {{m.split(".")[0] for m in sys.modules if sys.modules[m] is not None}}
        print("ok", len(inst), runtimes.__version__)
    """
    proc = run_torch_free(code)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split()[0] == "ok"


@pytest.mark.slow
def test_device_extras_resolve_to_aarch64_wheels(capsys):
    """cmlite[onnx|tflite|openvino] for linux aarch64, CPython 3.10 (JetPack 6), 3.11 and 3.12, binary wheels only; the
    table is printed to the terminal (CI's log)."""
    proc = subprocess.run([sys.executable, str(REPO / ".ci" / "device_wheels.py")], capture_output=True, text=True,
                          timeout=300)
    if proc.returncode != 0 and "No matching distribution" not in proc.stdout and not os.environ.get("CMLITE_CI") \
            and ("NewConnectionError" in proc.stdout or "Network is unreachable" in proc.stdout):
        pytest.skip("no package index reachable (CI runs this)")
    with capsys.disabled():
        print("\n" + proc.stdout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count(": resolved") == 9
