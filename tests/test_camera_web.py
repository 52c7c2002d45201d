"""`cmlite camera --serve`: the page, the MJPEG stream to two viewers at once, /stats.json, and the page as a real
browser (headless Chromium) shows it. The app runs in a thread on an ephemeral loopback port."""
from __future__ import annotations

import json
import re
import subprocess
import threading
import urllib.request

import cv2
import numpy as np
import pytest

import runtimes
from apps.camera import CameraOptions, run_camera
from apps.sources import open_source
from tests.system_tools import need


@pytest.fixture(scope="module")
def app(default_onnx):
    logs: list[str] = []
    opts = CameraOptions(window=False, serve="127.0.0.1:0", seconds=300, log=logs.append)
    result = {}
    thread = threading.Thread(target=lambda: result.update(run_camera(
        runtimes.load(default_onnx, threads=2), open_source("synth"), opts, threads=2)), daemon=True)
    thread.start()
    for _ in range(600):
        url = next((m.split()[1] for m in logs if m.startswith("serving ")), None)
        if url or not thread.is_alive():
            break
        threading.Event().wait(0.05)
    assert url and url.startswith("http://127.0.0.1:"), logs
    yield url, result
    opts.stop.set()
    thread.join(30)
    assert not thread.is_alive() and result["stopped_by"] == "stopped"


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read()


def _stats(url: str) -> dict:
    return json.loads(_get(url + "stats.json"))


def _mjpeg_frames(url: str, n: int, out: list) -> None:
    """Read n parts of the multipart stream and decode them."""
    with urllib.request.urlopen(url + "stream.mjpg", timeout=60) as r:
        assert r.headers["Content-Type"].startswith("multipart/x-mixed-replace; boundary=")
        while len(out) < n:
            line = r.readline()
            if not line.startswith(b"Content-Length:"):
                continue
            size = int(line.split(b":")[1])
            r.readline()  # the blank line
            out.append(cv2.imdecode(np.frombuffer(r.read(size), np.uint8), cv2.IMREAD_COLOR))


def test_page_stream_to_two_viewers_and_stats(app):
    url, _ = app
    page = _get(url).decode()
    assert '<img id="live" src="/stream.mjpg"' in page and "/stats.json" in page
    a, b = [], []
    ta = threading.Thread(target=_mjpeg_frames, args=(url, 2, a))
    tb = threading.Thread(target=_mjpeg_frames, args=(url, 5, b))
    ta.start(), tb.start()
    ta.join(120), tb.join(120)
    assert len(a) == 2 and len(b) == 5  # viewer a left after 2 frames; b went on
    for f in a + b:
        assert f is not None and f.shape == (480, 640, 3)
    assert not np.array_equal(b[0], b[-1])  # live: the frames change
    before = _stats(url)
    c = []
    _mjpeg_frames(url, 2, c)  # the app still serves after a viewer disconnected
    after = _stats(url)
    assert after["frames"] > before["frames"] >= 5
    for k in ("fps", "fps_now", "latency_ms", "stages_ms", "backend", "precision", "device", "cpu", "input",
              "dropped", "source", "viewers"):
        assert k in after
    assert after["backend"] == "onnx" and after["source"] == "synth 640x480@30fps" and after["fps"] > 0
    assert set(after["stages_ms"]) >= {"preprocess", "graph1", "host", "graph2", "paste", "draw"}
    snap = cv2.imdecode(np.frombuffer(_get(url + "snapshot.jpg"), np.uint8), cv2.IMREAD_COLOR)
    assert snap.shape == (480, 640, 3)
    with pytest.raises(urllib.error.HTTPError, match="404"):
        _get(url + "nothing")


def test_browser_shows_the_live_picture_and_stats(app, tmp_path):
    chromium = need("chromium", "chromium")
    url, _ = app
    flags = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--no-first-run", "--window-size=1280,800", "--virtual-time-budget=4000"]
    shot = tmp_path / "page.png"
    subprocess.run(flags + [f"--screenshot={shot}", url], capture_output=True, timeout=120, check=True)
    dom = subprocess.run(flags + ["--dump-dom", url], capture_output=True, text=True, timeout=120, check=True).stdout
    img = cv2.imread(str(shot))
    assert img.shape[:2] == (800, 1280)
    # the 640x480 stream scaled to the window's width beside the 300-px stats (before: drawn at 640x480, a big
    # empty gap to its right): it spans past x=900 and down past y=650
    picture = img[8:650, 8:900].astype(float)
    assert picture.std() > 20 and np.abs(picture.mean(axis=(0, 1)) - 17).max() > 20  # a picture, not the page
    page = np.abs(img.astype(float) - 17).max(axis=2) > 12  # not the page's background (#111)
    cols = np.flatnonzero(page[300, :960])
    assert cols.max() > 900 and (page[8:700, 20:900].mean()) > 0.9
    panel = img[14:50, 14:400]  # the overlay's first line, scaled: green text on the shaded panel
    green = (panel[..., 1] > 180) & (panel[..., 0] < 150) & (panel[..., 2] < 150)
    assert green.sum() > 20
    # the live stats panel is filled in by the page's script from /stats.json
    assert re.search(r'<span class="fps" id="fps">\d+\.\d</span>', dom), dom[:2000]
    assert re.search(r"<td>graph 1 ms</td><td class=\"v\">\d+\.\d</td>", dom)
    assert "<td>backend</td><td class=\"v\">onnx</td>" in dom
    assert re.search(r"<td>mode</td><td class=\"v\">(sequential|overlap)</td>", dom)


def test_stream_source_that_goes_down_is_reopened(default_onnx):
    """One app reads another's MJPEG stream (a real http:// source through OpenCV's FFmpeg); the serving app is
    stopped (SIGTERM) and started again on the same port: the reader says so, reopens it and goes on."""
    import signal
    import socket
    import sys
    import time

    from tests.conftest import REPO

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/"

    def serve_app():
        return subprocess.Popen([sys.executable, "-m", "apps.cli", "camera", "--source", "synth:320x240@15",
                                 "--model", str(default_onnx), "--headless", "--serve", f"127.0.0.1:{port}",
                                 "--seconds", "120", "--threads", "1"], cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)

    def wait_for(cond, seconds=60.0):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                if cond():
                    return True
            except OSError:
                pass
            time.sleep(0.2)
        return False

    first = serve_app()
    second = None
    try:
        assert wait_for(lambda: _stats(url)["frames"] > 0)
        logs: list[str] = []
        opts = CameraOptions(window=False, log=logs.append)
        result = {}
        reader = threading.Thread(target=lambda: result.update(run_camera(
            runtimes.load(default_onnx, threads=1), open_source(url + "stream.mjpg"), opts, threads=1)))
        reader.start()
        assert wait_for(lambda: _stats(url)["viewers"] == 1)
        time.sleep(1.5)
        first.send_signal(signal.SIGTERM)
        assert first.wait(30) == 0  # SIGTERM stops the app cleanly
        assert wait_for(lambda: any("lost: reopening" in m for m in logs), 30), logs
        second = serve_app()
        assert wait_for(lambda: any("reopened after" in m for m in logs), 90), logs
        assert wait_for(lambda: _stats(url)["viewers"] == 1)
        time.sleep(1.5)
        opts.stop.set()
        reader.join(60)
        assert result["reopens"] >= 1 and result["frames"] > 0 and result["source"].startswith("stream http://")
    finally:
        for p in (first, second):
            if p is not None and p.poll() is None:
                p.kill()
