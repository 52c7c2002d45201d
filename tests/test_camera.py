"""`cmlite camera`, headless: synth and video sources through the real app with the embedded default model
converted to ONNX Runtime, the recording and the stats it writes, a live source that fails and is reopened,
and bad input. The web page, the browser and the window have their own files (test_camera_web, _window)."""
from __future__ import annotations

import json
import socket
import time

import cv2
import numpy as np
import pytest

from cmlite import runtimes
from cmlite.apps.camera.loop import CameraOptions, run_camera
from cmlite.apps.cli import main
from cmlite.apps.camera.sources import Source, open_source
from cmlite.calibration.synth_scene import MovingScene, write_clip
from cmlite.runtimes.errors import CmliteError
from cmlite.runtimes.modes.auto import MAX_ROUNDS
from tests.conftest import run_torch_free

PANEL = (slice(4, 30), slice(4, 200))  # inside the panel's first line at 640x480


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """16 frames of the moving scene as an MJPG .avi, and the frames as OpenCV decodes them from it."""
    path = write_clip(tmp_path_factory.mktemp("video") / "scene.avi", 16, fps=10.0, seed=3)
    return path, _read_all(path)


def _read_all(path) -> list[np.ndarray]:
    cap, frames = cv2.VideoCapture(str(path)), []
    while True:
        ok, f = cap.read()
        if not ok:
            return frames
        frames.append(f)


def _stats(path) -> dict:
    return json.loads(path.read_text())


