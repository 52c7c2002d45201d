"""End-to-end latency per stage of eager PyTorch and converted models, side by side.

Every (model, thread count) pair runs once per round, in turn, so all share the machine's noise;
medians over the rounds are reported, with the ratio to the first model at the same thread count.

    python benchmarks/latency.py --image IMG [--weights CKPT] [--model DIR ...] [--threads 1,2]
                                 [--rounds 10] [--min-size 600 --max-size 1000] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from apps.table import format_table  # noqa: E402
from runtimes.pipeline import Segmenter  # noqa: E402


def load_all(args) -> list[tuple[str, int, Segmenter]]:
    overrides = {"min_size": args.min_size, "max_size": args.max_size}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    threads = [int(t) for t in args.threads.split(",")]
    out = []
    if args.weights:
        import lite

        model = lite.load_model(args.weights)
        out += [("pytorch-fp32", t, lite.predictor(model, threads=t, **overrides)) for t in threads]
    import runtimes

    for folder in args.model or []:
        out += [(Path(folder).name, t, runtimes.load(folder, threads=t, **overrides)) for t in threads]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", required=True)
    ap.add_argument("--weights")
    ap.add_argument("--model", action="append")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--min-size", type=int)
    ap.add_argument("--max-size", type=int)
    ap.add_argument("--json")
    args = ap.parse_args()
    img = cv2.imread(args.image)
    runs = load_all(args)
    samples = {(n, t): {k: [] for k in (*Segmenter.STAGES, "total")} for n, t, _ in runs}
    counts = {}
    for r in range(args.warmup + args.rounds):
        for name, t, seg in runs:
            t0 = time.perf_counter()
            inst = seg.predict(img)
            total = (time.perf_counter() - t0) * 1e3
            counts[name, t] = len(inst)
            if r >= args.warmup:
                for k, v in seg.timings.items():
                    samples[name, t][k].append(v)
                samples[name, t]["total"].append(total)
        print(f"round {r + 1}/{args.warmup + args.rounds}", file=sys.stderr, end="\r")
    med = {key: {k: statistics.median(v) for k, v in s.items()} for key, s in samples.items()}
    base = {t: med[runs[0][0], t]["total"] for _, t, _ in runs}
    rows = [[name, t, counts[name, t], *(med[name, t][k] for k in (*Segmenter.STAGES, "total")),
             f"{base[t] / med[name, t]['total']:.2f}x"] for name, t, _ in runs]
    cfg = runs[0][2].config
    print(f"\n{img.shape[1]}x{img.shape[0]} image at {cfg.min_size}/{cfg.max_size}; median ms of {args.rounds} "
          f"interleaved rounds; speed-up vs {runs[0][0]} at the same threads")
    print(format_table(["model", "threads", "inst", *Segmenter.STAGES, "total", "speed-up"], rows, floatfmt=".1f"))
    if args.json:
        Path(args.json).write_text(json.dumps([{"model": n, "threads": t, **med[n, t]} for n, t, _ in runs], indent=2))


if __name__ == "__main__":
    main()
