"""Per-stage time and the non-graph share of end to end, for this checkout and (optionally) another one, side by side.

Each (checkout, model) runs in its own process: load, warm up, then `--runs` predictions of one image, the
median of each stage (Segmenter.timings) and of the whole predict() reported. Processes of all pairs are
interleaved round by round, so before and after share the machine's noise; the table gives medians over rounds.
The non-graph share is (preprocess + host + paste) / end to end.

    python benchmarks/stage_shares.py --model out/openvino-int8 --image frame.png --threads 2 \\
                                      [--before /path/to/old/checkout] [--runs 40] [--rounds 3]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from checkouts import checkout_env
from cmlite.runtimes.pipeline import STAGES

REPO = Path(__file__).resolve().parents[1]
WORKER = """
import json, sys, time, statistics
import cv2

from cmlite import runtimes
model, image, threads, runs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
seg = runtimes.load(model, threads=threads)
img = cv2.imread(image)
for _ in range(3):
    seg.predict(img)
stages, totals = {}, []
for _ in range(runs):
    t0 = time.perf_counter()
    inst = seg.predict(img)
    totals.append((time.perf_counter() - t0) * 1e3)
    for k, v in seg.timings.items():
        stages.setdefault(k, []).append(v)
print(json.dumps({"total": statistics.median(totals), "instances": len(inst),
                  **{k: statistics.median(v) for k, v in stages.items()}}))
"""


def _run(checkout: Path, model: str, args) -> dict:
    env = checkout_env(checkout)
    out = subprocess.run([sys.executable, "-c", WORKER, model, args.image, str(args.threads), str(args.runs)],
                         cwd=checkout, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True, help="converted model folder (repeat)")
    ap.add_argument("--image", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--before", help="another checkout of cmlite (e.g. a git worktree of an older commit)")
    ap.add_argument("--json")
    args = ap.parse_args()
    from cmlite.apps.device_info import cpu_line
    from cmlite.apps.table import format_table

    checkouts = {"after": REPO} | ({"before": Path(args.before).resolve()} if args.before else {})
    pairs = [(v, m) for m in args.model for v in checkouts]
    got: dict = {p: [] for p in pairs}
    for r in range(args.rounds):
        for v, m in pairs:
            got[(v, m)].append(_run(checkouts[v], m, args))
            print(f"round {r + 1}/{args.rounds} {v} {Path(m).name}: {got[(v, m)][-1]['total']:.1f} ms", file=sys.stderr)
    rows, report = [], []
    for (v, m), runs in got.items():
        med = {k: statistics.median(x[k] for x in runs) for k in (*STAGES, "total")}
        host = med["preprocess"] + med["host"] + med["paste"]
        rows.append([Path(m).name, v, *(med[k] for k in STAGES), med["total"], host,
                     f"{100 * host / med['total']:.1f}%", runs[0]["instances"]])
        report.append({"model": m, "version": v, **med, "non_graph_ms": host, "instances": runs[0]["instances"]})
    print(format_table(["model", "code", *STAGES, "end to end", "non-graph", "share", "dets"], rows, floatfmt=".2f"))
    print(f"{args.image}, {args.threads} threads, median of {args.runs} predictions per process, median of "
          f"{args.rounds} interleaved rounds\nCPU: {cpu_line()}")
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu": cpu_line(), "rows": report}, indent=2))


if __name__ == "__main__":
    main()
