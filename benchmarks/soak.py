"""Soak: `cmlite camera` for thousands of frames while recording and serving, with its memory and speed sampled.

The real app runs in its own process on a looped clip of the moving scene (every frame, not paced), with
`--record` (Motion JPEG, written as it runs), `--serve` on loopback and `--stats`, while this script keeps
  - three viewers reading /stream.mjpg,
  - one viewer that connects, asks for the stream and never reads (replaced by a fresh one every
    --stall-every seconds: the app drops it after its idle timeout), and
  - a poller of /stats.json (frames, fps, latency) and of the app's RSS (/proc/PID/status).
Every --every frames a sample is kept: RSS, the fps since the last sample, and the median and p90 of the
latencies polled since then.

Pass (exit status 0):
  - RSS grows at most --rss-limit MB after warm-up (the highest sample after --warmup frames against the
    sample at --warmup);
  - the fps of the last --window frames is within --fps-tolerance of the fps of the --window frames after
    warm-up (--fps-tolerance 0 leaves this check out);
  - the recording holds every frame (counted by reading the file back), --stats adds up (captured = taken +
    dropped + pending), and each reading viewer got frames.

    python benchmarks/soak.py --model out/openvino-int8 [--frames 10000] [--threads 2] [--out soak/]
                              [--streams 8 --mode throughput]   # 8 streams, --frames each

Writes soak.json, soak.md (the table) and soak.png (RSS and fps against frames, with matplotlib) to --out.
"""
from __future__ import annotations

import argparse
import json
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def rss_mb(pid: int) -> float | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    m = re.search(r"VmRSS:\s+(\d+) kB", text)
    return int(m.group(1)) / 1024 if m else None


class Viewer(threading.Thread):
    """Reads the MJPEG stream as a browser does, counting the pictures."""

    def __init__(self, url: str, stop: threading.Event):
        super().__init__(daemon=True)
        self.url, self.stop, self.frames, self.error = url, stop, 0, None

    def run(self) -> None:
        try:
            with urllib.request.urlopen(self.url, timeout=30) as r:
                marker, tail = b"Content-Type: image/jpeg", b""
                while not self.stop.is_set():
                    chunk = r.read(65536)
                    if not chunk:
                        break
                    buf = tail + chunk
                    self.frames += buf.count(marker)
                    tail = buf[-(len(marker) - 1):]  # too short to hold a whole marker: none counted twice
        except OSError as e:
            if not self.stop.is_set():
                self.error = str(e)


class Staller(threading.Thread):
    """A viewer that asks for the stream and never reads; a fresh one every `every` seconds."""

    def __init__(self, host: str, port: int, every: float, stop: threading.Event):
        super().__init__(daemon=True)
        self.addr, self.every, self.stop, self.connections = (host, port), every, stop, 0

    def run(self) -> None:
        while not self.stop.is_set():
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            try:
                s.connect(self.addr)
                s.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: soak\r\n\r\n")
                self.connections += 1
                self.stop.wait(self.every)
            except OSError:
                self.stop.wait(1.0)
            finally:
                s.close()


def _count_frames(path: Path) -> int:
    import cv2

    cap, n = cv2.VideoCapture(str(path)), 0
    while cap.grab():
        n += 1
    cap.release()
    return n


def _fps_between(polls: list[dict], a: int, b: int) -> float | None:
    """Frames per second from the first poll at or past frame a to the first at or past frame b."""
    pa = next((p for p in polls if p["frames"] >= a), None)
    pb = next((p for p in polls if p["frames"] >= b), polls[-1] if polls else None)  # the end: the last poll
    if not pa or not pb or pb["t"] <= pa["t"]:
        return None
    return (pb["frames"] - pa["frames"]) / (pb["t"] - pa["t"])


def _sample(p: dict, last: dict, latencies: list[float], viewers, staller) -> dict:
    dt = p["t"] - last["t"]
    lat = sorted(latencies)
    x = {"frames": p["frames"], "seconds": round(p["t"], 1), "rss_mb": round(p["rss_mb"], 1),
         "fps": round((p["frames"] - last["frames"]) / dt, 2) if dt > 0 else None,
         "latency_p50_ms": round(statistics.median(lat), 1) if lat else None,
         "latency_p90_ms": round(lat[int(0.9 * (len(lat) - 1))], 1) if lat else None,
         "viewer_frames": [v.frames for v in viewers], "stalled_viewers": staller.connections}
    print(f"  {x['frames']:>6} frames  {x['rss_mb']:7.1f} MB  {x['fps'] or 0:6.1f} fps  latency p50 "
          f"{x['latency_p50_ms']} ms", file=sys.stderr, flush=True)
    return x


