"""The cameras edge devices have (apps/camera/sources.py, runtimes/gst_capture.py, runtimes/video_capture.py): real
GStreamer pipelines (Debian's GStreamer through PyGObject, videotestsrc) through the camera app, finite and live,
several at once with recording and the web page, a live one that ends and is reopened, one that cannot start,
calibration frames from one; what a local camera is asked for against what its driver gave; the Pi camera's
refusal where picamera2 is not installed. No V4L2 device exists on the machines these tests run on (no
v4l2loopback module either): the --camera-* request and read-back run against OpenCV's own capture of a file."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from cmlite.apps.cli import main
from cmlite.apps.camera.sources import open_source
from cmlite.runtimes.errors import CmliteError
from cmlite.runtimes.video_capture import CaptureSettings, apply_settings, parse_settings, unmet
from tests.conftest import one_line_error
from tests.system_tools import need_gstreamer

FINITE = "gst:videotestsrc num-buffers={n} pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1"
LIVE = "gst:videotestsrc is-live=true pattern=smpte ! video/x-raw,width=320,height=240,framerate={fps}/1"


@pytest.fixture(scope="module")
def gst():
    need_gstreamer()


def _camera(tmp_path, model, *argv) -> dict:
    stats = tmp_path / "s.json"
    assert main(["camera", "--model", str(model), "--headless", "--stats", str(stats), "--threads", "2",
                 "--mode", "sequential", *argv]) == 0
    return json.loads(stats.read_text())


def test_a_finite_pipeline_gives_every_frame_in_bgr_and_ends(gst, tmp_path, tiny_models):
    src = open_source(FINITE.format(n=5).replace("320", "321"))  # 321 px: GStreamer pads each row to 4 bytes
    frames = []
    while True:
        ok, frame = src.read()
        if not ok:
            break
        frames.append(frame)
    src.close()
    assert len(frames) == 5 and frames[0].shape == (240, 321, 3) and frames[0].dtype == np.uint8
    assert not src.live and src.fps == 30 and src.got["width"] == 321
    # the same as the app's source, every frame processed, the source's figures in --stats
    s = _camera(tmp_path, tiny_models["onnx-int8"], "--source", FINITE.format(n=20), "--record",
                str(tmp_path / "rec.avi"))
    assert s["frames"] == 20 and s["source_ended"] and s["dropped"] == 0 and s["recorded_frames"] == 20
    cap = s["capture"]
    assert cap["got"]["width"] == 320 and cap["got"]["height"] == 240 and cap["got"]["fps"] == 30
    assert cap["backend"].startswith("GStreamer") and cap["cpu_ms_per_frame"]["total"] >= 0
    assert "pipeline_threads" in cap["cpu_ms_per_frame"] and s["source"].startswith("gst videotestsrc")


@pytest.mark.slow  # seconds of real time
def test_a_live_pipeline_runs_at_its_own_pace(gst, tmp_path, tiny_models):
    s = _camera(tmp_path, tiny_models["onnx-int8"], "--source", LIVE.format(fps=15), "--seconds", "3")
    assert s["fps_mean"] == pytest.approx(15, abs=1.5) and not s["source_ended"]
    assert s["captured"] == s["taken"] + s["dropped"] + s["pending"] and s["capture"]["got"]["fps"] == 15


@pytest.mark.slow  # seconds of real time
def test_several_pipelines_with_recording_and_the_page(gst, tmp_path, tiny_models):
    """Two finite pipelines and a live one through one model: the files lose no frame and each recording is its
    own; the page serves each stream."""
    stats = tmp_path / "s.json"
    argv = ["camera", "--model", str(tiny_models["onnx-int8"]), "--headless", "--threads", "2", "--mode",
            "throughput", "--stats", str(stats), "--record", str(tmp_path / "rec-{i}.avi"), "--serve", "0",
            "--source", FINITE.format(n=12), "--source", FINITE.format(n=8).replace("ball", "snow"),
            "--source", LIVE.format(fps=10), "--seconds", "4"]
    assert main(argv) == 0
    s = json.loads(stats.read_text())
    frames = [t["frames"] for t in s["streams"]]
    assert frames[:2] == [12, 8] and frames[2] >= 20 and s["total"]["streams"] == 3
    for i, n in enumerate(frames):
        cap = cv2.VideoCapture(str(tmp_path / f"rec-{i}.avi"))
        count = 0
        while cap.read()[0]:
            count += 1
        assert count == n


@pytest.mark.slow  # seconds of real time
def test_a_live_pipeline_that_ends_is_reopened(gst, tmp_path, tiny_models):
    """A live camera pipeline that stops (here after 6 frames) is a camera gone: reopened with back-off while
    the app goes on, as any live source."""
    s = _camera(tmp_path, tiny_models["onnx-int8"], "--source",
                "gst:videotestsrc is-live=true num-buffers=6 ! video/x-raw,width=160,height=120,framerate=20/1",
                "--seconds", "3")
    assert s["reopens"] >= 1 and s["frames"] >= 12


@pytest.mark.parametrize("spec, message", [
    ("gst:nosuchelement ! videoconvert", 'cannot build the pipeline: no element "nosuchelement"'),
    ("gst:v4l2src device=/dev/video9", "cannot start the pipeline: Cannot identify device '/dev/video9'"),
    ("gst:videotestsrc num-buffers=0", "the pipeline gave no frame (it ended at once)"),
    ("gst:", "give a pipeline after gst:"),
])
def test_a_pipeline_that_cannot_start_is_one_line(gst, tiny_models, capsys, spec, message):
    err = one_line_error(capsys, ["camera", "--model", str(tiny_models["onnx-int8"]), "--headless", "--source", spec])
    assert message in err


def test_calibration_frames_from_a_pipeline(gst):
    from cmlite.calibration.frames import read_frames

    frames = read_frames(FINITE.format(n=40), count=6, camera_seconds=5, progress=False)
    assert len(frames.frames) == 6 and frames.frames[0].shape == (240, 320, 3) and frames.kind == "camera"
    assert frames.ids[0].startswith("gst:videotestsrc") and "#grab=" in frames.ids[0]


def test_the_pi_camera_says_what_to_install_where_there_is_none(capsys, tiny_models):
    try:  # picamera2 exists on Raspberry Pi OS only
        import picamera2  # noqa: F401
        pytest.skip("picamera2 is installed here")
    except ImportError:
        pass
    err = one_line_error(capsys, ["camera", "--model", str(tiny_models["onnx-int8"]), "--headless", "--source",
                                  "picam:0"])
    assert "needs the picamera2 package: sudo apt install python3-picamera2" in err


def test_a_camera_request_is_asked_and_what_the_driver_gave_is_read_back(tmp_path):
    """OpenCV's own capture, asked for another size, rate and format than it can give (a file: its own): what
    it gave is read back and the difference is one line."""
    from cmlite.calibration.synth_scene import write_clip

    clip = write_clip(tmp_path / "c.avi", 3, fps=10, width=320, height=240)
    cap = cv2.VideoCapture(str(clip))
    asked = parse_settings("1280x720", 30, "yuyv")
    got = apply_settings(cap, asked)
    cap.release()
    assert (got["width"], got["height"], got["fps"], got["format"]) == (320, 240, 10, "MJPG")
    assert unmet(asked, got) == ("asked 1280x720 @30 YUYV, the driver gave 320x240 @10 MJPG (its size, rate, format "
                                 "differ: `v4l2-ctl --list-formats-ext` lists what it offers)")
    assert unmet(CaptureSettings((320, 240), 10, "MJPG"), got) is None


@pytest.mark.parametrize("argv, message", [
    (["--camera-size", "1280"], "--camera-size '1280': give WIDTHxHEIGHT"),
    (["--camera-fps", "0"], "--camera-fps 0.0: give frames per second"),
    (["--camera-format", "MJPEG!"], "give a pixel format's four-letter code"),
    (["--camera-size", "640x480", "--source", "synth"], "are for a local camera (an index, /dev/videoN or picam:N)"),
])
def test_camera_requests_are_checked_before_anything_opens(argv, message, capsys, tiny_models):
    err = one_line_error(capsys, ["camera", "--model", str(tiny_models["onnx-int8"]), "--headless", *argv])
    assert message in err


def test_a_request_for_a_pipeline_says_where_its_caps_go(gst):
    with pytest.raises(CmliteError, match=r"a GStreamer pipeline sets its own caps"):
        open_source(LIVE.format(fps=10), parse_settings("640x480"))
