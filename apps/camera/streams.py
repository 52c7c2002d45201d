"""`cmlite camera --source A --source B ...`: several sources through one model.

    summary = run_streams(seg, [open_source("a.mp4"), open_source("synth")], CameraOptions(window=False))

Each source has its own capture thread (a live one that stops is reopened on its own, the others go on), overlay,
counts and stats (apps/camera/loop.py's CameraRun, one per stream). One runner serves them all: its `take` gives
the streams their turns (the next one after the last served that has a frame), so no stream is starved; live
sources keep their newest frame and count what they drop, files lose none. In throughput mode
(runtimes/modes/throughput.py) the lanes work on frames of different streams at once. Outputs: the window as a grid,
`--record` one file per stream (OUT-0.webm, OUT-1.webm, ... or a name with `{i}`), `--serve` a page that tiles
the streams with one MJPEG route per stream (/stream/I.mjpg), `--stats` per stream and in total.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from cmlite.runtimes.errors import CmliteError
from cmlite.runtimes.pipeline import Segmenter
from cmlite.runtimes.rate import per_second

from .loop import IDLE_S, CameraOptions, CameraRun, Outputs, write_stats, make_runner, tuned
from .capture import EndOfSource
from ..latency_stats import summarize
from .overlay import draw_banner
from .sources import Source

GRID_WIDTH = 1280  # the window's grid, at most this wide


def record_path(template: str, i: int) -> str:
    """Stream i's recording: `{i}` in the name replaced, else `-i` before the suffix."""
    if "{i}" in template:
        return template.replace("{i}", str(i))
    p = Path(template)
    return str(p.with_name(f"{p.stem}-{i}{p.suffix}"))


class StreamTurns:
    """take(timeout) over several captures in turn; -> ((stream, frame), image), None when no frame came in time;
    EndOfSource when every stream ended or reached its frame limit."""

    def __init__(self, cams: list[CameraRun], limit: int | None, log):
        self.cams, self.limit, self.log = cams, limit, log
        self.ready = threading.Event()  # set by a capture thread when a frame arrives
        for cam in cams:
            cam.capture.ready = self.ready
        self.turn = 0
        self.taken = [0] * len(cams)
        self.ended: set[int] = set()  # streams that ended (a failure is logged when it happens)

    def _open(self, i: int) -> bool:
        return i not in self.ended and (self.limit is None or self.taken[i] < self.limit)

    def take(self, timeout: float):
        deadline = time.monotonic() + timeout
        n = len(self.cams)
        while True:
            self.ready.clear()
            for k in range(n):
                i = (self.turn + k) % n
                if not self._open(i):
                    continue
                try:
                    frame = self.cams[i].capture.get(0)
                except EndOfSource:
                    self.ended.add(i)
                    continue
                except CmliteError as e:  # this stream failed for good: the others go on
                    self.ended.add(i)
                    self.log(f"stream {i} ({self.cams[i].source.describe()}) stopped: {e}")
                    continue
                if frame is not None:
                    self.turn, self.taken[i] = i + 1, self.taken[i] + 1
                    return (i, frame), frame.image
            if not any(self._open(i) for i in range(n)):
                raise EndOfSource
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self.ready.wait(min(remaining, 0.05))


def _grid(tiles: list, shape: tuple[int, int]) -> np.ndarray:
    """The streams' latest pictures side by side (black where none came yet), at most GRID_WIDTH wide."""
    import cv2

    n = len(tiles)
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    h, w = shape
    scale = min(1.0, GRID_WIDTH / (cols * w))
    th, tw = max(int(h * scale), 1), max(int(w * scale), 1)
    out = np.zeros((rows * th, cols * tw, 3), np.uint8)
    for i, tile in enumerate(tiles):
        if tile is not None:
            r, c = divmod(i, cols)
            out[r * th:(r + 1) * th, c * tw:(c + 1) * tw] = cv2.resize(tile, (tw, th), interpolation=cv2.INTER_AREA)
    return out


def total_summary(summaries: list[dict], cams: list[CameraRun], seconds: float) -> dict:
    """Every stream together: frames and fps in total, the slowest stream against the mean, latency over all
    frames."""
    frames = sum(s["frames"] for s in summaries)
    shown = [cam.stats.t_display.values() for cam in cams if cam.stats.frames]
    first, last = (min(t[0] for t in shown), max(t[-1] for t in shown)) if shown else (0.0, 0.0)
    fps = [s["fps_mean"] or 0.0 for s in summaries]
    mean = sum(fps) / len(fps) if fps else 0.0
    latencies = np.concatenate([cam.stats.latency_ms.values() for cam in cams]) if cams else np.zeros(0)
    rate = per_second(frames - 1, last - first)  # the frames after the first, first to last shown
    return {"streams": len(summaries), "frames": frames, "seconds": round(seconds, 3),
            "fps_total": round(rate, 2) if rate is not None else None,
            "fps_per_stream_mean": round(mean, 2), "fps_per_stream_min": round(min(fps), 2) if fps else None,
            "slowest_of_mean": round(min(fps) / mean, 3) if mean else None,
            "latency_ms": {k: v for k, v in summarize(latencies, digits=2).items() if k != "std"},
            "dropped": sum(s["dropped"] for s in summaries), "captured": sum(s["captured"] for s in summaries),
            "failed": sum(s["failed"] for s in summaries), "reopens": sum(s["reopens"] for s in summaries),
            "cpu_load": summaries[0]["cpu_load"] if summaries else None}


