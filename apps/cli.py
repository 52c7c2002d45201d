"""The `cmlite` command."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from runtimes.errors import CmliteError


def _load_torch_segmenter(weights: str, threads: int | None, **overrides):
    try:
        import torch  # noqa: F401
    except ImportError:
        raise CmliteError("--weights needs PyTorch, which is not installed: pip install 'cmlite[torch]' "
                          "(or run a converted model with --model DIR)") from None
    import lite

    return lite.predictor(lite.load_model(weights), threads=threads, **overrides)


def cmd_predict(args) -> None:
    import cv2
    from tqdm import tqdm

    from .coco_results import image_ids, to_coco_results
    from .images import expand_images, read_bgr
    from .visualize import draw

    images = expand_images(args.images)
    for p in images:  # fail before loading the model on a missing file
        if not p.is_file():
            raise CmliteError(f"image not found: {p}")
    overrides = {k: v for k, v in (("min_size", args.min_size), ("max_size", args.max_size),
                                   ("score_thresh", args.score_thresh)) if v is not None}
    seg = _load_torch_segmenter(args.weights, args.threads, **overrides)
    category_ids = seg.model.category_ids
    results, used = [], set()
    ids = image_ids(images)
    vis_dir = Path(args.save_vis) if args.save_vis else None
    if vis_dir:
        vis_dir.mkdir(parents=True, exist_ok=True)
    for path, image_id in tqdm(list(zip(images, ids)), desc="predict", unit="img", disable=len(images) < 2,
                               file=sys.stderr):
        img = read_bgr(path)
        t0 = time.perf_counter()
        inst = seg.predict(img)
        ms = (time.perf_counter() - t0) * 1e3
        results += to_coco_results(inst, image_id, category_ids)
        top = ", ".join(f"{inst.label(i)} {inst.scores[i]:.2f}" for i in range(min(3, len(inst))))
        line = f"{path}: {len(inst)} instances in {ms:.0f} ms" + (f" ({top}{', ...' if len(inst) > 3 else ''})"
                                                                  if len(inst) else "")
        if vis_dir:
            name = path.stem
            while name in used:
                name += "_"
            used.add(name)
            out = vis_dir / f"{name}.png"
            if not cv2.imwrite(str(out), draw(img, inst, min_score=args.vis_thresh)):
                raise CmliteError(f"cannot write {out}: check that the folder is writable")
            line += f" -> {out}"
        tqdm.write(line, file=sys.stdout)
    if args.json:
        _write_json_atomic(Path(args.json), results)
        print(f"wrote {len(results)} results for {len(images)} images to {args.json}")


def _write_json_atomic(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(json.dumps(obj))
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cmlite", description="CenterMask-Lite on the edge: convert, run, measure.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("predict", help="segment images with a checkpoint",
                       description="Segment images. Prints a line per image; writes pictures and COCO results.")
    p.add_argument("images", nargs="+", help="image files or folders of images")
    p.add_argument("--weights", required=True, help="CenterMask2 / cmlite checkpoint (.pth)")
    p.add_argument("--save-vis", metavar="DIR", help="write a picture with the instances drawn per image")
    p.add_argument("--vis-thresh", type=float, default=0.3, help="score threshold for drawing (default 0.3)")
    p.add_argument("--json", metavar="OUT", help="write COCO-format results (RLE masks, mask_score extra field)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    p.add_argument("--min-size", type=int, help="test size: short side (default 600, the official Lite setting)")
    p.add_argument("--max-size", type=int, help="test size: long side cap (default 1000)")
    p.add_argument("--score-thresh", type=float, help="detection threshold (default 0.05, as the official model)")
    p.set_defaults(func=cmd_predict)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except CmliteError as e:
        print(f"cmlite: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cmlite: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
