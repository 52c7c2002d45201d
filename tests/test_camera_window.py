"""The window path of `cmlite camera`: OpenCV highgui under a virtual display (Xvfb), and the one-line errors
where no window can open. The GUI build of OpenCV (opencv-python) is installed beside the project's headless one,
in a folder put first on PYTHONPATH for the child process only. Keys are not pressed (no X input tool here)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import pytest

from tests.conftest import REPO
from tests.system_tools import need


@pytest.fixture(scope="module")
def gui_cv2() -> str:
    """A folder holding opencv-python at the version of the installed headless OpenCV (cached in .venv)."""
    version = cv2.__version__
    target = REPO / ".venv" / f"opencv-gui-{version}"
    if not (target / "cv2").is_dir():
        wheel = f"opencv-python=={version}" if version.count(".") == 2 else "opencv-python"
        r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                            str(target) + ".tmp", f"{wheel}.*"], capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
        os.replace(str(target) + ".tmp", target)
    return str(target)


def _camera(args, env, timeout=300):
    return subprocess.run([sys.executable, "-m", "cmlite.apps.cli", "camera", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_window_under_xvfb(default_onnx, gui_cv2, tmp_path):
    xvfb = need("xvfb-run", "xvfb")
    stats = tmp_path / "s.json"
    env = {**os.environ, "PYTHONPATH": gui_cv2, "QT_LOGGING_RULES": "*=false"}
    r = subprocess.run([xvfb, "-a", sys.executable, "-m", "cmlite.apps.cli", "camera", "--source", "synth", "--model",
                        str(default_onnx), "--frames", "6", "--stats", str(stats), "--snapshot-dir", str(tmp_path)],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "keys: q/Esc quit" in r.stderr and "no window" not in r.stderr  # the window opened
    assert json.loads(stats.read_text())["frames"] == 6


def test_gui_opencv_without_display_says_so(default_onnx, gui_cv2):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    r = _camera(["--source", "synth", "--model", str(default_onnx), "--frames", "2"], {**env, "PYTHONPATH": gui_cv2})
    assert r.returncode == 2  # one line, not Qt's abort
    assert r.stderr.strip().splitlines()[-1].startswith("cmlite: error: no display here (DISPLAY is not set): "
                                                        "use --headless")
