"""Calibration frames for INT8 quantization from what users have: an image folder, an image, a COCO file with its
image folder, a video or a live camera: `read_frames("data/val", count=32, seed=0)` -> CalibFrames.

Frames are spread over the whole source (`spread_indices`: one seeded pick per equal bin): the same source, count and
seed give the same frame list (`ids`, hashed by `digest` for the manifest). Unreadable files and frames are skipped,
listed in `skipped` and replaced by other candidates (first from the same bin). No torch: numpy and OpenCV only.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from cmlite.runtimes.images import IMAGE_SUFFIXES, read_bgr
from cmlite.runtimes.errors import CmliteError, ImageError
from cmlite.runtimes.progress import LineProgress, progress_bar
from cmlite.runtimes.video_capture import VIDEO_SUFFIXES, open_capture, open_device

KEEP_PER_FRAME = 4  # live/sequential grabbing keeps at most this many frames per requested frame (bounded memory)
_SOURCES = ("give an image folder, an image, a COCO .json with --calib-images DIR, a video, camera:N, gst:PIPELINE or "
            "picam:N")


@dataclass
class CalibFrames:
    """The frames read from one calibration source, in a deterministic order, with what was skipped."""
    frames: list[np.ndarray]  # HxWx3 uint8 BGR
    ids: list[str]  # per frame: the file path, f"{video}#frame={i}" or f"camera:{N}#grab={k}"
    kind: str  # "folder" | "coco" | "video" | "camera" | "images"
    source: str  # as given
    skipped: list[str] = field(default_factory=list)  # "what: reason" per unreadable file or frame
    available: int = 0  # candidates in the source (files, video frames, grabbed frames)

    @property
    def digest(self) -> str:
        """sha256 hex of the frame list ("\\n".join(ids)): the manifest's record of what calibrated the model."""
        return hashlib.sha256("\n".join(self.ids).encode()).hexdigest()

    def summary(self) -> dict:
        return {"kind": self.kind, "source": self.source, "count": len(self.frames), "available": self.available,
                "skipped": len(self.skipped), "digest": self.digest}


def _check_count(count: int) -> int:
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count <= 0:
        raise CmliteError(f"--calib-count must be a positive number of frames, got {count!r}: e.g. --calib-count 32")
    return int(count)