def soak(args) -> dict:
    from cmlite.calibration.synth_scene import write_clip

    work = Path(tempfile.mkdtemp(prefix="cmlite_soak_"))
    clip = write_clip(work / "clip.avi", args.clip_frames, seed=5)
    rec, stats = work / "rec.avi", work / "stats.json"
    sources = [a for _ in range(args.streams) for a in ("--source", str(clip))]
    cmd = [sys.executable, "-m", "cmlite.apps.cli", "camera", *sources, "--loop", "--model", args.model,
           "--threads", str(args.threads), "--headless", "--frames", str(args.frames), "--record", str(rec),
           "--record-codec", "fast", "--serve", "127.0.0.1:0", "--stats", str(stats), "--mode", args.mode]
    print(" ".join(cmd), file=sys.stderr)
    app = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    url = None
    while url is None:
        line = app.stderr.readline()
        if not line:
            app.wait()
            raise SystemExit(f"the app ended before serving:\n{''.join(lines)}")
        lines.append(line)
        m = re.search(r"serving (http://127\.0\.0\.1:(\d+))/", line)
        url, port = (m.group(1), int(m.group(2))) if m else (None, None)
    threading.Thread(target=lambda: lines.extend(app.stderr), daemon=True).start()
    stop = threading.Event()
    viewers = [Viewer(f"{url}/stream.mjpg", stop) for _ in range(args.viewers)]
    staller = Staller("127.0.0.1", port, args.stall_every, stop)
    for v in viewers + [staller]:
        v.start()
    polls: list[dict] = []
    samples: list[dict] = []
    t0 = time.monotonic()
    next_sample = args.every
    last = {"frames": 0, "t": 0.0}
    lat_window: list[float] = []
    while app.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/stats.json", timeout=10) as r:
                s = json.load(r)
        except OSError:
            time.sleep(args.poll_s)
            continue
        frames = sum(x["frames"] for x in s["streams"]) if "streams" in s else s["frames"]  # all streams
        p = {"t": time.monotonic() - t0, "frames": frames, "rss_mb": rss_mb(app.pid),
             "latency_ms": s["latency_ms"]}
        polls.append(p)
        if p["latency_ms"] is not None:
            lat_window.append(p["latency_ms"])
        if p["frames"] >= next_sample and p["rss_mb"] is not None:
            samples.append(_sample(p, last, lat_window, viewers, staller))
            last, lat_window = p, []
            while next_sample <= p["frames"]:
                next_sample += args.every
        time.sleep(args.poll_s)
    stop.set()
    app.wait()
    if polls and polls[-1] is not last and polls[-1]["rss_mb"] is not None:  # the last poll before the end
        samples.append(_sample(polls[-1], last, lat_window, viewers, staller))
    summary = json.loads(stats.read_text()) if stats.is_file() else None
    recs = [rec] if args.streams == 1 else [rec.with_name(f"rec-{i}.avi") for i in range(args.streams)]
    recorded = [_count_frames(r) if r.is_file() else 0 for r in recs]
    recorded = recorded if args.streams > 1 else recorded[0]  # one stream: a count, as before
    result = {"command": cmd, "returncode": app.returncode, "samples": samples, "polls": polls, "summary": summary,
              "recorded_frames_read_back": recorded, "viewer_frames": [v.frames for v in viewers],
              "viewer_errors": [v.error for v in viewers if v.error], "stalled_viewers": staller.connections,
              "app_log_tail": lines[-20:]}
    for f in (clip, stats, *recs):
        f.unlink(missing_ok=True)
    work.rmdir()
    return result


def judge(result: dict, args) -> list[tuple[str, bool, str]]:
    """(check, passed, figures) for each pass condition."""
    summary, samples = result["summary"] or {}, result["samples"]
    streams = summary.get("streams") or [summary]  # one stream: the summary itself
    total = args.frames * args.streams
    shown = [x.get("frames") for x in streams]
    checks = [("the app ran to the end", result["returncode"] == 0 and shown == [args.frames] * args.streams,
               f"exit {result['returncode']}, {sum(f or 0 for f in shown)} of {total} frames"
               + (f" ({shown} per stream)" if args.streams > 1 else ""))]
    args = argparse.Namespace(**{**vars(args), "frames": total})  # the samples count the frames of every stream
    after = [x for x in samples if x["frames"] >= args.warmup]
    if after:
        growth = max(x["rss_mb"] for x in after) - after[0]["rss_mb"]
        checks.append((f"RSS after warm-up grows <= {args.rss_limit:g} MB", growth <= args.rss_limit,
                       f"{after[0]['rss_mb']:.1f} MB at frame {after[0]['frames']}, at most "
                       f"{max(x['rss_mb'] for x in after):.1f} MB after: +{growth:.1f} MB"))
    else:
        checks.append(("RSS sampled after warm-up", False, "no sample"))
    result["early_fps"] = _fps_between(result["polls"], args.warmup, args.warmup + args.window)
    result["late_fps"] = _fps_between(result["polls"], args.frames - args.window, args.frames)
    if args.fps_tolerance:
        e, late = result["early_fps"], result["late_fps"]
        ok = bool(e and late and abs(late / e - 1) <= args.fps_tolerance)
        checks.append((f"fps of the last {args.window} frames within {args.fps_tolerance:.0%} of frames "
                       f"{args.warmup}-{args.warmup + args.window}", ok,
                       f"{late or 0:.2f} against {e or 0:.2f} fps ({(late / e - 1) if e and late else 0:+.1%})"))
    back = result["recorded_frames_read_back"]
    back = back if isinstance(back, list) else [back]
    checks.append(("the recording holds every frame" + (" (one per stream)" if args.streams > 1 else ""),
                   back == [x.get("recorded_frames") for x in streams] == shown,
                   f"{back} read back, {[x.get('recorded_frames') for x in streams]} recorded, {shown} shown"))
    checks.append(("captured = taken + dropped + pending" + (" in every stream" if args.streams > 1 else ""),
                   all(x.get("captured") == x.get("taken", -1) + x.get("dropped", 0) + x.get("pending", 0)
                       for x in streams),
                   "; ".join(f"{x.get('captured')} = {x.get('taken')} + {x.get('dropped')} + {x.get('pending')}"
                             for x in streams)))
    if args.streams > 1:
        slowest = (summary.get("total") or {}).get("slowest_of_mean")
        checks.append(("the slowest stream gets >= 80% of the streams' mean fps", bool(slowest and slowest >= 0.8),
                       f"{slowest}"))
    checks.append(("every reading viewer got frames, without errors",
                   all(n > 0 for n in result["viewer_frames"]) and not result["viewer_errors"],
                   f"{result['viewer_frames']} pictures; {result['stalled_viewers']} never-reading viewers"
                   + (f"; errors: {result['viewer_errors']}" if result["viewer_errors"] else "")))
    return checks


