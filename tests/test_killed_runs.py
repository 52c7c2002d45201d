"""`cmlite convert` and `cmlite quantize` killed with SIGKILL at several points (nothing of theirs runs after it):
--out never holds a partial model folder, and the next run succeeds and removes what the killed one left behind
(its hidden staging folder), putting back a folder it had moved aside to replace."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import pytest

from cmlite import runtimes
from cmlite.converters.folders import STAGING_PREFIX, staging_dir, sweep_stale
from tests.conftest import REPO


def _run_until(argv: list[str], marker: str | None, timeout: float = 600) -> tuple[int, str]:
    """Run `cmlite ARGV`; SIGKILL it as soon as a line containing `marker` is logged. -> (returncode, log)."""
    proc = subprocess.Popen([sys.executable, "-u", "-m", "cmlite.apps.cli", *argv], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    killer = threading.Timer(timeout, proc.kill)
    killer.start()
    try:
        for line in proc.stdout:
            lines.append(line)
            if marker is not None and marker in line:
                proc.send_signal(signal.SIGKILL)
                break
        proc.wait()
    finally:
        killer.cancel()
        proc.stdout.close()
    return proc.returncode, "".join(lines)


def _check_out(out: Path, stale_allowed: bool) -> list[str]:
    """Every visible entry of --out is a complete model folder (its manifest's files and hashes check out);
    hidden ones are staging folders, and only of a killed run when allowed. -> the model folders."""
    folders = []
    for entry in sorted(out.iterdir()):
        if entry.name.startswith(STAGING_PREFIX):
            assert stale_allowed, f"{entry.name} left in --out"
            continue
        runtimes.read_manifest(entry).verify_files(entry)  # raises on a missing or partly written file
        folders.append(entry.name)
    return folders


@pytest.mark.slow
def test_killed_convert_leaves_no_partial_folder_and_the_next_run_cleans_up(tmp_path):
    out = tmp_path / "out"
    convert = ["convert", "--targets", "onnx", "--precision", "fp32,fp16", "--out", str(out), "--overwrite"]
    rc, log = _run_until(convert, "exporting graph 1")  # mid-export, into a new --out
    assert rc == -signal.SIGKILL, log
    assert _check_out(out, stale_allowed=True) == []
    assert any(p.name.startswith(STAGING_PREFIX) for p in out.iterdir())  # what a killed run leaves behind
    rc, log = _run_until(convert, None)
    assert rc == 0 and "the staging folder of a run that was killed" in log, log
    assert _check_out(out, stale_allowed=False) == ["onnx-fp16", "onnx-fp32"]
    # killed while replacing complete folders: once one new folder is staged, and while renaming into place.
    # Each name keeps a complete folder, old or new.
    before = {p.name: runtimes.read_manifest(p).provenance["created"] for p in out.iterdir()}
    time.sleep(1.1)  # provenance times are to the second
    for marker in ["[2/2]", "  -> "]:
        rc, log = _run_until(convert, marker)
        assert rc == -signal.SIGKILL, log
        assert _check_out(out, stale_allowed=True) in (["onnx-fp16", "onnx-fp32"], ["onnx-fp32"])
    rc, log = _run_until(convert, None)
    assert rc == 0 and "the staging folder of a run that was killed" in log, log
    assert _check_out(out, stale_allowed=False) == ["onnx-fp16", "onnx-fp32"]
    after = {p.name: runtimes.read_manifest(p).provenance["created"] for p in out.iterdir()}
    assert all(after[k] > before[k] for k in before)


@pytest.mark.slow
def test_killed_quantize_leaves_no_partial_folder_and_the_next_run_cleans_up(tmp_path):
    from cmlite.apps.camera.sources import SynthSource

    calib = tmp_path / "calib"
    calib.mkdir()
    source = SynthSource(width=320, height=240)
    for i in range(4):
        cv2.imwrite(str(calib / f"{i}.png"), source.read()[1])
    out = tmp_path / "out"
    quantize = ["quantize", "--calib", str(calib), "--calib-count", "4", "--targets", "onnx", "--keep-float", "none",
                "--threads", "2", "--out", str(out)]
    for marker in ["FP32 twins", "calibrating", "quantizing onnx"]:  # converting twins; calibrating; building
        rc, log = _run_until(quantize, marker)
        assert rc == -signal.SIGKILL, log
        assert _check_out(out, stale_allowed=True) == []
    rc, log = _run_until(quantize, None)
    assert rc == 0, log
    assert "the staging folder of a run that was killed" in log
    assert _check_out(out, stale_allowed=False) == ["onnx-int8"]


def test_staging_of_a_live_run_is_left_alone_and_a_replaced_folder_comes_back(tmp_path):
    """The sweep removes only folders whose owner is gone: another run writing into the same --out keeps its own.
    A folder moved aside for replacement returns to its name when the run stops before the new one took it."""
    out = tmp_path / "out"
    out.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        from cmlite.converters.folders import _start_time

        live = out / f"{STAGING_PREFIX}convert-{sleeper.pid}-{_start_time(sleeper.pid)}-abcd"
        live.mkdir()
        reused = out / f"{STAGING_PREFIX}convert-{sleeper.pid}-1-abcd"  # the pid of a process long gone, reused
        (reused / "onnx-fp32.old").mkdir(parents=True)
        (reused / "onnx-fp32.old" / "manifest.json").write_text("{}")
        logs: list[str] = []
        sweep_stale(out, logs.append)
        assert live.is_dir() and not reused.exists()
        assert (out / "onnx-fp32" / "manifest.json").read_text() == "{}"
        assert any("restored" in m for m in logs)
    finally:
        sleeper.kill()
        sleeper.wait()
    sweep_stale(out, logs.append)
    assert not live.exists()
    # an exception while replacing: the old folder is back under its name and the staging folder is gone
    (out / "onnx-fp16").mkdir()
    with pytest.raises(RuntimeError), staging_dir(out, "convert", logs.append) as work:
        (out / "onnx-fp16").rename(work / "onnx-fp16.old")
        raise RuntimeError("failed between the two renames")
    assert (out / "onnx-fp16").is_dir() and not [p for p in out.iterdir() if p.name.startswith(STAGING_PREFIX)]
    assert sorted(os.listdir(out)) == ["onnx-fp16", "onnx-fp32"]
