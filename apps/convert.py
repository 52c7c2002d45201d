"""`cmlite convert`: a checkpoint into model folders for ONNX Runtime, OpenVINO, TFLite and TensorRT (the work
itself is converters/convert.py)."""
from __future__ import annotations

import sys
import time

from .model_args import (add_size_args, add_targets_arg, comma_list, config_overrides, load_model, need_torch,
                         parse_hw)
from .table import plural


def cmd_convert(args) -> None:
    need_torch("cmlite convert", extra="convert")
    from cmlite.converters.folders import check_dir_path

    check_dir_path(args.out)
    from cmlite.converters.convert import convert, plan

    fixed = parse_hw(args.input_size)
    targets, precisions = comma_list(args.targets), comma_list(args.precision)
    plan(targets, precisions)  # fail on a bad target before loading anything
    model = load_model(args.weights)
    overrides = config_overrides(args)
    overrides.pop("score_thresh", None)
    if overrides:
        model.config = model.config.with_(**overrides)
    t0 = time.perf_counter()
    from cmlite import lite

    folders = convert(model, args.out, targets, precisions, fixed_hw=fixed, source=lite.resolve_weights(args.weights),
                      log=lambda m: print(m, file=sys.stderr), overwrite=args.overwrite)
    from cmlite.runtimes.manifest import read_manifest

    from .table import format_table

    rows = []
    for f in folders:
        m = read_manifest(f)
        size = m.size_bytes(f)
        hw = "x".join(map(str, m.fixed_hw)) if m.fixed_hw else "dynamic"
        rows.append([f.name, m.target, m.precision, hw, f"{size / 2**20:.1f} MB", str(f)])
    print(format_table(["model", "target", "precision", "input", "size", "folder"], rows))
    print(f"converted {plural(len(folders), 'model')} in {time.perf_counter() - t0:.0f} s")


def add_parser(sub) -> None:
    p = sub.add_parser("convert", help="convert a checkpoint for ONNX Runtime, OpenVINO, TFLite and TensorRT",
                       description="Writes OUT/<target>-<precision>/ with the graphs and manifest.json per pair.")
    p.add_argument("--weights", default="default", help="CenterMask2 / cmlite checkpoint (.pth); default: the "
                                                        "embedded default model")
    add_targets_arg(p, " (TensorRT: ONNX graphs and profiles; the engines are built on the device with "
                       "`cmlite build-engine`)")
    p.add_argument("--precision", default="fp32,fp16", help="comma list of fp32, fp16, bf16 (OpenVINO only) (default fp32,fp16; int8: "
                                                           "`cmlite quantize`)")
    p.add_argument("--input-size", metavar="HxW", help="fixed graph input size (TFLite always has one; "
                   "default for it: a 4:3 frame at the test size, e.g. 608x800)")
    add_size_args(p, "the manifest")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace <target>-<precision> folders already in --out")
    p.set_defaults(func=cmd_convert, score_thresh=None)
