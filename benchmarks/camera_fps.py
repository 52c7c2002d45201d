"""Live fps and latency of `cmlite camera` per --mode, against the graphs' bound, side by side.

Each configuration runs the real app (`cmlite camera --headless --stats`) in its own process; configurations are
interleaved round by round so that all share the machine's noise, and medians over the rounds are reported.
Two sources:
  - video: a pre-rendered clip played frame by frame (every frame, not paced; no rendering on the same cores):
    throughput, the fps a device sustains;
  - synth: the moving scene as a 30 fps virtual camera, newest frame only: what a webcam user sees, latency
    included. Its rendering (about 6 ms a frame) runs on the same cores as the model.

The graph bound is 1000 / (graph 1 p50 + graph 2 p50). "in run": the graphs' own p50s in that run (host work on
the other threads slows them); "alone": the p50s of the sequential run of the same model, where each graph ran
with the cores to itself. CPU is the process's CPU time over the run's wall time (cores busy, of the usable).

    python benchmarks/camera_fps.py --model out/onnx-int8 --model out/openvino-int8 [--frames 300] [--rounds 3]
                                    [--threads 2] [--modes sequential,overlap,auto] [--sources video]
                                    [--maskiou off,on] [--before /path/to/older/checkout]

--before also runs another checkout's camera (e.g. a git worktree of an older commit), sequential and with
its --pipeline when it has one, interleaved with the rest.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from checkouts import checkout_env

REPO = Path(__file__).resolve().parents[1]


def _camera_help(checkout: Path) -> str:
    """`cmlite camera --help` of a checkout: which flags its app has."""
    return subprocess.run([sys.executable, "-m", "cmlite.apps.cli", "camera", "--help"], cwd=checkout,
                          capture_output=True, text=True, env=checkout_env(checkout)).stdout


def _run(config: tuple, source: str, args, stats: Path) -> dict:
    code, model, _, mode, maskiou = config
    flag = ["--weights", model[len("weights:"):]] if model.startswith("weights:") else ["--model", model]
    cmd = [sys.executable, "-m", "cmlite.apps.cli", "camera", "--source", source, *flag, "--headless", "--frames",
           str(args.frames), "--stats", str(stats), "--threads", str(args.threads)]
    checkout = Path(args.before).resolve() if code == "before" else REPO
    if code == "before" and "--mode" not in _camera_help(checkout):  # an app before --mode: --pipeline or nothing
        cmd += ["--pipeline"] if mode == "pipeline" else []
    else:
        cmd += ["--mode", mode, "--maskiou", maskiou]
    cmd += ["--loop"] if not source.startswith("synth") else []
    cmd += ["--min-size", str(args.min_size)] if args.min_size else []
    cmd += ["--max-size", str(args.max_size)] if args.max_size else []
    subprocess.run(cmd, cwd=checkout, check=True, capture_output=True, env=checkout_env(checkout))
    s = json.loads(stats.read_text())
    s.setdefault("mode", "pipeline" if s.get("pipeline") else "sequential")
    return s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", default=[], help="converted model folder (repeat)")
    ap.add_argument("--weights", action="append", default=[], help="checkpoint run in PyTorch (repeat)")
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--min-size", type=int)
    ap.add_argument("--max-size", type=int)
    ap.add_argument("--modes", default="sequential,overlap,auto")
    ap.add_argument("--sources", default="video,synth")
    ap.add_argument("--maskiou", default="off", help="comma list of on, off: the camera's --maskiou (default off)")
    ap.add_argument("--before", help="another checkout of cmlite to run beside this one")
    ap.add_argument("--json")
    args = ap.parse_args()
    from cmlite.apps.device_info import cpu_line
    from cmlite.apps.table import format_table
    from cmlite.calibration.synth_scene import write_clip

    models = args.model + [f"weights:{w}" for w in args.weights]
    modes = args.modes.split(",")
    tmp = Path(tempfile.mkdtemp(prefix="camera_fps_"))
    video = tmp / "scene.avi"
    write_clip(video, 120, seed=3)  # played in a loop
    sources = {"video": str(video), "synth": "synth"}
    configs = [("after", m, s, mode, iou) for m in models for s in args.sources.split(",")
               for iou in args.maskiou.split(",") for mode in modes]
    if args.before and "--mode" in _camera_help(Path(args.before).resolve()):  # the same runs as this checkout's
        configs += [("before", *c[1:]) for c in configs]
    elif args.before:  # an app before --mode: sequential or --pipeline, always with the MaskIoU head
        configs += [("before", m, s, mode, "on") for m in models for s in args.sources.split(",")
                    for mode in ("sequential", "pipeline")]
    runs: dict = {c: [] for c in configs}
    for r in range(args.rounds):
        for c in configs:
            runs[c].append(_run(c, sources[c[2]], args, tmp / "stats.json"))
            print(f"round {r + 1}/{args.rounds} {c[0]} {Path(c[1]).name} {c[2]} {c[3]} maskiou {c[4]}: "
                  f"{runs[c][-1]['fps_mean']} fps ({runs[c][-1]['mode']})", file=sys.stderr)

    def med(v, f):
        return statistics.median(f(x) for x in v)

    summary = {}
    for c, v in runs.items():
        graphs = med(v, lambda x: x["stages_ms_p50"]["graph1"] + x["stages_ms_p50"]["graph2"])
        summary[c] = {"fps": med(v, lambda x: x["fps_mean"]), "lat_p50": med(v, lambda x: x["latency_ms"]["p50"]),
                      "lat_p90": med(v, lambda x: x["latency_ms"]["p90"]), "bound_in_run": 1e3 / graphs,
                      "cpu": med(v, lambda x: x.get("cpu_load") or 0), "modes": [x["mode"] for x in v],
                      "device": v[0]["device"], "input": v[0]["input"]}
    rows, report = [], []
    for (code, m, s, mode, iou), x in summary.items():
        base = summary.get((code, m, s, "sequential", iou), {})
        alone, seq = base.get("bound_in_run"), base.get("fps")
        rows.append([Path(m).name, x["input"], s, code, mode, iou, x["fps"], x["lat_p50"], x["lat_p90"],
                     x["bound_in_run"], f"{100 * x['fps'] / x['bound_in_run']:.0f}%", alone,
                     f"{100 * x['fps'] / alone:.0f}%" if alone else "", f"{x['fps'] / seq:.2f}x" if seq else "",
                     f"{100 * x['cpu']:.0f}%" if x["cpu"] else ""])
        report.append({"model": m, "source": s, "code": code, "mode": mode, "maskiou": iou, **x, "bound_alone": alone})
    print(format_table(["model", "input", "source", "code", "mode", "maskiou", "fps", "lat p50", "lat p90",
                        "bound in run", "of it", "bound alone", "of it", "vs seq.", "CPU"], rows, floatfmt=".1f"))
    print(f"{args.frames} frames per run, median of {args.rounds} interleaved rounds, {args.threads} threads; latency "
          f"in ms, capture (video: the app taking the frame) to display\nCPU: {cpu_line()}")
    for c, x in summary.items():
        if c[3] == "auto":
            print(f"auto on {Path(c[1]).name} / {c[2]} / maskiou {c[4]}: " + "; ".join(x["modes"]))
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu": cpu_line(), "runs": report}, indent=2))


if __name__ == "__main__":
    main()