def _check_adds_up(s: dict, frames: int) -> None:
    assert s["frames"] == frames
    assert s["captured"] == s["taken"] + s["dropped"] + s["pending"]
    assert frames <= s["taken"] <= frames + 2  # at most two frames in flight (overlapped)
    lat, st = s["latency_ms"], s["stages_ms_p50"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"]
    assert set(st) == {"preprocess", "graph1", "host", "graph2", "paste", "draw", "output"}
    assert lat["p50"] >= st["graph1"] + st["preprocess"]  # the latency spans the stages
    assert 0 < s["fps_mean"] <= frames / (s["seconds"] * 0.5)
    assert s["backend"] == "onnx" and s["precision"] == "fp32" and "onnxruntime" in s["device"]
    assert s["cpu"] and s["input"] == "320x448"


def test_synth_records_and_writes_stats(tmp_path, default_onnx, capsys):
    rec, stats = tmp_path / "synth.webm", tmp_path / "stats.json"
    assert main(["camera", "--source", "synth", "--model", str(default_onnx), "--headless", "--frames", "12",
                 "--record", str(rec), "--stats", str(stats), "--threads", "2"]) == 0
    s = _stats(stats)
    _check_adds_up(s, 12)
    assert s["source"] == "synth 640x480@30fps" and not s["source_ended"] and s["recorded_frames"] == 12
    assert s["resize"] == "exact"  # the official filter unless --fast-resize
    cpu = s["stages_cpu_ms_p50"]  # the CPU of cmlite's own work, per stage and per frame, capture included
    assert set(cpu) >= {"preprocess", "host", "paste", "draw", "output"} and all(v >= 0 for v in cpu.values())
    host = s["host_cpu_ms_per_frame"]
    assert host["total"] == pytest.approx(host["stages_p50"] + host["capture"], abs=0.01) and host["capture"] > 0
    assert s["dropped"] > 0  # a 30 fps virtual camera outruns the model on this CPU: the newest frame is kept
    frames = _read_all(rec)
    assert len(frames) == 12 and frames[0].shape == (480, 640, 3)
    for f in frames:  # the status panel darkens the top left and writes in it
        panel, below = f[PANEL].astype(float), f[200:300, 4:200].astype(float)
        assert panel.mean() < 0.7 * below.mean()
        assert (panel.max(axis=2) > 200).sum() > 50  # the text
    assert "12 frames in" in capsys.readouterr().out
    assert not list(tmp_path.glob(".*partial*"))


@pytest.mark.parametrize("mode", ["sequential", "overlap", "auto"])
def test_video_every_frame_overlaid(tmp_path, default_onnx, video, mode):
    path, inputs = video
    rec, stats = tmp_path / "out.avi", tmp_path / "stats.json"
    argv = ["camera", "--source", str(path), "--model", str(default_onnx), "--headless", "--record", str(rec),
            "--stats", str(stats), "--threads", "2", "--mode", mode]
    assert main(argv) == 0
    s = _stats(stats)
    _check_adds_up(s, len(inputs))
    assert s["source_ended"] and s["dropped"] == 0 and s["mode"].startswith(mode)
    out = _read_all(rec)
    assert len(out) == len(inputs) == 16
    seg = runtimes.load(default_onnx, threads=2)
    shown = 0
    for src, got in zip(inputs, out):  # frame k of the recording is input frame k with the overlay
        diff = np.abs(got.astype(np.int16) - src.astype(np.int16)).max(axis=2)
        assert diff[PANEL].mean() > 30
        inst = seg.predict(src)
        keep = inst.scores >= 0.5
        drawn = np.zeros(src.shape[:2], bool)
        drawn[:140, :] = True  # the panel
        for x1, y1, x2, y2 in inst.boxes[keep].astype(int):
            drawn[max(y1 - 30, 0):y2 + 30, max(x1 - 10, 0):x2 + 160] = True  # box, outline and label
        assert np.median(diff[~drawn]) <= 3  # elsewhere only the codec's noise
        masks = inst.masks[keep]
        if len(masks):
            inside = masks.any(axis=0)
            inside[:140] = False
            if inside.sum() > 200:
                assert diff[inside].mean() > 12  # translucent masks
                shown += 1
    assert shown >= 4


class FlakyCamera(Source):
    """A live source that stops after `fail_at` frames (a camera unplugged) and whose first `refuse` reopen
    attempts fail; its frames are the real moving scene."""
    kind, live, fps = "flaky camera", True, 30.0

    def __init__(self, fail_at: int, refuse: int):
        super().__init__("flaky")
        self.scene, self.fail_at, self.refuse = MovingScene(640, 480, seed=1), fail_at, refuse
        self.reads, self.attempts, self.broken = 0, 0, False

    def read(self):
        if self.broken:
            return False, None
        self.reads += 1
        if self.reads == self.fail_at:
            self.broken = True
            return False, None
        time.sleep(1 / self.fps)
        return True, self.scene.render(self.reads / self.fps)

    def reopen(self):
        self.attempts += 1
        if self.attempts <= self.refuse:
            raise CmliteError("still unplugged")
        self.broken = False


def test_live_source_that_fails_is_reopened(tmp_path, default_onnx):
    logs: list[str] = []
    src = FlakyCamera(fail_at=4, refuse=1)
    rec = tmp_path / "flaky.webm"
    s = run_camera(runtimes.load(default_onnx, threads=2), src,
                   CameraOptions(window=False, frames=8, record=str(rec), log=logs.append), threads=2)
    assert s["frames"] == 8 and s["reopens"] == 1 and src.attempts == 2 and not s["source_ended"]
    assert any("flaky camera flaky lost: reopening (attempt 1" in m for m in logs)
    assert any("attempt 2" in m for m in logs) and any("reopened after 2 attempts" in m for m in logs)
    assert len(_read_all(rec)) == 8  # frames repeated while the source was lost are not recorded


def test_loop_replays_a_file(tmp_path, default_onnx, video):
    stats = tmp_path / "s.json"
    assert main(["camera", "--source", str(video[0]), "--model", str(default_onnx), "--headless", "--loop",
                 "--frames", "20", "--stats", str(stats)]) == 0
    s = _stats(stats)
    assert s["frames"] == 20 and not s["source_ended"] and s["stopped_by"] == "20 frames"


def test_stopping_a_file_capture_counts_every_frame_it_read(video):
    """Stopped while a frame waits and the reader holds the next one: that one was not captured (before, it
    replaced the waiting frame, and captured ran one ahead of taken + dropped + pending)."""
    from cmlite.apps.camera.capture import Capture

    cap = Capture(open_source(str(video[0]))).start()
    for _ in range(3):
        assert cap.get(timeout=10) is not None
    deadline = time.monotonic() + 10
    while not cap.pending and time.monotonic() < deadline:  # the next frame waits; the reader holds one more
        time.sleep(0.01)
    time.sleep(0.3)
    cap.stop()
    assert (cap.taken, cap.pending, cap.dropped) == (3, 1, 0)
    assert cap.captured == cap.taken + cap.dropped + cap.pending


def test_folder_in_natural_order(tmp_path, video):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in (10, 2, 1):
        cv2.imwrite(str(folder / f"f{i}.png"), video[1][i])
    (folder / "f3.png").write_bytes(b"not a png")
    src = open_source(str(folder))
    got = []
    while (r := src.read())[0]:
        got.append(r[1])
    assert len(got) == 3 and src.skipped == [str(folder / "f3.png")]
    assert all(np.array_equal(g, video[1][i]) for g, i in zip(got, (1, 2, 10)))


def test_synth_source_paces_like_a_camera():
    src = open_source("synth:320x240@20#5")
    t0 = time.monotonic()
    frames = [src.read()[1] for _ in range(6)]
    assert time.monotonic() - t0 >= 5 / 20 * 0.9
    assert frames[0].shape == (240, 320, 3) and not np.array_equal(frames[0], frames[5])  # it moves


def test_runs_without_torch(default_onnx, tmp_path):
    stats = tmp_path / "s.json"
    r = run_torch_free(f"""
        from cmlite.apps.cli import main
        assert main(["camera", "--source", "synth:320x240", "--model", r"{default_onnx}", "--headless",
                     "--frames", "3",
                     "--stats", r"{stats}"]) == 0
        """)
    assert r.returncode == 0, r.stderr
    assert _stats(stats)["frames"] == 3


@pytest.mark.parametrize("argv, message", [
    (["--source", "7"], "camera 7 cannot be opened: it is absent, or busy"),
    (["--source", "/dev/video9"], "camera /dev/video9 does not exist"),
    (["--source", "http://127.0.0.1:9/live.mjpg"], "refused or closed the connection"),
    (["--source", "rtsp://127.0.0.1:1/x"], "refused or closed the connection (after 0."),  # not "waited 5 s"
    (["--source", "synth", "--token", "a-long-secret", "--headless"], "--token is for --serve"),
    (["--source", "synth", "--no-token", "--headless"], "--no-token is for --serve"),
    (["--source", "{notvideo}"], "is not a video OpenCV can read"),
    (["--source", "{missing}"], "not found: give a camera index"),
    (["--source", "{image}"], "is a single image"),
    (["--source", "synth:10x10"], "bad synth source"),
    (["--source", "synth@fast"], "bad synth source"),
    (["--source", "synth", "--frames", "0"], "--frames 0: give a positive number"),
    (["--source", "synth", "--threads", "0"], "--threads 0: give at least 1"),
    (["--source", "synth", "--serve", "localhost:http"], "expected HOST:PORT"),
    (["--source", "synth", "--record", "{tmp}/out.gif", "--headless"], "use a .webm (plays in browsers), .mp4"),
    (["--source", "synth", "--record", "{tmp}/out.txt", "--headless"], "use a .webm (plays in browsers), .mp4"),
    (["--source", "synth", "--serve", "{busy}", "--headless"], "the port is in use"),
    (["--source", "synth", "--record", "/proc/nope/x.webm", "--headless"],
     "folder /proc/nope does not exist and cannot be made: cannot write in /proc"),
    (["--source", "synth", "--model", "{tmp}"], "manifest"),
    (["--source", "synth", "--frames", "2"], "this OpenCV has no GUI"),
])
def test_bad_input_one_line_exit_2(argv, message, tmp_path, capsys, default_onnx):
    (tmp_path / "notvideo.mp4").write_text("hello")
    cv2.imwrite(str(tmp_path / "one.png"), np.zeros((8, 8, 3), np.uint8))
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    subst = {"notvideo": tmp_path / "notvideo.mp4", "missing": tmp_path / "nope.mp4", "image": tmp_path / "one.png",
             "tmp": tmp_path, "busy": busy.getsockname()[1]}
    argv = [a.format(**subst) for a in argv]
    if "--model" not in argv:
        argv += ["--model", str(default_onnx)]
    with busy:
        assert main(["camera", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and err[-1].startswith("cmlite: error: ")
    assert not any(line.startswith("[") and " @ 0x" in line for line in err), err  # no raw FFmpeg line
    if "--record" in argv or "--serve" in argv:  # outputs are checked before the model loads (its line never came)
        assert len(err) == 1, err


def test_ctrl_c_stops_cleanly(tmp_path, default_onnx):
    """SIGINT mid-run: exit 0, the recording finished and renamed, the stats written."""
    import signal
    import subprocess
    import sys

    from tests.conftest import REPO

    rec, stats = tmp_path / "run.webm", tmp_path / "s.json"
    proc = subprocess.Popen([sys.executable, "-m", "cmlite.apps.cli", "camera", "--source", "synth", "--model",
                             str(default_onnx), "--headless", "--record", str(rec), "--stats", str(stats)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not rec.exists():  # wait for frames: the recorder opens its file
        if list(tmp_path.glob(".run.partial.avi")):  # Motion JPEG while running; VP8 at the end
            time.sleep(1.0)
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    s = _stats(stats)
    assert s["stopped_by"] == "interrupted" and s["frames"] > 0
    assert len(_read_all(rec)) == s["recorded_frames"] == s["frames"]
    assert not list(tmp_path.glob(".*partial*"))


def test_recordings_play_in_browsers(tmp_path, default_onnx, video):
    """Before: MPEG-4 part 2 (FMP4), which browsers do not play. .webm is VP8; a .mp4 without an H.264 encoder in
    this OpenCV goes to a .webm of the same name, saying so; --record-codec fast keeps the old codec."""
    from cmlite.apps.camera.recorder import has_encoder

    path, inputs = video
    logs: list[str] = []
    opts = CameraOptions(window=False, record=str(tmp_path / "seg.mp4"), log=logs.append)
    s = run_camera(runtimes.load(default_onnx, threads=2), open_source(str(path)), opts, threads=2)
    want = tmp_path / ("seg.mp4" if has_encoder("avc1", ".mp4") else "seg.webm")
    assert s["recording"] == str(want) and s["recorded_frames"] == len(inputs) == len(_read_all(want))
    fourcc = int(cv2.VideoCapture(str(want)).get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode().lower()
    assert fourcc in ("vp80", "avc1", "h264"), fourcc
    if want.suffix == ".webm":
        assert any("no H.264 encoder" in m and "seg.webm" in m for m in logs), logs
    assert not list(tmp_path.glob(".*partial*")) and not list(tmp_path.glob(".*encoding*"))
    fast = CameraOptions(window=False, record=str(tmp_path / "fast.mp4"), record_codec="fast")
    run_camera(runtimes.load(default_onnx, threads=2), open_source(str(path)), fast, threads=2)
    fourcc = int(cv2.VideoCapture(str(tmp_path / "fast.mp4")).get(cv2.CAP_PROP_FOURCC))
    assert fourcc.to_bytes(4, "little").decode().lower() in ("mp4v", "fmp4")


@pytest.mark.parametrize("corner", ["top-left", "bottom-right", "off"])
def test_the_panel_is_compact_translucent_and_movable(tmp_path, default_onnx, video, corner):
    """Before: five lines at 35% brightness over the top left, on top of the labels there."""
    path, inputs = video
    rec = tmp_path / "out.avi"
    opts = CameraOptions(window=False, record=str(rec), panel=corner, frames=4)
    run_camera(runtimes.load(default_onnx, threads=2), open_source(str(path)), opts, threads=2)
    out = _read_all(rec)
    h, w = out[0].shape[:2]
    regions = {"top-left": (slice(0, 60), slice(0, 330)), "bottom-right": (slice(h - 60, h), slice(w - 330, w))}
    for src, got in zip(inputs, out):
        for where, region in regions.items():
            ratio = got[region].astype(float).mean() / max(src[region].astype(float).mean(), 1)
            if where == corner:  # shaded to half, text on it, and the picture still shows through
                assert 0.35 < ratio < 0.8 and (got[region].max(axis=2) > 200).sum() > 50
                assert np.corrcoef(got[region][..., 1].ravel(), src[region][..., 1].ravel())[0, 1] > 0.2
            else:
                assert ratio > 0.85, (where, ratio)
    below = (slice(70, 480), slice(0, 640)) if corner == "top-left" else (slice(0, 400), slice(0, 640))
    assert (out[0][below].astype(float).mean() / inputs[0][below].astype(float).mean()) > 0.85


def test_labels_stay_out_of_the_panel():
    from cmlite.apps.camera.overlay import panel_rect
    from cmlite.apps.visualize import place_labels

    rect = panel_rect((480, 640, 3), ["60.0 fps (now 60.0)  latency 18 ms", "pre 2.2 g1 7.4 host 1.7 g2 2.3 ms",
                                      "onnx int8 320x448  2 threads  overlap  frame 10  dropped 0"])
    assert rect[:2] == (0, 0) and rect[3] < 70 and rect[2] < 400  # three lines, compact
    boxes = np.array([[5, 10, 120, 150], [300, 200, 400, 300]], np.float32)  # the first one under the panel
    spots = place_labels(boxes, [(80, 14), (80, 14)], (480, 640), [rect])
    x1, y1, x2, y2 = spots[0]
    assert y1 >= rect[3] or x1 >= rect[2]  # moved out from under it, still on its box's edge
    assert spots[1][:2] == (300, 186)  # elsewhere: where it always goes


def test_frame_stats_keep_the_last_frames_in_fixed_memory():
    """The percentiles cover the last `keep` frames, the mean fps the whole run; the arrays never grow."""
    from cmlite.apps.camera.frame_stats import FrameStats

    st = FrameStats(keep=5)
    for i in range(12):  # a frame every 0.1 s, latency i ms
        st.add(t_capture=i * 0.1 - i / 1e3, t_display=i * 0.1, timings={"graph1": float(i)})
    s = st.summary()
    assert s["frames"] == 12 and s["fps_mean"] == pytest.approx(10.0, rel=1e-3)
    assert s["latency_ms"]["p50"] == pytest.approx(9.0, abs=1e-3)  # the median of 7..11
    assert s["stages_ms_p50"]["graph1"] == 9.0
    assert list(st.latency_ms.values().round(3)) == [7, 8, 9, 10, 11]
    live = st.live(now=1.15)
    assert live["latency_ms"] == 11.0 and live["fps"] == pytest.approx(10.0, rel=1e-3) == live["fps_mean"]
    assert st.live(now=2.2)["fps"] == 0.0  # a whole second without a frame: stalled, not the old rate
    assert s["fps_per_second"] is None  # the 5 frames kept span less than a second


def test_a_webm_recording_prints_no_ffmpeg_tag_line(tmp_path, capfd):
    """Before: every .webm printed `OpenCV: FFMPEG: tag 0x30385056/'VP80' is not supported with codec id 139 ...`,
    which reads as an error though the file is fine."""
    from cmlite.apps.camera.recorder import Recorder

    rec = Recorder(tmp_path / "clip.webm", fps=10, log=lambda m: None)
    for i in range(5):
        rec.write(np.full((48, 64, 3), 40 * i, np.uint8))
    rec.close()
    err = capfd.readouterr().err
    assert rec.path.suffix == ".webm" and rec.path.stat().st_size > 0 and rec.frames == 5
    assert "FFMPEG" not in err and "VP80" not in err, err


def test_the_panel_on_the_first_frame_has_no_dashes():
    """Before: the clip's first frame showed "- fps (now -) latency - ms"."""
    from cmlite.apps.camera.overlay import panel_lines

    live = {"fps": None, "fps_mean": None, "latency_ms": 36.2, "stages_ms": {}, "backend": "onnx", "precision": "int8",
            "input": "320x448", "threads": 2, "frames": 1, "dropped": 0}
    first = panel_lines(live)[0]
    assert first == "first frame  latency 36 ms"
    assert panel_lines(live | {"fps": 29.5, "fps_mean": 30.0})[0] == "29.5 fps (mean 30.0)  latency 36 ms"


@pytest.mark.slow  # three runs of auto's trials (the rule and the memory are in the fast tier: test_rate.py)
def test_auto_remembers_its_choice_and_the_next_run_starts_in_it(tmp_path, tiny_models, video):
    """--tune measures each mode twice (a contested lead: up to MAX_ROUNDS times) and stores the choice under this device, model, size and source kind (a
    fresh measurement, whatever an earlier test left in this session's cache); the next run starts in it with no
    trial frames; --retune measures again. Its --stats say what and why."""
    path, _ = video
    model = str(tiny_models["onnx-int8"])

    def run(*extra) -> dict:
        stats = tmp_path / "s.json"
        assert main(["camera", "--source", str(path), "--loop", "--model", model, "--headless", "--stats",
                     str(stats), "--threads", "2", *extra]) == 0
        return _stats(stats)

    first = run("--tune")
    auto = first["auto"]
    assert first["stopped_by"] == "auto chose" and first["frames"] >= auto["trial_frames"] > 6 * 30
    assert not auto["remembered"] and 6 <= len(auto["trials"]) == auto["trials_planned"] <= 3 * MAX_ROUNDS
    assert auto["chosen"] in auto["modes"] and first["running"].startswith(auto["chosen"])
    for mode, figures in auto["modes"].items():  # each mode's rate is its trials' frames over their seconds
        trials = [t for t in auto["trials"] if t["mode"] == mode]
        assert 2 <= len(trials) == figures["trials"] <= MAX_ROUNDS and figures["rate"] == pytest.approx(
            sum(t["frames"] for t in trials) / sum(t["seconds"] for t in trials), rel=1e-3)
    second = run("--frames", "40")
    assert second["auto"]["remembered"] and second["auto"]["trial_frames"] == 0
    assert second["auto"]["chosen"] == auto["chosen"] and second["running"] == f"{auto['chosen']} (auto, remembered)"
    assert run("--frames", "40", "--retune")["auto"]["chosen"] is None  # measuring again: 40 frames are not enough


@pytest.mark.slow  # four seconds of real time each
@pytest.mark.parametrize("sources", [["synth:320x240@10"], ["synth:320x240@10", "synth:320x240@5#1"]])
def test_a_paced_source_reads_its_own_rate(tmp_path, tiny_models, sources):
    """A 10 fps camera reads 10 fps, over the whole run and over each second (what the panel's "now" shows); beside
    a 5 fps one, each stream its own (the panel once showed "7.1 fps (now 41.9)" on the 10 fps stream)."""
    stats = tmp_path / "s.json"
    argv = ["camera", "--model", str(tiny_models["onnx-int8"]), "--headless", "--seconds", "4", "--stats",
            str(stats), "--threads", "2"]
    for s in sources:
        argv += ["--source", s]
    assert main(argv) == 0
    s = _stats(stats)
    streams = s["streams"] if len(sources) > 1 else [s]
    for stream, want in zip(streams, (10.0, 5.0)):
        assert stream["fps_mean"] == pytest.approx(want, abs=want / 10), stream
        per = stream["fps_per_second"]
        assert per["count"] >= 2 and want * 0.85 <= per["min"] <= per["max"] <= want * 1.15, per
    if len(sources) > 1:
        assert s["total"]["fps_total"] == pytest.approx(15.0, abs=1.5)


def test_a_truncated_video_ends_without_ffmpegs_own_lines(tmp_path, tiny_models, video):
    """Before: a truncated AVI printed `[mjpeg @ 0x...] overread 8` without -v. It now plays what it holds and
    ends; `cmlite -v` still shows FFmpeg's lines."""
    import os
    import subprocess
    import sys

    data = video[0].read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    argv = [sys.executable, "-m", "cmlite.apps.cli", "camera", "--source", str(cut), "--model",
            str(tiny_models["onnx-int8"]), "--headless", "--mode", "sequential"]
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_FFMPEG_LOGLEVEL"}  # as a fresh shell has it
    quiet = subprocess.run(argv, capture_output=True, text=True, env=env)
    assert quiet.returncode == 0 and "frames in" in quiet.stdout, quiet.stderr
    assert "@ 0x" not in quiet.stderr, quiet.stderr
    loud = subprocess.run(argv[:3] + ["-v"] + argv[3:], capture_output=True, text=True, env=env)
    assert loud.returncode == 0 and "overread" in loud.stderr, loud.stderr


def test_fast_resize_runs_opencvs_resize(tmp_path, tiny_models, video, capsys):
    stats = tmp_path / "s.json"
    assert main(["camera", "--source", str(video[0]), "--model", str(tiny_models["onnx-int8"]), "--headless",
                 "--fast-resize", "--stats", str(stats), "--mode", "sequential"]) == 0
    assert _stats(stats)["resize"] == "fast"
    assert main(["eval", "--model", str(tiny_models["onnx-int8"]), "--data", str(tiny_models["val"].parent /
                 "annotations" / "instances_val.json"), "--images", str(tiny_models["val"]), "--fast-resize"]) == 0
    assert "OpenCV's fast resize" in capsys.readouterr().out
