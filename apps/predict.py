"""`cmlite predict`: segment images and videos; a line per image, pictures or overlaid videos (--save-vis), COCO
results (--json), and the images per second it ran at.

The images go through runtimes/modes/ (--mode, default auto): reading, drawing and encoding run beside the
graphs. A batch finishes: an image that cannot be read is reported and skipped, the others are drawn and written,
and the command exits with status 1 naming the bad ones."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from cmlite.runtimes.errors import CmliteError
from cmlite.runtimes.progress import progress_bar
from cmlite.runtimes.video_capture import VIDEO_SUFFIXES

from .atomic import check_file_path, write_json_atomic
from .model_args import config_overrides, segmenter
from .table import plural

# the formats --save-vis keeps (an input's own; others become .png)
KEEP_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


@dataclass(frozen=True)
class Item:
    path: Path
    image_id: int
    frame: int | None = None  # a video's frame index

    @property
    def file_name(self) -> str:
        return str(self.path) if self.frame is None else f"{self.path}#{self.frame}"


def check_images(paths: list[str]) -> list[Path]:
    """Files and folders -> image and video paths; a path that does not exist stops before any model loads."""
    from cmlite.runtimes.images import expand_images

    images = expand_images(paths)
    for p in images:
        if not p.is_file():
            raise CmliteError(f"image not found: {p}")
    return images


def _is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def _open_video(path: Path):
    from cmlite.runtimes.video_capture import open_capture

    cap = open_capture(str(path))
    if not cap.isOpened():
        raise CmliteError(f"{path} is not a video OpenCV can read (corrupt, or not a video)")
    return cap


def _items(paths: list[Path], first=None):
    """(Item, reader) in order: each image once, each video frame by frame (ids 1..N over everything, or the
    images' numeric stems when all inputs are such images)."""
    from cmlite.calibration.coco_results import image_ids
    from cmlite.runtimes.images import read_bgr

    ids = image_ids(paths) if not any(map(_is_video, paths)) else None
    next_id = 1
    for k, path in enumerate(paths):
        if not _is_video(path):
            image_id = ids[k] if ids else next_id
            next_id += 1
            yield Item(path, image_id), (lambda p=path: first if first is not None else read_bgr(p))
            continue
        cap = _open_video(path)
        try:
            frame = 0
            while True:
                ok, image = cap.read()
                if not ok:
                    break
                yield Item(path, next_id, frame), image
                next_id, frame = next_id + 1, frame + 1
        finally:
            cap.release()


class _Vis:
    """--save-vis: a picture per image, an overlaid video per video (written whole, as the camera's --record)."""

    def __init__(self, folder: Path, thresh: float):
        self.folder, self.thresh = folder, thresh
        self.names: dict[Path, str] = {}
        self.videos: dict[Path, object] = {}

    def name(self, path: Path) -> str:
        if path not in self.names:
            name = path.stem
            while name in self.names.values():
                name += "_"
            self.names[path] = name
        return self.names[path]

    def write(self, item: Item, image, inst) -> Path:
        import cv2

        from .visualize import draw

        self.folder.mkdir(parents=True, exist_ok=True)  # only once there is a picture to put in it
        picture = draw(image, inst, min_score=self.thresh)
        if item.frame is None:  # the input's format (a JPEG stays a JPEG: as PNG it was ten times the size)
            suffix = item.path.suffix.lower() if item.path.suffix.lower() in KEEP_SUFFIXES else ".png"
            out = self.folder / f"{self.name(item.path)}{suffix}"
            if not cv2.imwrite(str(out), picture):
                raise CmliteError(f"cannot write {out}: check that the folder is writable")
            return out
        if item.path not in self.videos:
            from .camera.recorder import Recorder

            cap = _open_video(item.path)
            fps = cap.get(cv2.CAP_PROP_FPS)
            cap.release()
            self.videos[item.path] = Recorder(self.folder / f"{self.name(item.path)}.webm",
                                              fps=fps if 0 < fps < 1000 else 25.0)
        self.videos[item.path].write(picture)
        return self.videos[item.path].path

    def close(self) -> list[Path]:
        for rec in self.videos.values():
            rec.close()
        return [r.path for r in self.videos.values()]


def cmd_predict(args) -> int:
    from cmlite.converters.folders import check_dir_path
    from cmlite.runtimes.modes import stream

    from cmlite.calibration.coco_results import to_coco_results
    from cmlite.runtimes.images import read_bgr

    paths = check_images(args.images)
    if not 0 <= args.vis_thresh <= 1:
        raise CmliteError(f"--vis-thresh {args.vis_thresh}: give a score in [0, 1], e.g. 0.3")
    vis_dir = check_dir_path(args.save_vis, "--save-vis") if args.save_vis else None
    json_path = check_file_path(args.json, "--json")
    for p in paths:
        if _is_video(p):
            _open_video(p).release()  # a bad video stops before the model loads
    single = len(paths) == 1 and not _is_video(paths[0])
    first = read_bgr(paths[0]) if single else None  # one image: a bad one stops before the model loads
    seg = segmenter(args, **config_overrides(args))
    print(f"model: {seg.device}")
    vis = _Vis(vis_dir, args.vis_thresh) if vis_dir else None
    results, bad, done, t0 = [], [], 0, time.perf_counter()

    def finish(item: Item, job) -> None:  # beside the graphs: the COCO encoding and the picture
        job.extras["results"] = to_coco_results(job.instances, item.image_id, seg.category_ids,
                                                file_name=item.file_name, frame=item.frame)
        job.extras["vis"] = vis.write(item, job.image, job.instances) if vis else None

    bar = progress_bar(desc="predict", unit="img", disable=single, file=sys.stderr)
    try:
        for item, job in stream(seg, _items(paths, first), args.mode, finish):
            bar.update()
            if job.error is not None:
                bad.append(item.path)
                bar.write(f"{item.path}: skipped: {job.error}", file=sys.stderr)
                continue
            done += 1
            results += job.extras["results"]
            if item.frame is not None:
                continue  # videos: a summary line at the end, not a line per frame
            inst = job.instances
            ms = sum(job.timings[s] for s in seg.STAGES)
            top = ", ".join(f"{inst.label(i)} {inst.scores[i]:.2f}" for i in range(min(3, len(inst))))
            line = f"{item.path}: {len(inst)} instances in {ms:.0f} ms" + (
                f" ({top}{', ...' if len(inst) > 3 else ''})" if len(inst) else "")
            bar.write(line + (f" -> {job.extras['vis']}" if job.extras["vis"] else ""), file=sys.stdout)
    finally:
        bar.close()
        seconds = time.perf_counter() - t0  # the images' rate: the overlaid videos' encode is timed apart
        t_encode = time.perf_counter()
        videos = vis.close() if vis else []
    for v in videos:
        print(f"overlaid video -> {v} (encoded in {time.perf_counter() - t_encode:.1f} s)")
    if done > 1:
        print(f"{plural(done, 'image')} in {seconds:.1f} s: {done / seconds:.1f} images/s ({args.mode} mode)")
    if json_path and done:
        write_json_atomic(json_path, results)
        print(f"wrote {len(results)} results for {done} images to {json_path}")
    if bad:
        print(f"cmlite: {len(bad)} of {plural(len(bad) + done, 'image')} could not be read or run and "
              f"{'was' if len(bad) == 1 else 'were'} skipped: "
              f"{', '.join(map(str, bad[:5]))}{', ...' if len(bad) > 5 else ''}", file=sys.stderr)
        return 1
    return 0


def add_parser(sub) -> None:
    from .model_args import add_mode_arg, add_runtime_args

    p = sub.add_parser("predict", help="segment images and videos with a checkpoint or a converted model",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("images", nargs="+", help="image files, videos (.mp4, .avi, ...) or folders of images")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--weights", help="CenterMask2 / cmlite checkpoint (.pth), run in PyTorch; 'default' or "
                                       "nothing: the embedded default model")
    src.add_argument("--model", help="a converted model folder (from `cmlite convert`), run without PyTorch")
    p.add_argument("--save-vis", metavar="DIR", help="write a picture with the instances drawn per image (in its "
                                                     "own format: JPEG stays JPEG), and an overlaid .webm per video")
    p.add_argument("--vis-thresh", type=float, default=0.3, help="score threshold for drawing (default 0.3)")
    p.add_argument("--json", metavar="OUT", help="write COCO-format results (RLE masks; extra fields mask_score and "
                                                 "file_name, and frame for videos)")
    add_mode_arg(p)
    add_runtime_args(p)
    p.set_defaults(func=cmd_predict)
