"""Per-stage time, wall and CPU, and the non-graph share of a frame, for this checkout and (optionally) another one,
side by side.

Each (checkout, model) runs in its own process: load, warm up, then `--runs` predictions of one image, each drawn
as the camera draws it, the median of each stage's wall time (Segmenter.timings) and of its thread's CPU time
(measured by the worker itself, so that an older checkout is measured alike), and of the whole. Processes of all
pairs are interleaved round by round, so before and after share the machine's noise; the table gives medians over
rounds. The non-graph share is (preprocess + host + paste + draw) / (the frame's predict and draw).

    python benchmarks/stage_shares.py --model out/openvino-int8 --image frame.png --threads 2 \\
                                      [--before /path/to/old/checkout] [--fast-resize] [--runs 40] [--rounds 3]
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
from cmlite.apps import visualize
model, image, threads, runs, resize = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
seg = runtimes.load(model, threads=threads, maskiou=False)  # as the camera runs it
if resize != "exact":
    seg.resize = resize  # an older checkout has no such choice: it runs its one resize
img = cv2.imread(image)
cpu = {}

def timed(name, fn):  # each stage's CPU time, measured here so that every checkout is measured alike
    def run(job):
        c0 = time.thread_time()
        fn(job)
        cpu.setdefault(name, []).append((time.thread_time() - c0) * 1e3)
    return run

for name in ("preprocess", "host", "paste"):
    setattr(seg, name, timed(name, getattr(seg, name)))
for _ in range(3):
    visualize.draw(img.copy(), seg.predict(img), min_score=0.5, inplace=True)
cpu.clear()
stages, totals = {}, []
for _ in range(runs):
    frame = img.copy()
    t0 = time.perf_counter()
    inst = seg.predict(frame)
    t1, c1 = time.perf_counter(), time.thread_time()
    visualize.draw(frame, inst, min_score=0.5, inplace=True)  # the camera's drawing of the instances
    stages.setdefault("draw", []).append((time.perf_counter() - t1) * 1e3)
    cpu.setdefault("draw", []).append((time.thread_time() - c1) * 1e3)
    totals.append((time.perf_counter() - t0) * 1e3)
    for k, v in seg.timings.items():
        stages.setdefault(k, []).append(v)
host_cpu = [sum(v[i] for v in cpu.values()) for i in range(runs)]
print(json.dumps({"total": statistics.median(totals), "instances": len(inst), "host_cpu": statistics.median(host_cpu),
                  **{k: statistics.median(v) for k, v in stages.items()},
                  **{f"cpu_{k}": statistics.median(v) for k, v in cpu.items()}}))
"""


def _run(checkout: Path, model: str, args, resize: str = "exact") -> dict:
    env = checkout_env(checkout)
    out = subprocess.run([sys.executable, "-c", WORKER, model, args.image, str(args.threads), str(args.runs),
                          resize],
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
    ap.add_argument("--fast-resize", action="store_true", help="also this checkout with --fast-resize's resize")
    ap.add_argument("--json")
    args = ap.parse_args()
    from cmlite.apps.device_info import cpu_line
    from cmlite.apps.table import format_table

    checkouts = ({"before": (Path(args.before).resolve(), "exact")} if args.before else {}) | \
        {"after": (REPO, "exact")} | ({"after, fast resize": (REPO, "fast")} if args.fast_resize else {})
    pairs = [(v, m) for m in args.model for v in checkouts]
    got: dict = {p: [] for p in pairs}
    for r in range(args.rounds):
        for v, m in pairs:
            got[(v, m)].append(_run(*checkouts[v][:1], m, args, checkouts[v][1]))
            print(f"round {r + 1}/{args.rounds} {v} {Path(m).name}: {got[(v, m)][-1]['total']:.1f} ms", file=sys.stderr)
    rows, report = [], []
    host_stages = ("preprocess", "host", "paste", "draw")
    for (v, m), runs in got.items():
        med = {k: statistics.median(x[k] for x in runs) for k in (*STAGES, "draw", "total", "host_cpu")}
        cpu = {k: statistics.median(x[f"cpu_{k}"] for x in runs) for k in host_stages}
        wall = sum(med[k] for k in host_stages)
        rows.append([Path(m).name, v, *(f"{med[k]:.2f} / {cpu[k]:.2f}" if k in cpu else f"{med[k]:.2f}"
                                        for k in (*STAGES, "draw")),
                     med["total"], med["host_cpu"], f"{100 * wall / med['total']:.1f}%", runs[0]["instances"]])
        report.append({"model": m, "version": v, **med, "cpu": cpu, "non_graph_ms": wall,
                       "instances": runs[0]["instances"]})
    print(format_table(["model", "code", *(f"{k} (wall / CPU)" if k in host_stages else k for k in (*STAGES, "draw")),
                        "end to end", "host CPU", "non-graph share", "dets"], rows, floatfmt=".2f"))
    print(f"{args.image}, {args.threads} threads, MaskIoU head off (the camera's), median of {args.runs} predictions "
          f"and drawings per process, median of {args.rounds} interleaved rounds; ms\nCPU: {cpu_line()}")
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu": cpu_line(), "rows": report}, indent=2))


if __name__ == "__main__":
    main()
