"""`cmlite data synth`: the deterministic synthetic COCO shapes dataset (calibration/synth.py)."""
from __future__ import annotations



def cmd_data_synth(args) -> None:
    from cmlite.calibration.synth import generate
    from cmlite.converters.folders import check_dir_path

    check_dir_path(args.out)
    summary = generate(args.out, args.train, args.val, args.size, args.seed, overwrite=args.overwrite)
    print(f"wrote {summary['train']['images']} train images ({summary['train']['instances']} instances) and "
          f"{summary['val']['images']} val images ({summary['val']['instances']} instances) to {args.out} "
          f"in {summary['seconds']:.1f} s")


def add_parser(sub) -> None:
    p = sub.add_parser("data", help="datasets: `cmlite data synth` writes a synthetic COCO dataset")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    p = data_sub.add_parser("synth", help="a deterministic synthetic instance segmentation dataset (COCO format)",
                            description="Writes OUT/train/, OUT/val/ and OUT/annotations/instances_{train,val}.json.")
    p.add_argument("--out", required=True, help="output folder (train/, val/, annotations/)")
    p.add_argument("--train", type=int, default=2000, help="training images (default 2000)")
    p.add_argument("--val", type=int, default=200, help="validation images (default 200)")
    p.add_argument("--size", type=int, default=320, help="image side in pixels (default 320)")
    p.add_argument("--seed", type=int, default=0, help="random seed; val images depend only on it (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace a dataset previously written there")
    p.set_defaults(func=cmd_data_synth)
