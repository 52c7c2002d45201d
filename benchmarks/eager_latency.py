"""Eager PyTorch latency of a checkpoint on one image, per stage, at several thread counts.

Thread counts are interleaved run by run so that they share the machine's noise; medians are reported.

    python benchmarks/eager_latency.py --weights CKPT --image IMG [--threads 1,2] [--runs 15] [--min-size 600]
"""
from __future__ import annotations

import argparse
import statistics
import time

import cv2
import torch

import lite
from runtimes.pipeline import Segmenter


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", required=True)
    ap.add_argument("--image", required=True)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--min-size", type=int, default=600)
    ap.add_argument("--max-size", type=int, default=1000)
    args = ap.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    img = cv2.imread(args.image)
    seg = lite.predictor(lite.load_model(args.weights), min_size=args.min_size, max_size=args.max_size)
    samples = {t: {k: [] for k in (*Segmenter.STAGES, "total")} for t in threads}
    for i in range(args.warmup + args.runs):
        for t in threads:
            torch.set_num_threads(t)
            t0 = time.perf_counter()
            inst = seg.predict(img)
            total = (time.perf_counter() - t0) * 1e3
            if i >= args.warmup:
                for k, v in seg.timings.items():
                    samples[t][k].append(v)
                samples[t]["total"].append(total)
    print(f"{seg.model.variant.name} at {args.min_size}/{args.max_size}, {img.shape[1]}x{img.shape[0]} image, "
          f"{len(inst)} instances, torch {torch.__version__}, median of {args.runs} runs (ms)")
    cols = (*Segmenter.STAGES, "total")
    print("threads | " + " | ".join(f"{c:>10}" for c in cols))
    for t in threads:
        print(f"{t:>7} | " + " | ".join(f"{statistics.median(samples[t][c]):10.1f}" for c in cols))
    if len(threads) == 2:
        a, b = (statistics.median(samples[t]["total"]) for t in threads)
        print(f"speed-up {threads[0]} -> {threads[1]} threads: {a / b:.2f}x")


if __name__ == "__main__":
    main()
