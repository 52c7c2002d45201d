"""End-to-end latency per stage of eager PyTorch and converted models, side by side.

Each (model, thread count) runs in its own worker process (thread pools of different runtimes in one
process contend: on 2 cores that distorted the figures by up to 2.5x); the parent interleaves them run
by run, so all share the machine's noise. Medians over the rounds are reported, with the speed-up
over the first model at the same thread count.

    python benchmarks/latency.py --image IMG [--weights CKPT] [--model DIR ...] [--threads 1,2]
                                 [--rounds 10] [--min-size 600 --max-size 1000] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

STAGES = ("preprocess", "graph1", "host", "graph2", "paste")


def _worker(conn, kind: str, source: str, threads: int, image_path: str, overrides: dict) -> None:
    import cv2

    if kind == "weights":
        import lite

        seg = lite.predictor(lite.load_model(source), threads=threads, **overrides)
    else:
        import runtimes

        seg = runtimes.load(source, threads=threads, **overrides)
    img = cv2.imread(image_path)
    conn.send(seg.device)
    while conn.recv() == "run":
        t0 = time.perf_counter()
        inst = seg.predict(img)
        total = (time.perf_counter() - t0) * 1e3
        conn.send({**seg.timings, "total": total, "instances": len(inst)})
    conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", required=True)
    ap.add_argument("--weights")
    ap.add_argument("--model", action="append", default=[])
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--min-size", type=int)
    ap.add_argument("--max-size", type=int)
    ap.add_argument("--json")
    args = ap.parse_args()
    from apps.device_info import cpu_line
    from apps.table import format_table

    overrides = {k: v for k, v in (("min_size", args.min_size), ("max_size", args.max_size)) if v is not None}
    sources = ([("pytorch-fp32", "weights", args.weights)] if args.weights else []) + \
              [(Path(m).name, "model", m) for m in args.model]
    ctx = mp.get_context("spawn")
    workers = []
    for name, kind, src in sources:
        for t in (int(x) for x in args.threads.split(",")):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child, kind, src, t, args.image, overrides), daemon=True)
            proc.start()
            workers.append((name, t, parent, proc))
    devices = {(n, t): conn.recv() for n, t, conn, _ in workers}
    samples: dict = {(n, t): [] for n, t, _, _ in workers}
    for r in range(args.warmup + args.rounds):
        for name, t, conn, _ in workers:
            conn.send("run")
            result = conn.recv()
            if r >= args.warmup:
                samples[name, t].append(result)
        print(f"round {r + 1}/{args.warmup + args.rounds}", file=sys.stderr, end="\r")
    for _, _, conn, proc in workers:
        conn.send("stop")
        proc.join(timeout=10)
    keys = (*STAGES, "total")
    med = {k: {s: statistics.median(x[s] for x in v) for s in keys} for k, v in samples.items()}
    first = workers[0][0]
    rows = [[n, t, samples[n, t][-1]["instances"], *(med[n, t][s] for s in keys),
             f"{med[first, t]['total'] / med[n, t]['total']:.2f}x" if (first, t) in med else ""]
            for n, t, _, _ in workers]
    size = f"{overrides.get('min_size', 'default')}/{overrides.get('max_size', 'default')}"
    print(f"\n{args.image} at test size {size}; median ms of {args.rounds} interleaved rounds, one process per "
          f"row; speed-up vs {first} at the same threads\nCPU: {cpu_line()}")
    print(format_table(["model", "threads", "inst", *STAGES, "total", "speed-up"], rows, floatfmt=".1f"))
    if args.json:
        Path(args.json).write_text(json.dumps([{"model": n, "threads": t, "device": devices[n, t], **med[n, t]}
                                               for n, t, _, _ in workers], indent=2))


if __name__ == "__main__":
    main()
