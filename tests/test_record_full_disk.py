"""--record on a disk that fills up (a file-size limit, RLIMIT_FSIZE, stands in for the disk): one line, the
frames so far kept whole, the run goes on, --stats written; and a file whose writes fail silently is deleted.

Before: OpenCV's writers fail without a word past the limit ("Failed to write frame" once a frame) and leave a
file with no index, or an .mp4 with no moov atom that nothing plays."""
from __future__ import annotations

import json
import math
import queue
import resource
import signal
import subprocess
import sys
import threading
import time

import cv2
import pytest

import cmlite.apps.camera.recorder as recorder
from cmlite.apps.camera.sources import open_source
from tests.conftest import REPO

LIMIT = 3_000_000  # bytes: about 80 frames of the synthetic scene in Motion JPEG


def _frames_in(path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def _limit_file_size():
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))


@pytest.mark.slow
def test_camera_recording_into_a_full_disk_stops_with_one_line_and_the_run_goes_on(tmp_path, default_onnx):
    """The app under a 3 MB file-size limit, recording .webm: one line when the room runs short, the Motion JPEG
    kept as .avi (no room to encode a second copy) with every frame it says, the run going on until SIGTERM,
    exit 0 and --stats written."""
    rec, stats = tmp_path / "run.webm", tmp_path / "s.json"
    limited = (f"import resource, runpy, sys; resource.setrlimit(resource.RLIMIT_FSIZE, ({LIMIT}, "
               f"resource.getrlimit(resource.RLIMIT_FSIZE)[1])); sys.argv[0] = 'cmlite'; "
               f"runpy.run_module('cmlite.apps.cli', run_name='__main__')")  # the limit set in the child, no fork hook
    proc = subprocess.Popen([sys.executable, "-c", limited, "camera", "--source", "synth", "--model",
                             str(default_onnx), "--threads", "2", "--headless", "--record", str(rec),
                             "--stats", str(stats)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr], daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + 180
    try:
        while not any("recording stopped" in line for line in seen):
            assert time.monotonic() < deadline and proc.poll() is None, seen
            try:
                seen.append(lines.get(timeout=1.0))
            except queue.Empty:
                pass
        time.sleep(3.0)  # it goes on without recording
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    time.sleep(0.2)
    while not lines.empty():
        seen.append(lines.get())
    assert proc.returncode == 0, seen
    about_recording = [line for line in seen if "record" in line.lower() or "write" in line.lower()]
    assert len(about_recording) == 1, seen  # one line, no flood of OpenCV warnings
    s = json.loads(stats.read_text())
    assert s["stopped_by"] == "interrupted"
    assert s["recording"] == str(tmp_path / "run.avi") and "recording stopped" in s["recording_error"]
    assert 0 < s["recorded_frames"] < s["frames"], s  # stopped early, and the run went on
    assert _frames_in(tmp_path / "run.avi") == s["recorded_frames"]
    assert (tmp_path / "run.avi").stat().st_size < LIMIT
    assert s["captured"] == s["taken"] + s["dropped"] + s["pending"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.avi", "s.json"]  # no partial file
    assert "video in " + str(tmp_path / "run.avi") in out


@pytest.fixture
def file_size_limit():
    """RLIMIT_FSIZE on this process for the test's length (Python ignores SIGXFSZ: writes past it fail)."""
    old = resource.getrlimit(resource.RLIMIT_FSIZE)
    _limit_file_size()
    yield
    resource.setrlimit(resource.RLIMIT_FSIZE, old)


def _record(path, frames: int, log: list[str]):
    """A Recorder fed `frames` frames of the moving scene, then closed."""
    rec = recorder.Recorder(path, fps=30, log=log.append)
    scene = open_source("synth").scene
    for i in range(frames):
        rec.write(scene.render(i / 30))
    rec.close()
    return rec


def test_a_recording_whose_writes_fail_unseen_is_deleted_with_one_line(tmp_path, monkeypatch, file_size_limit):
    """The room check blinded (as when another program fills the disk between checks): the file stops growing,
    so it is deleted with one line and later frames are ignored, without an exception."""
    monkeypatch.setattr(recorder, "room_left", lambda path: math.inf)
    logs: list[str] = []
    rec = _record(tmp_path / "out.avi", 300, logs)
    assert len(logs) == 1 and "stopped growing" in logs[0] and rec.error == logs[0], logs
    assert rec.frames == 0 and list(tmp_path.iterdir()) == []


def test_a_direct_recording_stops_whole_before_the_limit(tmp_path, file_size_limit):
    """Motion JPEG written directly (.avi): finished at the check that finds too little room, every frame it
    counts readable."""
    logs: list[str] = []
    rec = _record(tmp_path / "out.avi", 300, logs)
    assert len(logs) == 1 and "recording stopped" in logs[0], logs
    assert 0 < rec.frames < 300 and _frames_in(tmp_path / "out.avi") == rec.frames
    assert [p.name for p in tmp_path.iterdir()] == ["out.avi"]


def test_no_room_to_encode_keeps_the_motion_jpeg(tmp_path, monkeypatch):
    """The run fitted but the browser codec's copy does not: the Motion JPEG is kept as .avi, with one line."""
    monkeypatch.setattr(recorder, "room_left", lambda path: 0 if ".encoding" in path.name else math.inf)
    logs: list[str] = []
    rec = _record(tmp_path / "out.webm", 40, logs)
    kept = [m for m in logs if "no room to encode" in m]
    assert len(kept) == 1 and rec.path == tmp_path / "out.avi" and rec.error == kept[0], logs
    assert _frames_in(tmp_path / "out.avi") == rec.frames == 40
    assert [p.name for p in tmp_path.iterdir()] == ["out.avi"]
