"""calibration.frames: calibration frames from folders, COCO files, videos and cameras (real files, no mocks)."""
from __future__ import annotations

import glob
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from cmlite.calibration import frames as cf
from cmlite.calibration import synth
from cmlite.runtimes.errors import CmliteError

from .conftest import run_torch_free

BITS = 8  # video frames carry their index as 8 black/white vertical stripes (robust to lossy codecs)
STRIPE = 16


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    """A real synthetic COCO dataset: 20 val images (000001.png ... 000020.png) at 64 px."""
    out = tmp_path_factory.mktemp("frames") / "shapes"
    synth.generate(out, n_train=0, n_val=20, size=64, seed=5, progress=False)
    return out


def _folder(shapes: Path, dest: Path, n: int) -> list[Path]:
    """Copy the first n synthetic images to dest/img_XX.png."""
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        out.append(dest / f"img_{i:02d}.png")
        shutil.copy(shapes / "val" / f"{i + 1:06d}.png", out[-1])
    return out


def _index_frame(i: int) -> np.ndarray:
    frame = np.zeros((48, BITS * STRIPE, 3), np.uint8)
    for b in range(BITS):
        if i >> b & 1:
            frame[:, b * STRIPE:(b + 1) * STRIPE] = 255
    return frame


def _frame_index(frame: np.ndarray) -> int:
    centres = [frame[8:40, b * STRIPE + 4:(b + 1) * STRIPE - 4].mean() for b in range(BITS)]
    return sum(1 << b for b, m in enumerate(centres) if m > 128)


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    """A real 40-frame mp4 (mp4v) whose frame i shows i in binary stripes."""
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (BITS * STRIPE, 48))
    assert writer.isOpened()
    for i in range(40):
        writer.write(_index_frame(i))
    writer.release()
    return path


def _raises(match: str, *args, **kwargs) -> str:
    with pytest.raises(CmliteError, match=match) as err:
        cf.read_frames(*args, progress=False, **kwargs)
    message = str(err.value)
    assert "\n" not in message
    return message


# ----------------------------------------------------------------------------------------------- selection