def _edges(n: int, count: int) -> list[int]:
    """Boundaries of `count` equal bins over range(n) (unit bins when count >= n)."""
    bins = min(count, n)
    return [b * n // bins for b in range(bins + 1)] if bins else [0]


def spread_indices(n_available: int, count: int, seed: int) -> list[int]:
    """`count` sorted unique indices spread over range(n_available): one per equal bin at a seeded offset.

    All of range(n_available) when count >= n_available. Deterministic for a given (n_available, count, seed).
    """
    count = _check_count(count)
    if count >= n_available:
        return list(range(max(n_available, 0)))
    edges = _edges(n_available, count)
    u = np.random.default_rng(seed).random(count)
    return [lo + int(x * (hi - lo)) for lo, hi, x in zip(edges[:-1], edges[1:], u)]


def parse_source(source: str, images_dir: str | None = None) -> tuple[str, ...]:
    """Classify a source -> ("camera", index, /dev path, gst:PIPELINE or picam:N) | ("folder", dir) | ("coco", json, images_dir) |
    ("images", file) | ("video", file). Raises CmliteError for a missing path or a malformed camera source."""
    source = str(source)
    if images_dir is not None and not source.lower().endswith(".json"):
        raise CmliteError(f"--calib-images {images_dir} is only used with a COCO .json source, not {source}: "
                          f"drop --calib-images or give the COCO annotation file")
    if source.startswith(("gst:", "picam:")):  # the live app's GStreamer pipelines and the Pi camera
        return "camera", source
    if source.startswith("camera:"):
        cam = source[len("camera:"):]
        if not ((cam.isascii() and cam.isdigit()) or cam.startswith("/dev/")):
            raise CmliteError(f"bad camera source {source!r}: use camera:N (a camera index, e.g. camera:0) "
                              f"or camera:/dev/videoN")
        return "camera", cam
    path = Path(source)
    if not path.exists():
        raise CmliteError(f"calibration source {source} not found: {_SOURCES}")
    if path.is_dir():
        return "folder", str(path)
    if path.suffix.lower() == ".json":
        if images_dir is None:
            raise CmliteError(f"COCO file {source} needs the folder of its images: pass --calib-images DIR")
        if not Path(images_dir).is_dir():
            raise CmliteError(f"--calib-images {images_dir} is not a folder: give the folder the COCO file's "
                              f"file_name entries are relative to")
        return "coco", str(path), str(images_dir)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return "images", str(path)
    return "video", str(path)


def _load_image(path: Path) -> np.ndarray | str:
    """The image, or the reason it cannot be used."""
    if not path.is_file():
        return "file not found"
    try:
        return read_bgr(path)
    except ImageError:
        return "cannot decode (empty, corrupt or not an image)"
    except OSError as e:
        return f"cannot read ({e.strerror or e})"


def _pick(n: int, count: int, seed: int, load: Callable[[int], np.ndarray | str], name: Callable[[int], str],
          bar: LineProgress) -> tuple[list[int], list[np.ndarray], list[str]]:
    """Read the spread picks; an unreadable pick is replaced by the next readable candidate of its bin, and bins
    with none by untried candidates in a seeded order. -> (indices sorted, frames, skipped)."""
    got: dict[int, np.ndarray] = {}
    tried: set[int] = set()
    skipped: list[str] = []

    def attempt(i: int) -> bool:
        tried.add(i)
        result = load(i)
        if isinstance(result, str):
            skipped.append(f"{name(i)}: {result}")
            return False
        got[i] = result
        bar.update()
        return True

    edges = _edges(n, count)
    for lo, hi, p in zip(edges[:-1], edges[1:], spread_indices(n, count, seed)):
        any(attempt(i) for i in [*range(p, hi), *range(lo, p)])
    target = min(count, n)
    if len(got) < target:  # whole bins unreadable: fill from the other bins' candidates
        for i in np.random.default_rng([seed, 1]).permutation(n).tolist():
            if len(got) >= target:
                break
            if i not in tried:
                attempt(i)
    order = sorted(got)
    return order, [got[i] for i in order], skipped


def _grab(capture: cv2.VideoCapture, count: int, seconds: float, max_frames: int | None = None,
          bar: LineProgress | None = None) -> tuple[list[tuple[int, np.ndarray]], int]:
    """Read until the time is up, the stream ends or max_frames were read, keeping every k-th frame (k doubles
    whenever more than KEEP_PER_FRAME * count are kept). -> ([(frame index, frame)] spanning the read, frames read)."""
    cap, k, n, kept = max(KEEP_PER_FRAME * count, 2), 1, 0, []
    deadline = time.monotonic() + seconds
    while (max_frames is None or n < max_frames) and time.monotonic() < deadline:
        ok, frame = capture.read()
        if not ok or frame is None:
            break
        if n % k == 0:
            kept.append((n, frame.copy()))
            if len(kept) > cap:
                k *= 2
                kept = [x for x in kept if x[0] % k == 0]
        n += 1
        if bar is not None:
            bar.update()
    return kept, n


def _even(m: int, count: int) -> list[int]:
    """Bin centres: `count` indices evenly spread over range(m) (all when count >= m)."""
    return list(range(m)) if count >= m else [(2 * j + 1) * m // (2 * count) for j in range(count)]


def grab_live(capture: cv2.VideoCapture, count: int, seconds: float, max_frames: int | None = None,
              bar: LineProgress | None = None) -> tuple[list[tuple[int, np.ndarray]], int]:
    """Grab from an opened capture for `seconds` (or until the stream ends / max_frames were read), reading
    continuously. -> ([(frame index, frame)]: `count` evenly spread over those read, how many were read)."""
    kept, n = _grab(capture, _check_count(count), seconds, max_frames, bar)
    return [kept[j] for j in _even(len(kept), count)], n


def _bad_video(path: str) -> CmliteError:
    if Path(path).suffix.lower() in VIDEO_SUFFIXES:
        return CmliteError(f"{path} is not a readable video: install an OpenCV build with FFMPEG or convert it to mp4 "
                           f"(e.g. ffmpeg -i {Path(path).name} out.mp4)")
    return CmliteError(f"{path} is neither an image ({', '.join(sorted(IMAGE_SUFFIXES))}), a COCO .json nor a video "
                       f"OpenCV can read: {_SOURCES}")


def _video(path: str, count: int, seed: int, bar: LineProgress, seek: bool = True
           ) -> tuple[list[np.ndarray], list[str], list[str], int]:
    """Frames spread over a whole video by seeking; read sequentially (every k-th frame kept) when the length is
    unknown or seeking gives nothing. -> (frames, ids, skipped, frames in the video)."""
    capture = open_capture(path)
    try:
        if not capture.isOpened():
            raise _bad_video(path)
        n = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        if seek and n > 0 and capture.set(cv2.CAP_PROP_POS_FRAMES, 0):
            def load(i: int) -> np.ndarray | str:
                ok, frame = capture.read() if capture.set(cv2.CAP_PROP_POS_FRAMES, i) else (False, None)
                return frame if ok and frame is not None else "cannot decode"

            order, frames, skipped = _pick(n, count, seed, load, lambda i: f"{path}#frame={i}", bar)
            if frames:
                return frames, [f"{path}#frame={i}" for i in order], skipped, n
            capture.release()
            capture = open_capture(path)  # from the start again, without seeking
        kept, n = _grab(capture, count, math.inf)
    finally:
        capture.release()
    if not kept:
        raise _bad_video(path)
    pick = [kept[j] for j in spread_indices(len(kept), count, seed)]
    bar.update(len(pick))
    return [f for _, f in pick], [f"{path}#frame={i}" for i, _ in pick], [], n


def _camera(source: str, cam: str, count: int, seconds: float, bar: LineProgress) -> tuple[list[np.ndarray], list[str], int]:
    """`count` frames evenly spread over those grabbed for `seconds`. -> (frames, ids, frames grabbed)."""
    try:
        capture = open_device(cam)
    except CmliteError as e:
        raise CmliteError(f"no camera at {source}: {e}") from None
    opened = capture.isOpened()
    try:
        pick, grabbed = grab_live(capture, count, seconds, bar=bar) if opened else ([], 0)
    finally:
        capture.release()
    if not pick:
        raise CmliteError(f"no camera at {source} ({'no frame could be read' if opened else 'cannot open it'}); "
                          f"connect one or give an image folder, a COCO file or a video")
    return [f for _, f in pick], [f"{source}#grab={k}" for k, _ in pick], grabbed


def _image_files(kind: str, where: list[str], source: str) -> list[Path]:
    """The candidate files of a folder (recursive, sorted by relative path), a COCO file (by image id) or one image."""
    if kind == "images":
        return [Path(where[0])]
    if kind == "coco":
        try:
            data = json.loads(Path(where[0]).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CmliteError(f"cannot read {source} as JSON ({e}): give a COCO annotation file") from None
        images = data.get("images") if isinstance(data, dict) else None
        if not isinstance(images, list) or not all(isinstance(im, dict) and {"id", "file_name"} <= im.keys()
                                                   for im in images):
            raise CmliteError(f"{source} is not a COCO annotation file (no \"images\" list with id and file_name): "
                              f"give a COCO instances file, or the image folder itself")
        if not images:
            raise CmliteError(f"COCO file {source} lists no images: give one that does, or an image folder")
        return [Path(where[1]) / im["file_name"] for im in sorted(images, key=lambda im: im["id"])]
    root = Path(where[0])
    files = sorted((p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
                   key=lambda p: p.relative_to(root).as_posix())
    if not files:
        state = "is empty" if not any(root.iterdir()) else "has no images"
        raise CmliteError(f"calibration folder {source} {state} (looked recursively for "
                          f"{', '.join(sorted(IMAGE_SUFFIXES))}): put images in it or give another source")
    return files


def read_frames(source: str, count: int = 32, seed: int = 0, images_dir: str | None = None,
                camera_seconds: float = 5.0, min_frames: int = 1, progress: bool = True) -> CalibFrames:
    """Read up to `count` calibration frames from `source` (see the module docstring), spread over it.

    Raises CmliteError (one line naming the problem and the fix) when the source cannot be read or gives fewer
    than `min_frames` usable frames (always when none).
    """
    source, count = str(source), _check_count(count)
    if min_frames > count:
        raise CmliteError(f"--calib-count {count} is below the {min_frames} frames calibration needs: "
                          f"use --calib-count {min_frames} or more")
    kind, *where = parse_source(source, images_dir)
    files = None if kind in ("camera", "video") else _image_files(kind, where, source)  # errors before any bar
    bar = progress_bar(total=None if kind == "camera" else count, desc=f"calibration frames ({kind})", unit="frame",
               leave=False, disable=not progress or count < 2 or kind == "images")  # camera: counts grabbed frames
    skipped: list[str] = []
    try:
        if kind == "camera":
            frames, ids, available = _camera(source, where[0], count, camera_seconds, bar)
        elif kind == "video":
            frames, ids, skipped, available = _video(where[0], count, seed, bar)
        else:
            available = len(files)
            order, frames, skipped = _pick(available, count, seed, lambda i: _load_image(files[i]),
                                           lambda i: str(files[i]), bar)
            ids = [str(files[i]) for i in order]
    finally:
        bar.close()
    if len(frames) < max(min_frames, 1):
        first = f", e.g. {skipped[0]}" if skipped else ""
        more = {"video": "give a longer video or another source", "camera": "grab longer or check the camera"}
        raise CmliteError(f"calibration source {source} gave {len(frames)} usable frames ({len(skipped)} unreadable"
                          f"{first}); need at least {max(min_frames, 1)}: "
                          f"{more.get(kind, 'give a folder with more readable images')}")
    return CalibFrames(frames, ids, kind, source, skipped, available)
