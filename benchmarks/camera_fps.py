"""fps and end-to-end latency of `cmlite camera`, with and without --pipeline, side by side.

Each configuration runs the real app (`cmlite camera --headless --stats`) in its own process; configurations
are interleaved round by round so that all share the machine's noise, and medians over the rounds are
reported with the pipelining gain. Two sources:
  - a video file played frame by frame (no drops): throughput, the fps a device sustains;
  - synth (a 30 fps virtual camera, newest frame only): what a webcam user sees, latency included.

    python benchmarks/camera_fps.py --model out/onnx-fp32 --model out/openvino-int8 [--weights CKPT]
                                    [--frames 60] [--rounds 3] [--threads 2] [--min-size 320 --max-size 533]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _video(path: Path, frames: int) -> None:
    import cv2

    from calibration.synth_scene import MovingScene

    scene = MovingScene(640, 480, seed=3)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (640, 480))
    for i in range(frames):
        writer.write(scene.render(i / 30))
    writer.release()


def _run(model: str, source: str, pipeline: bool, args, stats: Path) -> dict:
    flag = ["--weights", model[len("weights:"):]] if model.startswith("weights:") else ["--model", model]
    cmd = [sys.executable, "-m", "apps.cli", "camera", "--source", source, *flag, "--headless", "--frames",
           str(args.frames), "--stats", str(stats), "--threads", str(args.threads)]
    cmd += ["--pipeline"] if pipeline else []
    cmd += ["--min-size", str(args.min_size)] if args.min_size else []
    cmd += ["--max-size", str(args.max_size)] if args.max_size else []
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True)
    return json.loads(stats.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", default=[], help="converted model folder (repeat)")
    ap.add_argument("--weights", action="append", default=[], help="checkpoint run in PyTorch (repeat)")
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--min-size", type=int)
    ap.add_argument("--max-size", type=int)
    ap.add_argument("--sources", default="video,synth")
    ap.add_argument("--json")
    args = ap.parse_args()
    from apps.device_info import cpu_line
    from apps.table import format_table

    models = args.model + [f"weights:{w}" for w in args.weights]
    tmp = Path(tempfile.mkdtemp(prefix="camera_fps_"))
    video = tmp / "scene.avi"
    _video(video, args.frames + 5)
    sources = {"video": str(video), "synth": "synth"}
    configs = [(m, s, p) for m in models for s in args.sources.split(",") for p in (False, True)]
    runs: dict = {c: [] for c in configs}
    for r in range(args.rounds):
        for c in configs:
            runs[c].append(_run(c[0], sources[c[1]], c[2], args, tmp / "stats.json"))
            print(f"round {r + 1}/{args.rounds} {Path(c[0]).name} {c[1]} {'pipelined' if c[2] else 'sequential'}: "
                  f"{runs[c][-1]['fps_mean']} fps", file=sys.stderr)
    rows, report = [], []
    med = {c: {k: statistics.median(x[k] for x in v) for k in ("fps_mean", "fps_p50")} |
           {f"lat_{q}": statistics.median(x["latency_ms"][q] for x in v) for q in ("p50", "p90", "p99")} |
           {"graph1": statistics.median(x["stages_ms_p50"]["graph1"] for x in v),
            "graph2": statistics.median(x["stages_ms_p50"]["graph2"] for x in v)} for c, v in runs.items()}
    for (m, s, p), v in med.items():
        base = med[(m, s, False)]["fps_mean"]
        rows.append([Path(m).name, runs[(m, s, p)][0]["device"], runs[(m, s, p)][0]["input"], s,
                     "yes" if p else "no", v["fps_mean"], v["lat_p50"], v["lat_p90"], v["lat_p99"], v["graph1"],
                     v["graph2"], f"{v['fps_mean'] / base:.2f}x"])
        report.append({"model": m, "source": s, "pipeline": p, **v, "device": runs[(m, s, p)][0]["device"]})
    print(format_table(["model", "device", "input", "source", "pipelined", "fps", "lat p50", "lat p90", "lat p99",
                        "graph1 ms", "graph2 ms", "vs seq."], rows, floatfmt=".1f"))
    print(f"{args.frames} frames per run, median of {args.rounds} interleaved rounds, {args.threads} threads; "
          f"latency in ms, capture to display\nCPU: {cpu_line()}")
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu": cpu_line(), "runs": report}, indent=2))


if __name__ == "__main__":
    main()
