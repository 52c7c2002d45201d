"""Several sources in the camera app, total fps against one source, in the default mode.

For each model and N in --streams: `cmlite camera --source CLIP x N --headless --stats` (every frame of each clip
processed: files are played frame by frame), in its own process, rounds interleaved. Under --mode auto each N is
tuned first (`--tune --loop`: auto's trials, the choice remembered for this source kind and count), so the rounds
run the chosen mode as a user's second run does; the tuning runs are not counted. Reported: the total rate (all
frames over the seconds from the first shown to the last), its ratio to one source's, the slowest stream against
the mean, the mode that ran, and the spread over the rounds.

    python benchmarks/streams_live.py --model out/models/openvino-int8 [--streams 1,2,4] [--frames 160]
                                      [--rounds 3] [--threads 2] [--mode auto] [--json out.json]
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


def camera(model: str, clip: Path, n: int, args, stats: Path, *extra: str) -> dict:
    cmd = [sys.executable, "-m", "cmlite.apps.cli", "camera", "--model", model, "--headless", "--stats", str(stats),
           "--threads", str(args.threads), "--mode", args.mode, *extra]
    for _ in range(n):
        cmd += ["--source", str(clip)]
    subprocess.run(cmd, check=True, capture_output=True, env=os.environ)
    return json.loads(stats.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True)
    ap.add_argument("--streams", default="1,2,4")
    ap.add_argument("--frames", type=int, default=160, help="frames of the clip each source plays")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--mode", default="auto")
    ap.add_argument("--json")
    args = ap.parse_args()
    from cmlite.apps.device_info import cpu_line
    from cmlite.apps.table import format_table
    from cmlite.calibration.synth_scene import write_clip

    tmp = Path(tempfile.mkdtemp(prefix="streams_live_"))
    os.environ["CMLITE_CACHE"] = str(tmp / "cache")  # auto's choices of this run only
    clip = write_clip(tmp / "clip.avi", args.frames, seed=7)
    counts = [int(x) for x in args.streams.split(",")]
    runs: dict = {(m, n): [] for m in args.model for n in counts}
    if args.mode == "auto":
        for m, n in runs:
            s = camera(m, clip, n, args, tmp / "tune.json", "--tune", "--loop")
            print(f"{Path(m).name} x{n}: auto chose {s['auto']['chosen']} ({s['auto']['why']})", file=sys.stderr)
    for r in range(args.rounds):
        for m, n in runs:
            s = camera(m, clip, n, args, tmp / "s.json")
            total = s["total"] if n > 1 else {"fps_total": s["fps_mean"], "frames": s["frames"],
                                               "slowest_of_mean": 1.0}
            runs[m, n].append({"fps": total["fps_total"], "frames": total["frames"],
                               "slowest_of_mean": total["slowest_of_mean"], "running": s["running"],
                               "trial_frames": (s.get("auto") or {}).get("trial_frames")})
            print(f"round {r + 1}/{args.rounds} {Path(m).name} x{n}: {total['fps_total']} fps, {total['frames']} "
                  f"frames, {s['running']}", file=sys.stderr)
    rows = []
    for (m, n), v in runs.items():
        fps = [x["fps"] for x in v]
        one = statistics.median(x["fps"] for x in runs[m, counts[0]])
        rows.append([Path(m).name, n, statistics.median(fps), f"{min(fps):.1f}-{max(fps):.1f}",
                     f"{statistics.median(fps) / one:.2f}x", f"{100 * min(x['slowest_of_mean'] for x in v):.0f}%",
                     v[0]["frames"], v[-1]["running"], max(x["trial_frames"] or 0 for x in v)])
    print(format_table(["model", "sources", "fps in total", "rounds", f"vs {counts[0]}", "slowest of mean (worst)",
                        "frames", "mode", "trial frames"], rows, floatfmt=".1f"))
    print(f"\n{args.frames}-frame 640x480 clip per source, every frame processed, {args.rounds} interleaved rounds "
          f"(median), {args.threads} threads, --mode {args.mode}\nCPU: {cpu_line()}")
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu": cpu_line(), "rows": rows, "runs": {f"{k[0]} x{k[1]}": v
                                                                                           for k, v in runs.items()}},
                                              indent=1))


if __name__ == "__main__":
    main()