def run_streams(seg: Segmenter, sources: list[Source], opts: CameraOptions, threads: int | None = None) -> dict:
    """Run until every source ended, --frames (per stream), --seconds, q/Esc or Ctrl-C. -> {"total": ...,
    "streams": [each stream's --stats summary], ...the model's info}."""
    n = len(sources)
    cams = [CameraRun(seg, s, replace(opts, frames=None), threads) for s in sources]
    per_stream = [replace(opts, window=False, serve=None, stats=None,
                          record=record_path(opts.record, i) if opts.record else None) for i in range(n)]
    outputs = [Outputs(o, s, cam.live_stats) for o, s, cam in zip(per_stream, sources, cams)]
    shared = Outputs(replace(opts, record=None), sources[0], lambda: _live(cams)) if opts.window or opts.serve \
        else None
    if shared is not None and shared.server is not None:
        shared.server.add_streams(n)
        opts.log("one picture per stream: " + ", ".join(shared.server.link(f"/stream/{i}.mjpg") for i in range(n)))
    turns = StreamTurns(cams, opts.frames, opts.log)
    reason, t0 = "done", time.perf_counter()
    run = None
    try:
        for cam in cams:
            cam.capture.start()
        run = make_runner(seg, turns.take, opts, sources, threads,
                          finish=lambda key, job: cams[key[0]].overlay(key[1], job))
        for cam in cams:
            cam.run = run
        reason = _loop(cams, run, outputs, shared, opts)
    except EndOfSource:
        reason = "every source ended" if len(turns.ended) == n else f"{opts.frames} frames per stream"
    except KeyboardInterrupt:
        reason = "interrupted"
    finally:
        seconds = time.perf_counter() - t0
        for cam in cams:
            cam.stats.stop()
        if run is not None:
            run.close()
        for cam in cams:
            cam.capture.stop()
        for out in outputs + ([shared] if shared else []):
            out.close()
    streams = [cam.summary(out, reason, i in turns.ended) | {"stream": i} for i, (cam, out) in
               enumerate(zip(cams, outputs))]
    summary = {"total": total_summary(streams, cams, seconds), "streams": streams, "stopped_by": reason,
               **{k: v for k, v in cams[0].info.items() if k not in ("source", "input")}}
    if opts.stats:
        write_stats(Path(opts.stats), summary, opts)
    return summary


def _live(cams: list[CameraRun]) -> dict:
    """/stats.json of several streams: each stream's numbers, and stream 0's at the top level (the one-stream
    page's fields)."""
    streams = [cam.live_stats() for cam in cams]
    return {**streams[0], "streams": streams, "fps_total": round(sum(s["fps"] or 0 for s in streams), 2)}


def apply_key(cams: list[CameraRun], action: str | None, opts: CameraOptions) -> str | None:
    """A key pressed in the grid acts on every stream: space pauses them all, m and p turn masks and panels off or
    on, s writes each stream's picture (-s0, -s1, ... in the names). -> the stop reason for q/Esc."""
    reasons = [cam.state.on_key(action, opts, cam.stats.frames, f"-s{i}") for i, cam in enumerate(cams)]
    return reasons[0]


def _show_grid(shared, tiles: list, status: str) -> str | None:
    """The grid in the window, with a banner when paused; -> a key's action."""
    shown = [t for t in tiles if t is not None]
    if shared is None or shared.window is None or not shown:
        return None
    grid = _grid(tiles, shown[0].shape[:2])
    if status:
        draw_banner(grid, status)
    return shared.window.show(grid)


def _loop(cams, run, outputs, shared, opts: CameraOptions) -> str:
    deadline = None if opts.seconds is None else time.perf_counter() + opts.seconds
    tiles: list = [None] * len(cams)
    while True:
        if deadline is not None and time.perf_counter() >= deadline:
            return f"{opts.seconds:g} s"
        if opts.stop.is_set():
            return opts.stop_reason
        if tuned(run, opts):
            return tuned(run, opts)
        paused = cams[0].state.paused
        item = None if paused else run.next(IDLE_S)
        if item is None:
            if paused:
                time.sleep(0.03)
            action = _show_grid(shared, tiles, "paused (space to resume)" if paused else "")  # keys still answer
        else:
            (i, frame), job = item
            cam = cams[i]
            if frame.t_capture < cam.state.resumed_at:  # taken before the pause ended
                continue
            if job.error is not None:
                if not cam.failed:
                    opts.log(f"stream {i} frame {frame.index} skipped: {job.error} (further ones are counted)")
                cam.failed += 1
                continue
            cam.present(frame, job, outputs[i])
            tiles[i] = frame.image
            if shared is not None and shared.server is not None:
                shared.server.streams[i].publish(frame.image)
            action = _show_grid(shared, tiles, "")
        reason = apply_key(cams, action, opts)
        if reason:
            return reason
