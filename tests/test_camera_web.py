"""`cmlite camera --serve`: the page, the MJPEG stream to two viewers at once, /stats.json, and the page as a real
browser (headless Chromium) shows it. The app runs in a thread on an ephemeral loopback port."""
from __future__ import annotations

import json
import re
import subprocess
import threading
import time
import urllib.request

import cv2
import numpy as np
import pytest

from cmlite import runtimes
from cmlite.apps.camera.loop import CameraOptions, run_camera
from cmlite.apps.camera.sources import open_source
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
    assert '<img id="live"' in page and '"/stream.mjpg" + q' in page and '"/stats.json" + q' in page
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
    for k in ("fps", "fps_mean", "latency_ms", "stages_ms", "backend", "precision", "device", "cpu", "input",
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
    assert re.search(r"<td>mode</td><td class=\"v\">(sequential|overlap|throughput)( \(auto[^<]*\))?</td>", dom)


def _wait_for(cond, seconds: float = 60.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if cond():
                return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


class _MjpegServer:
    """A real MJPEG server on a fixed loopback port (web.py's, fed synthetic frames at 30 fps) that the test stops
    and starts again: what a network camera that reboots looks like to the app."""

    def __init__(self, port: int):
        from cmlite.apps.camera.sources import SynthSource
        from cmlite.apps.camera.web import StatsServer

        self.server = StatsServer(("127.0.0.1", port), dict).start()
        self.source, self.stop_event = SynthSource(width=320, height=240), threading.Event()
        self.thread = threading.Thread(target=self._feed, daemon=True)
        self.thread.start()

    def _feed(self):
        while not self.stop_event.wait(1 / 30):
            self.server.frames.publish(self.source.read()[1])

    def stop(self):
        self.stop_event.set()
        self.thread.join(5)
        self.server.stop()


@pytest.mark.slow
def test_stream_source_that_dies_and_comes_back_10_times_is_reopened_every_time(default_onnx):
    """An app reads a real http:// MJPEG stream through OpenCV's FFmpeg; the server goes away and comes back on
    the same port 10 times (down for 0 to 1.5 s). Each time the app says it lost the stream, shows the banner to
    its own viewers, reopens it, takes frames again, and never stops."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    upstream = _MjpegServer(port)
    logs: list[str] = []
    opts = CameraOptions(window=False, serve="127.0.0.1:0", log=lambda m: logs.append(f"{time.monotonic():.2f} {m}"))
    result = {}
    reader = threading.Thread(target=lambda: result.update(run_camera(
        runtimes.load(default_onnx, threads=1), open_source(f"http://127.0.0.1:{port}/stream.mjpg"), opts,
        threads=1)), daemon=True)
    reader.start()
    try:
        assert _wait_for(lambda: any(" serving " in m for m in logs))
        own = next(m.split()[2] for m in logs if " serving " in m)  # the reading app's own page
        assert _wait_for(lambda: _stats(own)["frames"] >= 3), logs
        for cycle in range(10):
            upstream.stop()
            assert _wait_for(lambda: sum("lost: reopening" in m for m in logs) > cycle, 30), (cycle, logs)
            if cycle == 0:  # what a viewer of the app sees meanwhile: the last picture with a red banner
                def banner() -> bool:
                    snap = cv2.imdecode(np.frombuffer(_get(own + "snapshot.jpg"), np.uint8), cv2.IMREAD_COLOR)
                    strip = np.median(snap[-8:].reshape(-1, 3), axis=0)  # BGR: red, under white text
                    return strip[2] > 120 and strip[2] > 1.5 * max(strip[0], strip[1])

                assert _wait_for(lambda: "lost: reopening" in _stats(own)["status"], 10)
                assert _wait_for(banner, 10)
            time.sleep(0.15 * cycle)  # down for a while: some reopen attempts fail and back off
            upstream = _MjpegServer(port)
            assert _wait_for(lambda: sum("reopened after" in m for m in logs) > cycle, 60), (cycle, logs)
            before = _stats(own)["frames"]
            assert _wait_for(lambda: _stats(own)["frames"] > before + 2, 60), cycle  # new frames come in
            assert _stats(own)["status"] == "", logs  # and the banner went with the outage
            assert reader.is_alive()
    finally:
        opts.stop.set()
        reader.join(60)
        upstream.stop()
    assert result["reopens"] == 10 and result["stopped_by"] == "stopped", result
    assert result["captured"] == result["taken"] + result["dropped"] + result["pending"]
