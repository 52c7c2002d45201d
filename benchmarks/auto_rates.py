"""Auto's measured rates against each mode's own fixed run, and its choices, in one process per model.

For each model: `--runs` rounds, each an auto run (`cmlite camera --tune`'s code: its trials, nothing remembered
from before) followed by a fixed run of `--frames` frames in each mode (sequential, overlap, throughput), all on
the same looped 640x480 clip through the camera app (drawing and panel included), headless. Per mode:

- after: auto's rate as it measures it now, frames over the seconds of its trials (runtimes/rate.py);
- before: the same trials' results by the old formula, 1 / the median interval between consecutive results;
- fixed: the mode's own run, frames over seconds (its start included: a replica's first frames are slower);
- steady: the same run's median rate over its seconds (what auto's trials, past their warm-up, compare).

Auto's choice in each round is checked against the fixed runs' medians: right when its mode's fixed rate is the
fastest or within 3% of it. "two rounds only" applies today's rule to the first two trials of each mode (what auto
chose before a contested lead got more rounds); "old rule's choice" applies the old rule (the fastest by the old formula, 3% margin
over sequential, latency within two frames) to the same trials.

    python benchmarks/auto_rates.py --model out/models/openvino-int8 --model out/models/onnx-int8 \\
        --model out/models/tflite-int8 [--runs 10] [--frames 300] [--threads 2] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

MODES = ("sequential", "overlap", "throughput")


def one_model(model: str, clip: str, runs: int, frames: int, threads: int) -> dict:
    """Runs in a process of its own (see main): every auto and fixed run of one model."""
    import time
    from dataclasses import replace

    from cmlite import runtimes
    from cmlite.apps.camera.loop import CameraOptions, run_camera
    from cmlite.apps.camera.sources import open_source
    from cmlite.runtimes.modes import auto

    stamps: list[tuple[int, str, int, float]] = []  # (trial number, mode, results seen, time)
    count = auto.Auto._count

    def counting(self, job):  # each trial's result times, for the old formula
        trial = self._trial
        count(self, job)
        stamps.append((len(self.trials) - (self._trial is not trial), trial.mode, trial.seen, time.perf_counter()))

    auto.Auto._count = counting
    seg = runtimes.load(model, threads=threads, maskiou=False)
    quiet = CameraOptions(window=False, log=lambda m: None)
    out = {"auto": [], "fixed": {m: [] for m in MODES}, "steady": {m: [] for m in MODES}}
    for r in range(runs):
        stamps.clear()
        s = run_camera(seg, open_source(clip), replace(quiet, tune=True, loop=True),
                       threads=threads)
        a = s["auto"]
        old = {}
        for m in MODES:
            gaps = []
            for k in sorted({n for n, mode, _, _ in stamps if mode == m}):
                times = [t for n, mode, seen, t in stamps if n == k and seen > 3]
                gaps += [b - t for t, b in zip(times, times[1:])]
            old[m] = 1 / statistics.median(gaps) if gaps and statistics.median(gaps) > 0 else None
        first = {m: next(t for t in a["trials"] if t["mode"] == m) for m in MODES}
        two = [t for i, t in enumerate(a["trials"]) if sum(u["mode"] == t["mode"] for u in a["trials"][:i]) < 2]
        out["auto"].append({"chosen": a["chosen"], "why": a["why"], "modes": a["modes"], "old": old,
                            "two_rounds": auto.choose(auto.figures(two, MODES))[0], "trials": len(a["trials"]),
                            "old_latency_ms": {m: first[m]["latency_ms"] for m in MODES},
                            "trial_frames": a["trial_frames"]})
        for m in MODES:
            f = run_camera(seg, open_source(clip), replace(quiet, mode=m, loop=True, frames=frames), threads=threads)
            out["fixed"][m].append(f["fps_mean"])
            out["steady"][m].append(f["fps_per_second"]["p50"])  # its seconds after the lanes' first frames
        print(f"{Path(model).name} round {r + 1}/{runs}: auto chose {a['chosen']} "
              + ", ".join(f"{m} auto {a['modes'][m]['rate']:.1f} / fixed {out['fixed'][m][-1]:.1f}" for m in MODES),
              file=sys.stderr, flush=True)
    out["device"] = seg.device
    return out


def old_rule(rates: dict, latency_ms: dict) -> str:
    """The rule auto had before: the fastest, if 3% over sequential and within two of its frames' latency."""
    def ok(m):
        return m == "sequential" or (rates[m] >= 1.03 * rates["sequential"]
                                     and latency_ms[m] <= latency_ms["sequential"] + 2e3 / rates[m])
    return max(rates, key=lambda m: (ok(m), rates[m] if m != "sequential" else 1.03 * rates[m]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json")
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)  # model, result file: one model's process
    args = ap.parse_args()
    if args.worker:
        model, result = args.worker
        Path(result).write_text(json.dumps(one_model(model, os.environ["CLIP"], args.runs, args.frames,
                                                     args.threads)))
        return
    if not args.model:
        ap.error("give at least one --model")
    from cmlite.apps.device_info import cpu_line
    from cmlite.apps.table import format_table
    from cmlite.calibration.synth_scene import write_clip

    tmp = Path(tempfile.mkdtemp(prefix="auto_rates_"))
    clip = write_clip(tmp / "clip.avi", 240, seed=7)
    env = {**os.environ, "CLIP": str(clip), "CMLITE_CACHE": str(tmp / "cache")}  # nothing remembered between runs
    results = {}
    for model in args.model:
        result = tmp / "result.json"
        subprocess.run([sys.executable, __file__, "--worker", model, str(result), "--runs", str(args.runs),
                        "--frames", str(args.frames), "--threads", str(args.threads)], env=env, check=True)
        results[model] = json.loads(result.read_text())
    rows, choices = [], []
    for model, r in results.items():
        fixed = {m: statistics.median(v) for m, v in r["fixed"].items()}
        best = max(fixed.values())
        right = lambda m: fixed[m] >= 0.97 * best  # noqa: E731
        for m in MODES:
            new = statistics.median(a["modes"][m]["rate"] for a in r["auto"])
            old = statistics.median(a["old"][m] for a in r["auto"] if a["old"][m])
            steady = statistics.median(r["steady"][m]) if r.get("steady") else None
            rows.append([Path(model).name, m, fixed[m], f"{min(r['fixed'][m]):.1f}-{max(r['fixed'][m]):.1f}", steady,
                         new, f"{100 * (new / fixed[m] - 1):+.1f}%",
                         f"{100 * (new / steady - 1):+.1f}%" if steady else None, old,
                         f"{100 * (old / fixed[m] - 1):+.1f}%"])
        after = [a["chosen"] for a in r["auto"]]
        before = [old_rule(a["old"], a["old_latency_ms"]) for a in r["auto"]]
        two = [a["two_rounds"] for a in r["auto"] if "two_rounds" in a]
        choices.append([Path(model).name, max(fixed, key=fixed.get),
                        ", ".join(f"{m} {after.count(m)}" for m in MODES if after.count(m)),
                        f"{sum(map(right, after))}/{len(after)}",
                        ", ".join(f"{m} {two.count(m)}" for m in MODES if two.count(m)),
                        f"{sum(map(right, two))}/{len(two)}",
                        ", ".join(f"{m} {before.count(m)}" for m in MODES if before.count(m)),
                        f"{sum(map(right, before))}/{len(before)}",
                        statistics.median(a["trial_frames"] for a in r["auto"]),
                        f"{min(a['trials'] for a in r['auto'])}-{max(a['trials'] for a in r['auto'])}"])
    print(format_table(["model", "mode", "fixed fps", "fixed range", "fixed steady", "auto now", "vs fixed",
                        "vs steady", "auto before (1/median interval)", "vs fixed"], rows, floatfmt=".1f"))
    print()
    print(format_table(["model", "fastest fixed", "auto's choices now", "right (within 3%)",
                        "two rounds only (the previous rule)", "right", "old rule's choices",
                        "right", "trial frames", "trials"], choices, floatfmt=".0f"))
    print(f"\n{args.runs} rounds per model, each an auto run then a {args.frames}-frame run per mode, in one process; "
          f"a 240-frame 640x480 clip looped, {args.threads} threads, headless camera app\nCPU: {cpu_line()}")
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu": cpu_line(), "results": results, "table": rows,
                                               "choices": choices}, indent=1))


if __name__ == "__main__":
    main()
