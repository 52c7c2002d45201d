"""`cmlite camera --source A --source B ...` (apps/camera/streams.py): several streams through one model. Files lose
no frame and each is overlaid exactly as alone; a live source that fails is reopened while the others go on;
recordings and stats per stream and in total; the tiled page's routes and their token. Real ONNX Runtime inference
of the embedded default model, real clips, real HTTP."""
from __future__ import annotations

import json
import re
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest

from cmlite import runtimes
from cmlite.apps.camera.loop import CameraOptions
from cmlite.apps.camera.streams import record_path, run_streams
from cmlite.apps.cli import main
from cmlite.apps.camera.sources import open_source
from cmlite.calibration.synth_scene import write_clip
from tests.test_camera import FlakyCamera, _read_all


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Two clips of different scenes and lengths (10 and 14 frames)."""
    d = tmp_path_factory.mktemp("clips")
    return [write_clip(d / "a.avi", 10, fps=10.0, seed=3), write_clip(d / "b.avi", 14, fps=10.0, seed=4)]


def test_record_names_per_stream():
    assert record_path("out/run.webm", 2) == "out/run-2.webm"
    assert record_path("cam{i}/x.avi", 1) == "cam1/x.avi"


@pytest.mark.parametrize("mode", ["sequential", "throughput"])
def test_files_lose_no_frame_and_each_stream_is_its_own(tmp_path, default_onnx, clips, mode):
    """Every frame of both clips, each recording the clip's own frames overlaid (the frames of the other stream
    never leak in), per-stream and total stats that add up."""
    stats = tmp_path / "s.json"
    assert main(["camera", "--model", str(default_onnx), "--source", str(clips[0]), "--source", str(clips[1]),
                 "--headless", "--mode", mode, "--threads", "2", "--record", str(tmp_path / "rec.avi"),
                 "--stats", str(stats)]) == 0
    s = json.loads(stats.read_text())
    assert [t["frames"] for t in s["streams"]] == [10, 14] and s["total"]["frames"] == 24
    assert s["stopped_by"] == "every source ended" and all(t["source_ended"] for t in s["streams"])
    assert s["total"]["streams"] == 2 and s["total"]["fps_total"] > 0
    assert 0 < s["total"]["latency_ms"]["p50"] <= s["total"]["latency_ms"]["p99"]
    for i, clip in enumerate(clips):
        recorded, raw = _read_all(tmp_path / f"rec-{i}.avi"), _read_all(clip)
        assert len(recorded) == len(raw)
        # the overlay changes pixels, the scene stays: each recording is its own clip's
        own, other = (np.mean([np.abs(r.astype(int) - f.astype(int)).mean() for r, f in zip(recorded, frames)])
                      for frames in (raw, _read_all(clips[1 - i])))
        assert own < other / 2


def test_a_failing_live_source_is_reopened_while_the_others_go_on(default_onnx, clips):
    logs: list[str] = []
    flaky = FlakyCamera(fail_at=4, refuse=1)
    seg = runtimes.load(default_onnx, threads=2)
    s = run_streams(seg, [flaky, open_source(str(clips[0]))],
                    CameraOptions(window=False, frames=8, mode="sequential", log=logs.append), threads=2)
    assert [t["frames"] for t in s["streams"]] == [8, 8]
    assert s["streams"][0]["reopens"] == 1 and s["total"]["reopens"] == 1
    assert any("reopened after 2 attempts" in m for m in logs)
    assert s["total"]["slowest_of_mean"] > 0


def _get(url: str, token: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"X-Cmlite-Token": token} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read(3000) if "mjpg" in url else r.read()
    except urllib.error.HTTPError as e:
        return e.code, b""


def test_the_tiled_page_routes_and_token(default_onnx):
    """Off loopback every stream's route needs the token; the page tiles the streams; stats per stream."""
    logs: list[str] = []
    opts = CameraOptions(window=False, serve="0.0.0.0:0", token="s3cret-token", mode="sequential",
                         seconds=30, log=logs.append)
    seg = runtimes.load(default_onnx, threads=2)
    sources = [open_source("synth:320x240@10"), open_source("synth:320x240@5")]
    result = {}
    t = threading.Thread(target=lambda: result.update(run_streams(seg, sources, opts, threads=2)))
    t.start()
    try:
        line = None
        for _ in range(100):
            line = next((m for m in logs if m.startswith("one picture per stream")), None)
            if line:
                break
            threading.Event().wait(0.1)
        assert line, logs
        base = "http://127.0.0.1:" + re.search(r":(\d+)/stream/0\.mjpg", line).group(1)
        assert _get(f"{base}/stream/1.mjpg")[0] == 401
        assert _get(f"{base}/stream/1.mjpg", "wrong-token")[0] == 403
        assert _get(f"{base}/stream/2.mjpg", "s3cret-token")[0] == 404  # two streams: 0 and 1
        status, page = _get(f"{base}/", "s3cret-token")
        assert status == 200 and b"2 streams" in page and b"/stream/${i}.mjpg" in page
        for _ in range(100):
            status, body = _get(f"{base}/snapshot/1.jpg", "s3cret-token")
            if status == 200:
                break
            threading.Event().wait(0.1)
        assert status == 200 and body[:2] == b"\xff\xd8"
        status, body = _get(f"{base}/stream/1.mjpg", "s3cret-token")
        assert status == 200 and b"--cmliteframe" in body
        stats = json.loads(_get(f"{base}/stats.json", "s3cret-token")[1])
        assert [s["source"] for s in stats["streams"]] == ["synth 320x240@10fps", "synth 320x240@5fps"]
    finally:
        opts.stop.set()
        t.join(30)
    assert result["total"]["streams"] == 2 and result["stopped_by"] == "stopped"


