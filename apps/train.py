"""`cmlite train`: train a CenterMask-Lite variant on a COCO-format dataset (the loop is lite/train.py)."""
from __future__ import annotations

from .model_args import need_torch


def cmd_train(args) -> None:
    need_torch("cmlite train")
    import torch

    from cmlite.converters.folders import check_dir_path
    from cmlite.lite.checkpoint import resolve_weights
    from cmlite.lite.train import TrainConfig, train

    check_dir_path(args.out)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = TrainConfig(variant=args.variant, min_size=args.min_size, max_size=args.max_size, iters=args.iters,
                      batch=args.batch, lr=args.lr, seed=args.seed, maskiou=not args.no_maskiou,
                      warmup=min(args.warmup, args.iters), ckpt_every=args.ckpt_every,
                      init=None if args.init is None else str(resolve_weights(args.init)))
    final = train(cfg, args.data, args.images, args.out, resume=args.resume)
    print(f"trained model: {final}")


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a CenterMask-Lite variant on a COCO-format dataset",
                       description="Writes OUT/model_final.pth (official layout + metadata), OUT/last.pth "
                                   "(resumable) and OUT/train_log.jsonl.")
    p.add_argument("--data", required=True, help="COCO annotations (instances_train.json)")
    p.add_argument("--images", required=True, help="folder of the training images")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--variant", default="V-19-slim-dw-eSE", help="model variant (default V-19-slim-dw-eSE)")
    p.add_argument("--min-size", type=int, default=320, help="train/test short side (default 320)")
    p.add_argument("--max-size", type=int, default=533, help="train/test long side cap (default 533)")
    p.add_argument("--iters", type=int, default=3000, help="training iterations (default 3000)")
    p.add_argument("--batch", type=int, default=8, help="images per iteration (default 8)")
    p.add_argument("--lr", type=float, default=2e-3, help="AdamW peak learning rate, cosine decay (default 2e-3)")
    p.add_argument("--warmup", type=int, default=200, help="linear warm-up iterations (default 200)")
    p.add_argument("--seed", type=int, default=0, help="random seed of weights and data order (default 0)")
    p.add_argument("--ckpt-every", type=int, default=250, help="write OUT/last.pth every N iterations (default 250)")
    p.add_argument("--no-maskiou", action="store_true", help="train without the MaskIoU head")
    p.add_argument("--init", metavar="WEIGHTS", help="start from these weights ('default': the embedded model; "
                   "an official CenterMask2 checkpoint; layers that depend on the classes start fresh when the "
                   "dataset's classes differ) instead of random ones (default: random)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pth")
    p.add_argument("--threads", type=int, help="CPU threads")
    p.set_defaults(func=cmd_train)