def _markdown(result: dict, checks, cpu: str) -> str:
    from cmlite.apps.table import markdown_table

    rows = [[x["frames"], x["seconds"], x["rss_mb"], x["fps"], x["latency_p50_ms"], x["latency_p90_ms"],
             min(x["viewer_frames"]) if x["viewer_frames"] else "-", x["stalled_viewers"]] for x in result["samples"]]
    table = markdown_table(["frames", "s", "RSS MB", "fps", "latency p50 ms", "p90 ms", "viewer pictures (least)",
                            "never-readers"], rows)
    verdict = "\n".join(f"- {'PASS' if ok else 'FAIL'} {name}: {fig}" for name, ok, fig in checks)
    return f"# Soak\n\n`{' '.join(result['command'][2:])}`\n\nCPU: {cpu}\n\n{table}\n\n{verdict}\n"


def _plot(result: dict, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    x = [s["frames"] for s in result["samples"]]
    rss = [s["rss_mb"] for s in result["samples"]]
    settings = result["settings"]
    base = next((s["rss_mb"] for s in result["samples"] if s["frames"] >= settings["warmup"]), rss[0])
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot(x, rss, "o-", color="tab:blue")
    ax.axhline(base + settings["rss_limit"], color="tab:blue", lw=0.8, ls=":")  # the pass bound
    ax.set_ylim(min(min(rss), base) - settings["rss_limit"], max(max(rss), base) + 1.5 * settings["rss_limit"])
    ax.set_xlabel("frames")
    ax.set_ylabel("RSS (MB; dotted: the bound)", color="tab:blue")
    ax2 = ax.twinx()
    fps = [s["fps"] or 0 for s in result["samples"]]
    ax2.plot(x, fps, "s--", color="tab:orange")
    ax2.set_ylim(0, 1.3 * max(fps + [1]))
    ax2.set_ylabel("fps since the last sample", color="tab:orange")
    ax.set_title("cmlite camera soak: memory and speed")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="a converted model folder (INT8 for the README's figures)")
    ap.add_argument("--frames", type=int, default=10_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--every", type=int, default=500, help="frames between samples (default 500)")
    ap.add_argument("--warmup", type=int, default=1000, help="frames before memory and speed are judged")
    ap.add_argument("--window", type=int, default=2000, help="frames of each fps window (default 2000)")
    ap.add_argument("--rss-limit", type=float, default=10.0, help="MB of RSS growth allowed after warm-up")
    ap.add_argument("--fps-tolerance", type=float, default=0.10, help="0 leaves the fps check out")
    ap.add_argument("--viewers", type=int, default=3)
    ap.add_argument("--stall-every", type=float, default=20.0, help="seconds before a fresh never-reading viewer")
    ap.add_argument("--clip-frames", type=int, default=300, help="frames of the looped clip")
    ap.add_argument("--streams", type=int, default=1, help="the clip as this many streams at once; --frames each")
    ap.add_argument("--mode", default="auto", help="the camera's --mode (default auto)")
    ap.add_argument("--poll-s", type=float, default=0.2)
    ap.add_argument("--out", help="folder for soak.json, soak.md and soak.png")
    args = ap.parse_args(argv)
    from cmlite.apps.device_info import cpu_line

    result = soak(args)
    checks = judge(result, args)
    cpu = cpu_line()
    result.update(cpu=cpu, checks=[{"check": n, "passed": ok, "figures": f} for n, ok, f in checks],
                  settings=vars(args))
    md = _markdown(result, checks, cpu)
    print(md)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "soak.json").write_text(json.dumps(result, indent=1))
        (out / "soak.md").write_text(md)
        _plot(result, out / "soak.png")
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
