"""`cmlite predict` over videos and mixed inputs, its pictures in their input's format, and its images per second
(the embedded default converted to ONNX Runtime; real files throughout)."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from cmlite import runtimes
from cmlite.apps.cli import main
from cmlite.calibration.synth_scene import MovingScene


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """6 frames of the moving scene as an MJPG .avi, and the frames OpenCV decodes from it."""
    path = tmp_path_factory.mktemp("clip") / "walk.avi"
    scene = MovingScene(320, 240, seed=4)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (320, 240))
    for i in range(6):
        writer.write(scene.render(i / 10))
    writer.release()
    cap, frames = cv2.VideoCapture(str(path)), []
    while (ok := cap.read())[0]:
        frames.append(ok[1])
    return path, frames


@pytest.mark.parametrize("mode", ["sequential", "overlap"])
def test_a_video_is_segmented_frame_by_frame(clip, default_onnx, tmp_path, capsys, mode):
    path, frames = clip
    out, vis = tmp_path / "r.json", tmp_path / "vis"
    assert main(["predict", str(path), "--model", str(default_onnx), "--json", str(out), "--save-vis", str(vis),
                 "--mode", mode, "--threads", "2"]) == 0
    printed = capsys.readouterr().out
    assert f"overlaid video -> {vis / 'walk.webm'}" in printed and "6 images in" in printed and "images/s" in printed
    results = json.loads(out.read_text())
    seg = runtimes.load(default_onnx, threads=2)
    for k, frame in enumerate(frames):  # frame k's results are predict()'s on frame k
        mine = [r for r in results if r["frame"] == k]
        assert {r["file_name"] for r in mine} == {f"{path}#{k}"} and {r["image_id"] for r in mine} == {k + 1}
        want = seg.predict(frame)
        np.testing.assert_allclose(sorted(r["score"] for r in mine), sorted(want.scores.tolist()), rtol=1e-6)
    cap = cv2.VideoCapture(str(vis / "walk.webm"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 6 and int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 320


def test_pictures_keep_their_input_format(default_onnx, tmp_path, capsys):
    """Before: a JPEG input came out as a PNG ten times its size."""
    scene = MovingScene(640, 480, seed=1)
    inputs = tmp_path / "in"
    inputs.mkdir()
    cv2.imwrite(str(inputs / "shot.jpg"), scene.render(0.2))
    cv2.imwrite(str(inputs / "still.png"), scene.render(0.4))
    vis = tmp_path / "vis"
    assert main(["predict", str(inputs), "--model", str(default_onnx), "--save-vis", str(vis)]) == 0
    assert sorted(p.name for p in vis.iterdir()) == ["shot.jpg", "still.png"]
    assert (vis / "shot.jpg").stat().st_size < 3 * (inputs / "shot.jpg").stat().st_size
    assert cv2.imread(str(vis / "shot.jpg")).shape == (480, 640, 3)
    assert "2 images in" in capsys.readouterr().out


def test_a_broken_video_stops_before_the_model_loads(tmp_path, capsys):
    from tests.conftest import one_line_error

    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    assert "is not a video OpenCV can read" in one_line_error(capsys, ["predict", str(bad)])
