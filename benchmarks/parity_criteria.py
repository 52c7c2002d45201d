"""The figures `cmlite parity` judges, over a whole validation set: what the PASS criteria (apps/parity.py CRITERIA)
were set from. Each model against the PyTorch model on every image (the reference run once per image and input
size), pooled as the verdict pools them, and per image (the spread a one-image run sees).

    python benchmarks/parity_criteria.py --model out/models/onnx-int8 --model out/models/tflite-int8 \\
        --images out/data/val [--weights default] [--limit 200] [--json parity_criteria.json]
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from cmlite import lite, runtimes
from cmlite.apps.parity import CRITERIA, compare, judge
from cmlite.apps.table import format_table
from cmlite.runtimes.images import IMAGE_SUFFIXES, read_bgr


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", required=True)
    p.add_argument("--images", required=True)
    p.add_argument("--weights", default="default")
    p.add_argument("--limit", type=int)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json")
    p.add_argument("--min-score", type=float, help="another floor for the instances that count (cmlite parity's)")
    args = p.parse_args(argv)
    files = sorted(f for f in Path(args.images).iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)[:args.limit]
    reference = lite.predictor(lite.load_model(args.weights), threads=args.threads)
    cache: dict = {}  # (image, input) -> the reference's (instances, trace)
    rows, out = [], {}
    for folder in args.model:
        seg = runtimes.load(folder, threads=args.threads)
        precision, results = seg.manifest.precision, []
        for i, f in enumerate(files):
            img = read_bgr(f)
            key = (f, seg.fixed_hw)
            if key not in cache:
                reference.fixed_hw = seg.fixed_hw
                trace: dict = {}
                cache[key] = (reference.predict(img, trace), trace)
            results.append(compare(cache[key], seg, img, precision))
            print(f"\r{Path(folder).name}: {i + 1}/{len(files)}", end="", file=sys.stderr)
        print(file=sys.stderr)
        v = judge(results, precision, args.min_score)
        per_image = [judge([r], precision, args.min_score).figures for r in results]
        judged = [x for x in per_image if x["instances"]]
        spread = {k: (float(np.nanmin([x[k] for x in judged])) if judged else float("nan"))
                  for k in ("found_share", "median_mask_iou", "low_mask_iou", "low_box_iou")}
        spread["score_diff"] = float(np.nanmax([x["score_diff"] for x in judged])) if judged else float("nan")
        spread["new_share"] = float(max(x["new_share"] for x in judged)) if judged else float("nan")
        alone = [judge([r], precision, args.min_score) for r in results]
        fails = sum(not a.passed for a in alone if a.judged)
        out[str(folder)] = {"precision": precision, "pooled": v.figures, "verdict": v.word, "failed": v.failed,
                            "worst_image": spread, "images_failing_alone": fails, "images_judged": len(judged)}
        f_ = v.figures
        rows.append([Path(folder).name, precision, len(files), f"{f_['found']}/{f_['instances']}", f_["new"],
                     f_["at_cap"],
                     f_["median_mask_iou"], f_["low_mask_iou"], f_["low_box_iou"], f_["score_diff"], v.word,
                     f"{spread['found_share']:.2f} / {spread['low_mask_iou']:.2f} / {spread['score_diff']:.3f}",
                     f"{fails}/{len(judged)}"])
        print(rows[-1], flush=True)  # each model as it is done
    print(format_table(["model", "precision", "images", "found", "new", "at the cap", "median mask IoU", "p10 mask IoU",
                        "p10 box IoU", "p90 |dscore|", "verdict", "worst image: found / p10 mask / p90 dscore",
                        "images failing alone"], rows, floatfmt=".3f"))
    for precision in dict.fromkeys(v["precision"] for v in out.values()):
        c = CRITERIA[precision] if args.min_score is None else replace(CRITERIA[precision], min_score=args.min_score)
        print(f"{precision} PASS: {c.describe()}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