def test_spread_indices_one_per_bin_seeded():
    picks = cf.spread_indices(100, 10, seed=3)
    assert picks == sorted(set(picks)) and len(picks) == 10
    assert [p // 10 for p in picks] == list(range(10))  # one pick in each tenth of the source
    assert cf.spread_indices(100, 10, seed=3) == picks
    assert cf.spread_indices(100, 10, seed=4) != picks
    assert cf.spread_indices(7, 7, seed=0) == cf.spread_indices(7, 50, seed=9) == list(range(7))
    uneven = cf.spread_indices(10, 3, seed=1)  # bins [0, 3), [3, 6), [6, 10)
    assert 0 <= uneven[0] < 3 <= uneven[1] < 6 <= uneven[2] < 10


@pytest.mark.parametrize("count", [0, -1])
def test_count_must_be_positive(shapes, count):
    _raises("--calib-count", str(shapes / "val"), count=count)
    with pytest.raises(CmliteError, match="--calib-count"):
        cf.spread_indices(10, count, 0)


# ----------------------------------------------------------------------------------------------- folders


def test_folder_recursive_mixed_suffixes_sorted(shapes, tmp_path, capsys):
    src = [cv2.imread(str(shapes / "val" / f"{i:06d}.png")) for i in range(1, 8)]
    root = tmp_path / "calib"
    (root / "b" / "deep").mkdir(parents=True)
    (root / "a").mkdir()
    names = ["a/x.png", "b/deep/y.PNG", "c.webp", "d.jpg", "e.JPEG", "f.bmp", "b/z.png"]
    for name, img in zip(names, src):
        assert cv2.imwrite(str(root / name), img)
    (root / "notes.txt").write_text("not an image")
    (root / "a" / "dir.png").mkdir()  # a folder named like an image is no candidate
    calib = cf.read_frames(str(root), count=100, seed=0)
    assert "calibration frames (folder)" in capsys.readouterr().err  # the tqdm bar
    assert calib.kind == "folder" and calib.source == str(root) and calib.skipped == []
    assert calib.available == 7
    assert calib.ids == [str(root / n) for n in sorted(names)]
    for frame, name in zip(calib.frames, calib.ids):
        assert frame.dtype == np.uint8 and frame.shape == (64, 64, 3)
        if name.lower().endswith(("png", "bmp", "webp")):  # lossless: the exact pixels
            np.testing.assert_array_equal(frame, cv2.imread(name))
    assert calib.summary() == {"kind": "folder", "source": str(root), "count": 7, "available": 7, "skipped": 0,
                               "digest": calib.digest}
    json.dumps(calib.summary())


def test_folder_count_seed_and_spread(shapes, tmp_path):
    files = _folder(shapes, tmp_path / "imgs", 20)
    a = cf.read_frames(str(tmp_path / "imgs"), count=5, seed=1, progress=False)
    b = cf.read_frames(str(tmp_path / "imgs"), count=5, seed=1, progress=False)
    c = cf.read_frames(str(tmp_path / "imgs"), count=5, seed=2, progress=False)
    assert len(a.frames) == len(a.ids) == 5 and a.available == 20
    assert a.ids == b.ids and a.digest == b.digest
    assert c.ids != a.ids and c.digest != a.digest
    positions = [[str(f) for f in files].index(i) for i in a.ids]
    assert [p // 4 for p in positions] == [0, 1, 2, 3, 4]  # spread: one frame from each fifth of the folder
    for frame, name in zip(a.frames, a.ids):
        np.testing.assert_array_equal(frame, cv2.imread(name))


def test_single_image_file(shapes):
    path = shapes / "val" / "000003.png"
    calib = cf.read_frames(str(path), count=8, progress=False)
    assert calib.kind == "images" and calib.ids == [str(path)] and calib.available == 1
    np.testing.assert_array_equal(calib.frames[0], cv2.imread(str(path)))


def test_corrupt_files_skipped_and_replaced(shapes, tmp_path):
    root = tmp_path / "mixed"
    good = _folder(shapes, root, 10)
    (root / "img_03b.png").write_bytes(np.random.default_rng(0).integers(0, 256, 500, np.uint8).tobytes())
    (root / "img_06b.jpg").write_bytes(b"")
    (root / "img_09b.png").write_text("hello")
    bad = [f"{root / n}: cannot decode (empty, corrupt or not an image)"
           for n in ("img_03b.png", "img_06b.jpg", "img_09b.png")]
    every = cf.read_frames(str(root), count=13, seed=0, progress=False)  # every candidate tried
    assert every.available == 13 and every.ids == [str(p) for p in good]
    assert sorted(every.skipped) == bad and every.summary()["skipped"] == 3
    for seed in range(4):  # count still met: an unreadable pick is replaced by a readable candidate
        calib = cf.read_frames(str(root), count=10, seed=seed, progress=False)
        assert calib.ids == [str(p) for p in good] and set(calib.skipped) <= set(bad)
        few = cf.read_frames(str(root), count=4, seed=seed, progress=False)
        assert len(few.ids) == 4 and set(few.ids) <= set(map(str, good)) and set(few.skipped) <= set(bad)


def test_unreadable_pick_replaced_within_its_bin(shapes, tmp_path):
    root = tmp_path / "bins"
    files = _folder(shapes, root, 12)  # count 4: bins [0,3) [3,6) [6,9) [9,12)
    files[3].write_bytes(b"")
    files[4].write_bytes(b"\x89PNG truncated")
    skipped_any = False
    for seed in range(10):
        calib = cf.read_frames(str(root), count=4, seed=seed, progress=False)
        positions = [[str(f) for f in files].index(i) for i in calib.ids]
        assert [p // 3 for p in positions] == [0, 1, 2, 3] and positions[1] == 5, seed  # still spread
        skipped_any |= bool(calib.skipped)
    assert skipped_any


def test_too_few_usable_frames(shapes, tmp_path):
    root = tmp_path / "few"
    _folder(shapes, root, 2)
    (root / "bad1.png").write_bytes(b"\x89PNG broken")
    (root / "bad2.png").write_bytes(b"")
    msg = _raises("gave 2 usable frames", str(root), count=4, min_frames=3)
    assert "2 unreadable, e.g. " in msg and "bad1.png: cannot decode" in msg and "need at least 3" in msg
    assert "give a folder with more" in msg
    assert len(cf.read_frames(str(root), count=4, min_frames=2, progress=False).frames) == 2
    (root / "img_00.png").unlink(), (root / "img_01.png").unlink()
    _raises("gave 0 usable frames", str(root), count=4)  # none usable: always an error
    _raises("--calib-count 4 is below the 8 frames", str(root), count=4, min_frames=8)


def test_empty_folder_no_images_and_missing_path(tmp_path):
    (tmp_path / "empty").mkdir()
    msg = _raises("is empty", str(tmp_path / "empty"))
    assert ".jpg" in msg and ".png" in msg and ".webp" in msg
    (tmp_path / "docs" / "sub").mkdir(parents=True)
    (tmp_path / "docs" / "sub" / "readme.txt").write_text("x")
    _raises("has no images .*looked recursively for", str(tmp_path / "docs"))
    msg = _raises("not found", str(tmp_path / "nope"))
    assert "image folder" in msg and "camera:N" in msg


# ----------------------------------------------------------------------------------------------- COCO


def test_coco_listed_images_by_id(shapes, tmp_path):
    data = json.loads((shapes / "annotations" / "instances_val.json").read_text())
    data["images"] = [im for im in data["images"] if im["id"] in (11, 2, 17, 5)][::-1]  # out of id order
    ann = tmp_path / "subset.json"
    ann.write_text(json.dumps(data))
    calib = cf.read_frames(str(ann), count=10, images_dir=str(shapes / "val"), progress=False)
    assert calib.kind == "coco" and calib.available == 4
    assert calib.ids == [str(shapes / "val" / f"{i:06d}.png") for i in (2, 5, 11, 17)]
    np.testing.assert_array_equal(calib.frames[2], cv2.imread(str(shapes / "val" / "000011.png")))
    full = cf.read_frames(str(shapes / "annotations" / "instances_val.json"), count=4,
                          images_dir=str(shapes / "val"), progress=False)
    assert [(int(Path(i).stem) - 1) // 5 for i in full.ids] == [0, 1, 2, 3]  # ids 1..20: one per quarter


def test_coco_errors(shapes, tmp_path):
    ann = str(shapes / "annotations" / "instances_val.json")
    _raises("pass --calib-images DIR", ann)
    _raises("is not a folder", ann, images_dir=str(tmp_path / "missing"))
    _raises("only used with a COCO .json", str(shapes / "val"), images_dir=str(shapes / "val"))
    (tmp_path / "other.json").write_text(json.dumps({"model": "x", "images": "none"}))
    _raises("is not a COCO annotation file", str(tmp_path / "other.json"), images_dir=str(shapes / "val"))
    (tmp_path / "broken.json").write_text("{not json")
    _raises("cannot read .* as JSON", str(tmp_path / "broken.json"), images_dir=str(shapes / "val"))


# ----------------------------------------------------------------------------------------------- video, camera


def test_video_frames_spread_over_whole_video(video):
    calib = cf.read_frames(str(video), count=8, seed=0, progress=False)
    assert calib.kind == "video" and calib.available == 40 and calib.skipped == []
    picked = [int(i.split("#frame=")[1]) for i in calib.ids]
    assert calib.ids == [f"{video}#frame={i}" for i in picked]
    assert [p // 5 for p in picked] == list(range(8))  # first pick in the first bin, last in the last
    assert [_frame_index(f) for f in calib.frames] == picked  # the frames are the ones named
    assert cf.read_frames(str(video), count=8, seed=0, progress=False).ids == calib.ids
    assert cf.read_frames(str(video), count=8, seed=1, progress=False).ids != calib.ids


def test_video_sequential_fallback_spans_video(video):
    from tqdm import tqdm

    frames, ids, skipped, available = cf._video(str(video), 6, 0, tqdm(disable=True), seek=False)
    picked = [int(i.split("#frame=")[1]) for i in ids]
    assert available == 40 and skipped == [] and len(frames) == 6
    assert [_frame_index(f) for f in frames] == picked == sorted(set(picked))
    assert picked[0] < 40 // 6 and picked[-1] >= 40 - 40 // 6 - 1


def test_grab_live_on_a_real_capture(video):
    capture = cv2.VideoCapture(str(video))  # a real stream standing in for a camera
    pick, n = cf.grab_live(capture, 5, seconds=60)
    capture.release()
    assert n == 40 and len(pick) == 5
    got = [_frame_index(f) for _, f in pick]
    assert got == [i for i, _ in pick]  # each frame with its index in the stream
    assert [g // 8 for g in got] == [0, 1, 2, 3, 4]  # evenly spread over everything grabbed
    capture = cv2.VideoCapture(str(video))
    pick, n = cf.grab_live(capture, 3, seconds=60, max_frames=10)
    assert n == 10 and len(pick) == 3 and all(_frame_index(f) < 10 for _, f in pick)
    frames, n = cf.grab_live(capture, 3, seconds=0)  # time is up at once
    capture.release()
    assert (frames, n) == ([], 0)
    capture = cv2.VideoCapture(str(video))
    kept, n = cf._grab(capture, 2, seconds=60)  # memory stays bounded: every k-th frame, k doubling
    capture.release()
    step = kept[1][0] - kept[0][0]
    assert n == 40 and len(kept) <= cf.KEEP_PER_FRAME * 2 and step > 1
    assert [i for i, _ in kept] == list(range(0, 40, step)) and kept[-1][0] >= 40 - step
    assert [_frame_index(f) for _, f in kept] == [i for i, _ in kept]


def test_camera_absent_and_bad_camera_sources():
    if glob.glob("/dev/video*") or cv2.VideoCapture(0).isOpened():
        pytest.skip("a camera is attached")
    msg = _raises("no camera at camera:0", "camera:0", count=4, camera_seconds=0.5)
    assert "connect one or give an image folder, a COCO file or a video" in msg
    _raises("no camera at camera:/dev/video0", "camera:/dev/video0", count=4, camera_seconds=0.5)
    for bad in ("camera:front", "camera:", "camera:-1", "camera:²", "camera:0x1"):
        _raises("bad camera source", bad)
    assert cf.parse_source("camera:2") == ("camera", "2")


def test_unreadable_video_and_unknown_file(tmp_path):
    junk = np.random.default_rng(1).integers(0, 256, 4096, np.uint8).tobytes()
    (tmp_path / "x.mp4").write_bytes(junk)
    msg = _raises("x.mp4 is not a readable video", str(tmp_path / "x.mp4"))
    assert "FFMPEG" in msg and "convert it to mp4" in msg
    (tmp_path / "x.dat").write_bytes(junk)
    _raises("neither an image .* a COCO .json nor a video", str(tmp_path / "x.dat"))


# ----------------------------------------------------------------------------------------------- digest, no torch


def test_digest_is_the_hash_of_the_frame_list():
    import hashlib

    a = cf.CalibFrames([], ["a.png", "b.png"], "folder", "d", [], 2)
    assert a.digest == hashlib.sha256(b"a.png\nb.png").hexdigest()
    assert a.digest == cf.CalibFrames([], ["a.png", "b.png"], "folder", "other", ["x: y"], 9).digest
    assert a.digest != cf.CalibFrames([], ["a.png", "c.png"], "folder", "d", [], 2).digest
    assert a.digest != cf.CalibFrames([], ["b.png", "a.png"], "folder", "d", [], 2).digest


def test_imports_without_torch():
    proc = run_torch_free("""
        import cmlite.calibration.frames
        assert "torch" not in {m.split(".")[0] for m in sys.modules if sys.modules[m] is not None}
        print("ok")
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
