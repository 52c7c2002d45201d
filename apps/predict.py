"""`cmlite predict`: segment images; a line per image, pictures (--save-vis) and COCO results (--json).

A batch finishes: an image that cannot be read is reported and skipped, the others are drawn and written, and
the command exits with status 1 naming the bad ones."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from runtimes.errors import CmliteError, ImageError

from .atomic import check_file_path, write_json_atomic
from .model_args import config_overrides, segmenter


def check_images(paths: list[str]) -> list[Path]:
    """Files and folders -> image paths; a path that does not exist stops before any model loads."""
    from .images import expand_images

    images = expand_images(paths)
    for p in images:
        if not p.is_file():
            raise CmliteError(f"image not found: {p}")
    return images


def cmd_predict(args) -> int:
    import cv2
    from tqdm import tqdm

    from converters.folders import check_dir_path

    from .coco_results import image_ids, to_coco_results
    from .images import read_bgr
    from .visualize import draw

    images = check_images(args.images)
    if not 0 <= args.vis_thresh <= 1:
        raise CmliteError(f"--vis-thresh {args.vis_thresh}: give a score in [0, 1], e.g. 0.3")
    vis_dir = check_dir_path(args.save_vis, "--save-vis") if args.save_vis else None
    json_path = check_file_path(args.json, "--json")
    first = read_bgr(images[0]) if len(images) == 1 else None  # one image: a bad one stops before the model loads
    seg = segmenter(args, **config_overrides(args))
    print(f"model: {seg.device}")
    results, used, bad = [], set(), []
    for path, image_id in tqdm(list(zip(images, image_ids(images))), desc="predict", unit="img",
                               disable=len(images) < 2, file=sys.stderr):
        try:
            img = first if first is not None else read_bgr(path)
        except ImageError as e:
            bad.append(path)
            tqdm.write(f"{path}: skipped: {e}", file=sys.stderr)
            continue
        t0 = time.perf_counter()
        inst = seg.predict(img)
        ms = (time.perf_counter() - t0) * 1e3
        results += to_coco_results(inst, image_id, seg.category_ids, file_name=str(path))
        top = ", ".join(f"{inst.label(i)} {inst.scores[i]:.2f}" for i in range(min(3, len(inst))))
        line = f"{path}: {len(inst)} instances in {ms:.0f} ms" + (f" ({top}{', ...' if len(inst) > 3 else ''})"
                                                                  if len(inst) else "")
        if vis_dir:
            name = path.stem
            while name in used:
                name += "_"
            used.add(name)
            vis_dir.mkdir(parents=True, exist_ok=True)  # only once there is a picture to put in it
            out = vis_dir / f"{name}.png"
            if not cv2.imwrite(str(out), draw(img, inst, min_score=args.vis_thresh)):
                raise CmliteError(f"cannot write {out}: check that the folder is writable")
            line += f" -> {out}"
        tqdm.write(line, file=sys.stdout)
    good = len(images) - len(bad)
    if json_path and good:
        write_json_atomic(json_path, results)
        print(f"wrote {len(results)} results for {good} images to {json_path}")
    if bad:
        print(f"cmlite: {len(bad)} of {len(images)} images could not be read and were skipped: "
              f"{', '.join(map(str, bad[:5]))}{', ...' if len(bad) > 5 else ''}", file=sys.stderr)
        return 1
    return 0


def add_parser(sub) -> None:
    from .model_args import add_runtime_args

    p = sub.add_parser("predict", help="segment images with a checkpoint or a converted model",
                       description="Segment images. Prints a line per image; writes pictures and COCO results. "
                                   "Unreadable images are skipped and reported (exit status 1).")
    p.add_argument("images", nargs="+", help="image files or folders of images")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--weights", help="CenterMask2 / cmlite checkpoint (.pth), run in PyTorch; 'default' or "
                                       "nothing: the embedded default model")
    src.add_argument("--model", help="a converted model folder (from `cmlite convert`), run without PyTorch")
    p.add_argument("--save-vis", metavar="DIR", help="write a picture with the instances drawn per image")
    p.add_argument("--vis-thresh", type=float, default=0.3, help="score threshold for drawing (default 0.3)")
    p.add_argument("--json", metavar="OUT", help="write COCO-format results (RLE masks; extra fields mask_score and "
                                                 "file_name)")
    add_runtime_args(p)
    p.set_defaults(func=cmd_predict)