def test_the_window_grid_tiles_the_streams_in_order():
    """Three 480x640 streams: a 2x2 grid at most GRID_WIDTH wide, each tile its stream's picture, the fourth black."""
    from cmlite.apps.camera.streams import GRID_WIDTH, _grid

    tiles = [np.full((480, 640, 3), v, np.uint8) for v in (50, 120, 200)]
    g = _grid(tiles, (480, 640))
    assert g.shape == (960, 1280, 3) and g.shape[1] <= GRID_WIDTH
    assert g[10, 10, 0] == 50 and g[10, 700, 0] == 120 and g[500, 10, 0] == 200 and g[500, 700, 0] == 0
    assert _grid([tiles[0], None], (480, 640))[:, 640:].max() == 0  # a stream with no picture yet: black


def test_the_grids_keys_act_on_every_stream(tmp_path, tiny_models):
    """Before: with several --source the window offered pause, snapshot, masks and panel keys that did nothing.
    Each now acts on every stream; q ends the run."""
    from cmlite.apps.camera.loop import CameraRun
    from cmlite.apps.camera.streams import apply_key

    seg = runtimes.load(tiny_models["onnx-int8"], threads=1)
    logs: list[str] = []
    opts = CameraOptions(window=False, snapshot_dir=str(tmp_path), log=logs.append)
    cams = [CameraRun(seg, open_source(spec), opts, 1) for spec in ("synth:160x120@10", "synth:160x120@10#1")]
    for i, cam in enumerate(cams):
        cam.state.last = np.full((120, 160, 3), 40 * (i + 1), np.uint8)
    assert apply_key(cams, "pause", opts) is None and all(c.state.paused for c in cams)
    assert apply_key(cams, "pause", opts) is None and not any(c.state.paused for c in cams)
    apply_key(cams, "masks", opts)
    apply_key(cams, "panel", opts)
    assert not any(c.state.masks or c.state.panel for c in cams)
    apply_key(cams, "snapshot", opts)
    shots = sorted(tmp_path.glob("cmlite-*.png"))
    assert [p.name.split("-")[3] for p in shots] == ["s0", "s1"] and len(logs) == 2
    assert apply_key(cams, "quit", opts) == "quit key"
    for cam in cams:
        cam.source.close()
