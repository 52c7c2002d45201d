"""`cmlite eval`: COCO box and mask AP of a checkpoint or a converted model (the evaluation itself is
calibration/coco_eval.py)."""
from __future__ import annotations

from pathlib import Path

from cmlite.runtimes.errors import CmliteError

from .atomic import check_file_path, write_json_atomic
from .model_args import add_fast_resize_arg, add_mode_arg, add_runtime_args, config_overrides, segmenter


def cmd_eval(args) -> None:
    from cmlite.calibration.coco_eval import evaluate

    from .table import format_table

    check_file_path(args.json, "--json")
    if args.limit is not None and args.limit < 1:
        raise CmliteError(f"--limit {args.limit}: give at least 1 image (or leave it out for every image)")
    seg = segmenter(args, **config_overrides(args))  # with --fast-resize's resize
    print(f"model: {seg.device}" + (" (OpenCV's fast resize)" if args.fast_resize else ""))
    metrics, _ = evaluate(seg, args.data, args.images, limit=args.limit, mode=args.mode)
    keys = ["mask_ap", "mask_ap50", "mask_ap75", "box_ap", "box_ap50", "box_ap75"]
    print(format_table([*keys, "images", "median ms", "images/s"],
                       [[*(metrics[k] for k in keys), metrics["images"], metrics["median_ms"], metrics["images_per_s"]]],
                       floatfmt=".1f"))
    if args.json:
        write_json_atomic(Path(args.json), {"model": args.model or args.weights or "default", "device": seg.device,
                                             "resize": seg.resize, **metrics})
        print(f"wrote {args.json}")


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="COCO box and mask AP of a checkpoint or a converted model",
                       description="Box and mask AP (pycocotools; mask AP ranked by the MaskIoU mask score).")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--weights", help="checkpoint (.pth), run in PyTorch; 'default' or nothing: the embedded "
                                       "default model")
    src.add_argument("--model", help="converted model folder")
    add_fast_resize_arg(p)
    p.add_argument("--data", required=True, help="COCO annotations (instances_*.json)")
    p.add_argument("--images", required=True, help="folder of the images the annotations name")
    p.add_argument("--limit", type=int, help="evaluate only the first N images")
    p.add_argument("--json", metavar="OUT", help="write the metrics (0-100 scale) as JSON")
    add_mode_arg(p)
    add_runtime_args(p)
    p.set_defaults(func=cmd_eval)
