"""Several `cmlite camera` clients against one Triton server: what serving costs per frame, and the total fps.

The model folder is exported with --backend python (the pip server's only backend) into a temporary repository,
served by `cmlite triton serve` on loopback ports, and measured two ways:
  1. per frame, the same clip frames run here and through triton:// one after the other (interleaved): graph 1 and
     graph 2 as the client sees them, against the same graphs in-process, and against the server's own compute
     (Triton's statistics: queue + input + infer + output): the difference is gRPC, serialisation and copies;
  2. N camera clients (`cmlite camera --headless --stats`, one process each, the clip played frame by frame) at
     once, N in --clients, beside one in-process camera on the folder itself; rounds interleaved, medians.

    python benchmarks/triton_clients.py --model out/models/openvino-int8 --clip out/data/clip.avi \\
        [--clients 1,2,4] [--frames 150] [--rounds 3] [--threads 2] [--instances 1] [--out DIR]
"""
from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(repo: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "cmlite.apps.cli", "triton", "serve", str(repo), "--grpc",
                             f"127.0.0.1:{port}", "--http", "off", "--metrics", "off"], cwd=REPO,
                            stdout=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if "Ctrl-C stops it" in line:
            return proc
    raise SystemExit(f"the server did not start (status {proc.wait()})")


def server_ms(client, model: str) -> tuple[float, int]:
    """The server's own time for a model so far (queue + input + infer + output), in ms, and the request count."""
    s = client.get_inference_statistics(model, as_json=True)["model_stats"][0]["inference_stats"]
    ns = sum(int(s[k].get("ns", 0)) for k in ("queue", "compute_input", "compute_infer", "compute_output"))
    return ns / 1e6, int(s["success"].get("count", 0))


def per_frame(folder: str, url: str, clip: str, frames: int, threads: int) -> dict:
    import cv2
    import tritonclient.grpc as grpcclient

    from cmlite import runtimes

    local = runtimes.load(folder, threads=threads, maskiou=False)
    remote = runtimes.load(url, maskiou=False)  # as the camera runs: the server's graph 2 without the MaskIoU head
    remote_iou = runtimes.load(url, maskiou=True)  # graph 2 with it (what every request ran before the server
    #                                                could leave the head out)
    cap, images = cv2.VideoCapture(clip), []
    while len(images) < frames:
        ok, img = cap.read()
        if not ok:
            break
        images.append(img)
    for img in images[:5]:  # warm-up
        local.predict(img), remote.predict(img), remote_iou.predict(img)
    client = grpcclient.InferenceServerClient(url.split("/")[2])
    name = url.rsplit("/", 1)[1]
    t = {k: [] for k in ("local_g1", "local_g2", "remote_g1", "remote_g2", "local_frame", "remote_frame",
                         "remote_g2_with_maskiou")}
    for img in images:  # interleaved: here, through the server, and through it with graph 2's MaskIoU head
        t0 = time.perf_counter()
        local.predict(img)
        t1 = time.perf_counter()
        remote.predict(img)
        t2 = time.perf_counter()
        remote_iou.predict(img)
        t["local_frame"].append((t1 - t0) * 1e3)
        t["remote_frame"].append((t2 - t1) * 1e3)
        t["local_g1"].append(local.timings["graph1"])
        t["local_g2"].append(local.timings["graph2"])
        t["remote_g1"].append(remote.timings["graph1"])
        t["remote_g2"].append(remote.timings["graph2"])
        t["remote_g2_with_maskiou"].append(remote_iou.timings["graph2"])
    before = {g: server_ms(client, f"{name}_{g}") for g in ("dense", "masks")}
    for img in images:  # the server's own time for the camera's requests alone (Triton's statistics)
        remote.predict(img)
    after = {g: server_ms(client, f"{name}_{g}") for g in ("dense", "masks")}
    server = {g: (after[g][0] - before[g][0]) / max(1, after[g][1] - before[g][1]) for g in after}
    med = {k: round(statistics.median(v), 2) for k, v in t.items()}
    h, w = images[0].shape[:2]
    pre = local.config
    return {**med, "frames": len(images), "server_g1_mean": round(server["dense"], 2),
            "server_g2_mean": round(server["masks"], 2),
            "client_graphs_mean": round(statistics.mean(t["remote_g1"]) + statistics.mean(t["remote_g2"]), 2),
            "serving_ms": round(med["remote_g1"] + med["remote_g2"] - med["local_g1"] - med["local_g2"], 2),
            "clip_hw": [h, w], "min_size": pre.min_size}


