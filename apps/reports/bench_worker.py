"""One bench row's process: loads one model at one thread count and test size, then answers the parent's
commands over a pipe (spawned, so each row has its own thread pools and its own peak memory).

Commands: ("load",) -> ("ok", info) | ("error", line); ("run", image index) -> ("ok", sample);
("throughput", mode, count) -> ("ok", {images_per_s, latency_ms} | {skipped}); ("streams", n, mode, count) -> ("tick",)*
("ok", {images_per_s, per_stream_images_per_s, slowest_of_mean, latency_ms}); ("eval", ann, images, limit) -> ("tick",)*
then ("ok", metrics) | ("error", line); ("stop",).
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field


@dataclass
class RowSpec:
    """What one process runs: a converted folder (kind "model") or a checkpoint in PyTorch (kind "weights")."""
    kind: str
    source: str
    threads: int
    size: tuple[int, int | None] | None = None  # (min_size, max_size or None: the model's); None: the model's
    overrides: dict = field(default_factory=dict)
    maskiou: bool = True  # False: graph 2 without the MaskIoU head
    backend: str | None = None  # the runtime for a folder (None: its own target)

    def config_overrides(self) -> dict:
        out = dict(self.overrides)
        if self.size:
            out["min_size"] = self.size[0]
            if self.size[1]:
                out["max_size"] = self.size[1]
        return out


def _proc_status_mb(key: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return round(int(line.split()[1]) / 1024, 1)  # kB
    except OSError:
        pass
    return None


def peak_rss_mb() -> float | None:
    """This process's peak resident memory so far. Linux: VmHWM, which starts afresh at exec (ru_maxrss would
    carry the parent's peak over into a spawned child); elsewhere ru_maxrss (macOS bytes)."""
    hwm = _proc_status_mb("VmHWM")
    if hwm is not None:
        return hwm
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)


def rss_mb() -> float | None:
    """Resident memory now (Linux); elsewhere the peak so far."""
    now = _proc_status_mb("VmRSS")
    return now if now is not None else peak_rss_mb()


def _one_line(e: BaseException) -> str:
    from cmlite.runtimes.errors import CmliteError

    text = str(e) if isinstance(e, CmliteError) else f"{type(e).__name__}: {e}"
    return " ".join(text.split())


def _load(spec: RowSpec):
    """(segmenter, info about the model) for the spec."""
    from pathlib import Path

    if spec.kind == "weights":
        from cmlite import lite

        model = lite.load_model(spec.source)
        seg = lite.predictor(model, threads=spec.threads, maskiou=spec.maskiou, **spec.config_overrides())
        path = Path(lite.resolve_weights(spec.source))
        info = {"variant": model.variant.name, "target": "pytorch", "precision": "fp32",
                "size_mb": round(path.stat().st_size / 2**20, 2), "path": str(path)}
    else:
        from cmlite import runtimes

        seg = runtimes.load(spec.source, threads=spec.threads, maskiou=spec.maskiou, backend=spec.backend,
                            **spec.config_overrides())
        m, folder = seg.manifest, Path(spec.source)
        on_server = not folder.is_dir()  # triton://HOST:PORT/NAME: the graphs' files are the server's
        info = {"variant": m.model.get("variant"), "target": m.target, "precision": m.precision,
                "size_mb": None if on_server else round(m.size_bytes(folder) / 2**20, 2),
                "path": spec.source if on_server else str(folder)}
    cfg = seg.config
    info.update(device=seg.device, size=[cfg.min_size, cfg.max_size], maskiou=getattr(seg, "maskiou", True),
                input_hw=list(seg.fixed_hw) if seg.fixed_hw else None)
    return seg, info


