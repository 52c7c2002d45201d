"""Progress and library noise in redirected output: occasional plain lines instead of carriage-return bars, and
no TensorFlow Lite / absl / oneDNN lines unless -v (real `cmlite` processes, stderr to a pipe)."""
from __future__ import annotations

import io
import subprocess
import sys

from cmlite.runtimes.progress import LineProgress, progress_bar

from .conftest import REPO

CMLITE = [sys.executable, "-m", "cmlite.apps.cli"]


def test_a_redirected_bar_prints_lines_now_and_then():
    out = io.StringIO()
    bar = progress_bar(range(5), desc="eval", unit="img", file=out)
    assert isinstance(bar, LineProgress)  # a StringIO is no terminal
    assert list(bar) == [0, 1, 2, 3, 4]
    assert out.getvalue().splitlines() == [out.getvalue().splitlines()[0]] and "eval: 5/5 img (100%) in" in \
        out.getvalue()  # one line at the end (fast work prints no line in between)
    ticking = LineProgress(None, "bench", 3, "step", out, False, every=0.0)
    ticking.set_postfix_str("round 2")
    ticking.update()
    assert "bench: 1/3 step (33%)" in out.getvalue() and "[round 2]" in out.getvalue() and "\r" not in out.getvalue()


def test_redirected_commands_write_no_carriage_returns(tmp_path):
    """Before: `cmlite data synth ... 2> log` filled the log with a \\r-separated line per refresh."""
    proc = subprocess.run(CMLITE + ["data", "synth", "--out", str(tmp_path / "d"), "--train", "30", "--val", "2",
                                    "--size", "96"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stderr and "synth d: 32/32 img (100%)" in proc.stderr


def test_library_lines_only_with_v(default_models, tmp_path):
    """LiteRT announces its XNNPACK delegate on stderr from C++ ("INFO: Created TensorFlow Lite XNNPACK delegate");
    it is kept out, and shown with `cmlite -v`."""
    from cmlite.calibration.synth_scene import MovingScene
    import cv2

    image = tmp_path / "f.png"
    cv2.imwrite(str(image), MovingScene(320, 240, seed=0).render(0.0))
    argv = ["predict", "--model", str(default_models["tflite-fp32"]), str(image)]
    quiet = subprocess.run(CMLITE + argv, cwd=REPO, capture_output=True, text=True, timeout=300)
    loud = subprocess.run(CMLITE + ["-v"] + argv, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert quiet.returncode == loud.returncode == 0, quiet.stderr + loud.stderr
    assert "XNNPACK" not in quiet.stderr and "XNNPACK" in loud.stderr
    assert quiet.stdout.count("instances in") == loud.stdout.count("instances in") == 1