def camera(model: str, clip: str, frames: int, threads: int, stats: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cmlite.apps.cli", "camera", "--model", model, "--source", clip,
                             "--headless", "--frames", str(frames), "--stats", str(stats), "--threads", str(threads),
                             "--mode", "sequential"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)


def clients_round(url: str, folder: str, clip: str, n: int | None, frames: int, threads: int, tmp: Path) -> dict:
    """n clients at once on the server (n None: one camera on the folder itself): total and per-client fps."""
    count = n or 1
    paths = [tmp / f"stats-{n}-{i}.json" for i in range(count)]
    procs = [camera(url if n else folder, clip, frames, threads, p) for p in paths]
    for p in procs:
        if p.wait():
            raise SystemExit(f"a camera client failed: {p.stderr.read()[-500:]}")
    stats = [json.loads(p.read_text()) for p in paths]
    fps = [s["fps_mean"] for s in stats]
    return {"total_fps": round(sum(fps), 2), "client_fps": fps,
            "latency_p50": round(statistics.median(s["latency_ms"]["p50"] for s in stats), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--clip", required=True)
    ap.add_argument("--clients", default="1,2,4")
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--instances", type=int, default=1)
    ap.add_argument("--out")
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    from cmlite.apps.device_info import cpu_line
    from cmlite.converters.triton_repo import export

    counts = [int(c) for c in args.clients.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        [name] = export([args.model], tmp / "repo", backend="python", threads=args.threads,
                        instances=args.instances, log=lambda m: None)
        port = free_port()
        server = start_server(tmp / "repo", port)
        url = f"triton://127.0.0.1:{port}/{name}"
        try:
            frame = per_frame(args.model, url, args.clip, args.frames, args.threads)
            runs: dict[str, list] = {}
            for r in range(args.rounds):
                for n in [None, *counts]:
                    key = "local" if n is None else f"{n} client{'s' if n > 1 else ''}"
                    runs.setdefault(key, []).append(clients_round(url, args.model, args.clip, n, args.frames,
                                                                  args.threads, tmp))
                    print(f"round {r + 1}: {key}: {runs[key][-1]}", file=sys.stderr)
        finally:
            server.terminate()
            server.wait(60)
    rows = {k: {"total_fps": round(statistics.median(x["total_fps"] for x in v), 2),
                "slowest_client_fps": round(statistics.median(min(x["client_fps"]) for x in v), 2),
                "latency_p50_ms": round(statistics.median(x["latency_p50"] for x in v), 1)} for k, v in runs.items()}
    report = {"model": args.model, "cpu": cpu_line(), "threads": args.threads, "instances": args.instances,
              "frames": args.frames, "rounds": args.rounds, "per_frame": frame, "clients": rows, "runs": runs}
    lines = [f"# Triton clients: {Path(args.model).name}", "", f"CPU: {report['cpu']}; server model threads "
             f"{args.threads}, {args.instances} instance(s) per graph; camera clients sequential, "
             f"{args.frames} clip frames each; medians of {args.rounds} interleaved rounds.", "",
             "| per frame (ms, median) | graph 1 | graph 2 | frame |", "|---|---|---|---|",
             f"| in-process | {frame['local_g1']} | {frame['local_g2']} | {frame['local_frame']} |",
             f"| through triton:// | {frame['remote_g1']} | {frame['remote_g2']} | {frame['remote_frame']} |",
             f"| through triton://, graph 2 with the MaskIoU head | | {frame['remote_g2_with_maskiou']} | |",
             f"| server's own (mean) | {frame['server_g1_mean']} | {frame['server_g2_mean']} | |", "",
             f"Serving costs {frame['serving_ms']} ms a frame over in-process graphs (median); of the client's "
             f"mean graph time {frame['client_graphs_mean']} ms, the server's own is "
             f"{round(frame['server_g1_mean'] + frame['server_g2_mean'], 2)} ms.", "",
             "| run | total fps | slowest client fps | latency p50 ms |", "|---|---|---|---|"]
    lines += [f"| {k} | {v['total_fps']} | {v['slowest_client_fps']} | {v['latency_p50_ms']} |"
              for k, v in rows.items()]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "triton_clients.json").write_text(json.dumps(report, indent=2) + "\n")
        (out / "triton_clients.md").write_text(text)


if __name__ == "__main__":
    main()