def throughput(seg, images: list, mode: str, count: int, on_image=None) -> dict:
    """A stream of `count` images (cycling through `images`) in one runtimes/modes/ mode: images per second from
    the first result to the last (frames over seconds, the pipeline's filling left out), and the median latency
    from take to result. A backend without replicas gives {"skipped": why} for throughput."""
    from cmlite.runtimes.modes import can_replicate, stream
    from cmlite.runtimes.rate import frames_per_second

    if mode == "throughput" and not can_replicate(seg):
        return {"skipped": f"{seg.device} has no throughput mode"}
    done, latency = [], []
    for _, job in stream(seg, ((i, images[i % len(images)]) for i in range(count)), mode):
        done.append(time.perf_counter())
        latency.append((done[-1] - job.t_taken) * 1e3)
        if on_image:
            on_image()
    rate = frames_per_second(done)
    return {"images_per_s": None if rate is None else round(rate, 3),
            "latency_ms": round(sorted(latency)[len(latency) // 2], 3)}


def streams(seg, images: list, n: int, mode: str, count: int, on_image=None) -> dict:
    """n streams of `count` images each (stream k cycles through `images` from image k), served in turn through
    one runner in `mode` (sequential: the latency mode; throughput: lanes, runtimes/modes/throughput.py): images per
    second in total from the first result to the last, each stream's images per second, and the latency from take
    to result over all images. A backend without replicas gives {"skipped": why} for throughput."""
    from cmlite.runtimes.modes import can_replicate, runner
    from cmlite.runtimes.rate import frames_per_second, per_second

    from ..latency_stats import summarize

    if mode == "throughput" and not can_replicate(seg):
        return {"skipped": f"{seg.device} has no throughput mode"}
    left = [count] * n
    turn = [0]

    def take(_timeout):
        for k in range(n):
            i = (turn[0] + k) % n
            if left[i]:
                j = count - left[i]
                left[i] -= 1
                turn[0] = i + 1
                return (i, j), images[(i + j) % len(images)]
        raise StopIteration

    run = runner(seg, take, mode)
    done: list[list[float]] = [[] for _ in range(n)]
    latency = []
    try:
        while True:
            try:
                item = run.next(5.0)
            except StopIteration:
                break
            if item is None:
                continue
            (i, _), job = item
            now = time.perf_counter()
            done[i].append(now)
            latency.append((now - job.t_taken) * 1e3)
            if on_image:
                on_image()
    finally:
        run.close()
    first, last = min(d[0] for d in done), max(d[-1] for d in done)
    per = [frames_per_second(d) for d in done]
    known = [p for p in per if p]
    lat = summarize(latency, digits=2)
    total = per_second(n * count - 1, last - first)
    return {"streams": n, "mode": run.describe(),
            "images_per_s": None if total is None else round(total, 3),
            "per_stream_images_per_s": [None if p is None else round(p, 3) for p in per],
            "slowest_of_mean": round(min(known) / (sum(known) / len(known)), 3) if known else None,
            "latency_ms": {k: lat[k] for k in ("p50", "p90", "p99")}}


def worker(conn, spec: RowSpec, image_paths: list[str]) -> None:
    """The process body (multiprocessing spawn target)."""
    import signal

    from cmlite.runtimes.images import read_bgr

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops the rows

    seg, images = None, []
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        cmd = msg[0]
        if cmd == "stop":
            conn.close()
            return
        try:
            if cmd == "load":
                rss_before = rss_mb()
                images = [read_bgr(p) for p in image_paths]
                t0 = time.perf_counter()
                seg, info = _load(spec)
                load_ms = (time.perf_counter() - t0) * 1e3
                t0 = time.perf_counter()
                seg.predict(images[0])
                cold_ms = (time.perf_counter() - t0) * 1e3
                conn.send(("ok", {**info, "load_ms": round(load_ms, 2), "cold_ms": round(cold_ms, 2),
                                  "rss_before_load_mb": rss_before}))
            elif cmd == "run":
                image = images[msg[1] % len(images)]
                t0 = time.perf_counter()
                inst = seg.predict(image)
                total = (time.perf_counter() - t0) * 1e3
                conn.send(("ok", {"total": total, "stages": dict(seg.timings), "cpu": dict(seg.cpu_timings),
                                  "instances": len(inst),
                                  "peak_rss_mb": peak_rss_mb()}))
            elif cmd == "throughput":
                conn.send(("ok", throughput(seg, images, msg[1], msg[2], on_image=lambda: conn.send(("tick",)))))
            elif cmd == "streams":
                conn.send(("ok", streams(seg, images, msg[1], msg[2], msg[3], on_image=lambda: conn.send(("tick",)))))
            elif cmd == "eval":
                from cmlite.calibration.coco_eval import evaluate

                _, ann, image_dir, limit = msg
                metrics, _ = evaluate(seg, ann, image_dir, limit=limit, progress=False,
                                      on_image=lambda: conn.send(("tick",)))
                conn.send(("ok", metrics))
            else:
                conn.send(("error", f"unknown command {cmd!r}"))
        except Exception as e:  # the parent reports it in this row and goes on with the others
            conn.send(("error", _one_line(e)))
