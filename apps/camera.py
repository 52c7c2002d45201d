"""`cmlite camera`: live instance segmentation from a webcam, a video, a stream, a folder or `synth`, on any
backend, with the fps and latency each device reaches.

    cmlite camera --source 0 --model out/openvino-int8                 # a window (a display and GUI OpenCV)
    cmlite camera --source synth --serve 0.0.0.0:8080 --headless       # watch from a browser
    cmlite camera --source clip.mp4 --record seg.webm --stats run.json --headless

Torch-free with --model DIR; the embedded default (or --weights) runs in PyTorch.
"""
from __future__ import annotations

import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from cmlite.runtimes.errors import CmliteError
from cmlite.runtimes.overlap import runner
from cmlite.runtimes.pipeline import Segmenter

from .capture import Capture, EndOfSource
from .frame_stats import FrameStats
from .overlay import CORNERS, draw_banner, draw_panel, panel_lines
from .sources import SOURCES_HELP, Source, open_source
from .table import plural
from .visualize import draw
from .web import MAX_VIEWERS

IDLE_S = 0.25  # how often the outputs refresh when no frame comes (source lost, slow stream)


@dataclass
class CameraOptions:
    loop: bool = False
    realtime: bool = False
    mode: str = "auto"  # runtimes/overlap.py: auto, overlap (consecutive frames' stages at once) or sequential
    window: bool = True
    record: str | None = None
    record_codec: str = "auto"  # recorder.py: a browser codec (auto) or the quick ones (fast)
    serve: str | None = None
    token: str | None = None  # web.py: required off loopback (made when not given) unless no_token
    no_token: bool = False
    max_viewers: int = MAX_VIEWERS
    frames: int | None = None
    seconds: float | None = None
    stats: str | None = None
    show_thresh: float = 0.5
    panel: str = "top-left"  # the status panel's corner, or "off" (the p key shows and hides it)
    snapshot_dir: str = "."
    stop: threading.Event = field(default_factory=threading.Event)  # set() ends the run (Python API)
    stop_reason: str = "stopped"  # what --stats says stopped it when `stop` was set
    log: object = field(default=lambda message: print(message, file=sys.stderr))


def model_info(seg: Segmenter, source: Source, threads: int | None, mode: str) -> dict:
    from .device_info import cpu_line

    manifest = getattr(seg, "manifest", None)
    backend = manifest.target if manifest else "pytorch"
    precision = manifest.precision if manifest else "fp32"
    return {"backend": backend, "precision": precision, "device": seg.device, "cpu": cpu_line(),
            "threads": threads or "all", "mode": mode, "maskiou": getattr(seg, "maskiou", True),
            "source": source.describe(),
            "min_size": seg.config.min_size, "max_size": seg.config.max_size, "input": "-"}


class _Outputs:
    """Window, recorder and web server: whichever were asked for."""

    def __init__(self, opts: CameraOptions, source: Source, stats_fn):
        self.window = self.recorder = self.server = None
        from .window import HELP, unavailable

        if opts.window:
            why = unavailable()
            if why is None:
                from .window import Window

                self.window = Window()
                opts.log(HELP)
            elif opts.record or opts.serve or opts.stats:
                opts.log(f"no window: {why}")
            else:
                raise CmliteError(why)
        if opts.record:
            from .recorder import Recorder

            self.recorder = Recorder(opts.record, fps=None if source.live or opts.realtime else source.fps,
                                     codec=opts.record_codec, log=opts.log)
        if opts.serve:
            from .web import serve

            self.server = serve(opts.serve, stats_fn, opts.token, opts.no_token, opts.max_viewers, log=opts.log)
            opts.log(f"serving {self.server.url} (the page), {self.server.link('/stream.mjpg')} and "
                     f"{self.server.link('/stats.json')}")

    def show(self, image, record: bool = True) -> str | None:
        if self.recorder is not None and record:
            self.recorder.write(image)
        if self.server is not None:
            self.server.frames.publish(image)
        return self.window.show(image) if self.window is not None else None

    def close(self) -> None:
        if self.recorder is not None:
            self.recorder.close()
        if self.server is not None:
            self.server.stop()
        if self.window is not None:
            self.window.close()


def run_camera(seg: Segmenter, source: Source, opts: CameraOptions, threads: int | None = None) -> dict:
    """Run until the source ends, --frames/--seconds, q/Esc or Ctrl-C. -> the --stats summary."""
    stats = FrameStats()
    info = model_info(seg, source, threads, opts.mode)
    capture = Capture(source, loop=opts.loop, realtime=opts.realtime, log=opts.log)
    state = {"paused": False, "masks": True, "panel": opts.panel != "off", "status": "", "panel_rect": None}
    corner = opts.panel if opts.panel != "off" else "top-left"

    def live_stats() -> dict:
        return {**stats.live(), **info, "dropped": capture.dropped, "captured": capture.captured,
                "reopens": capture.reopens, "status": state["status"], "paused": state["paused"]}

    def take(timeout: float):
        frame = capture.get(timeout)
        return None if frame is None else (frame, frame.image)

    def overlay(frame, job) -> None:
        """The instances drawn on the frame, where the runner finishes a frame (overlapped: a stage thread)."""
        t0 = time.perf_counter()
        avoid = [state["panel_rect"]] if state["panel"] and state["panel_rect"] else []  # labels stay readable
        draw(frame.image, job.instances, min_score=opts.show_thresh, masks=state["masks"], inplace=True, avoid=avoid)
        job.timings["draw"] = (time.perf_counter() - t0) * 1e3

    outputs = _Outputs(opts, source, live_stats)
    run = None
    ended, reason = False, "done"
    try:
        capture.start()
        run = runner(seg, take, opts.mode, finish=overlay)
        deadline = None if opts.seconds is None else time.perf_counter() + opts.seconds
        last, resumed_at = None, 0.0
        while True:
            if opts.frames is not None and stats.frames >= opts.frames:
                reason = f"{opts.frames} frames"
                break
            if deadline is not None and time.perf_counter() >= deadline:
                reason = f"{opts.seconds:g} s"
                break
            if opts.stop.is_set():
                reason = opts.stop_reason
                break
            item = None if state["paused"] else run.next(IDLE_S)
            state["status"] = "paused (space to resume)" if state["paused"] else capture.status  # as of this frame
            if item is None:
                if state["paused"]:
                    time.sleep(0.03)
                action = _refresh(outputs, last, state["status"])
            else:
                frame, job = item
                if frame.t_capture < resumed_at:  # taken before the pause ended
                    continue
                info["input"] = "x".join(map(str, job.pre.tensor.shape[2:]))
                info["mode"], info["running"] = run.describe(), run.active
                t0 = time.perf_counter()
                image = frame.image
                if state["panel"]:
                    state["panel_rect"] = draw_panel(image, panel_lines(live_stats()), corner)
                last = image.copy()
                if state["status"]:
                    draw_banner(image, state["status"])
                t1 = time.perf_counter()
                action = outputs.show(image)
                t2 = time.perf_counter()
                job.timings["draw"] = job.timings.get("draw", 0.0) + (t1 - t0) * 1e3
                stats.add(frame.t_capture, t2, {**job.timings, "output": (t2 - t1) * 1e3})
            if action == "quit":
                reason = "quit key"
                break
            if action == "pause":
                state["paused"] = not state["paused"]
                resumed_at = time.perf_counter()
            elif action in ("masks", "panel"):
                state[action] = not state[action]
            elif action == "snapshot" and last is not None:
                _snapshot(last, opts, stats.frames)
    except EndOfSource:
        ended, reason = True, "end of source"
    except KeyboardInterrupt:
        reason = "interrupted"
    finally:
        if run is not None:
            run.close()
        capture.stop()
        outputs.close()
    summary = {**stats.summary(), "captured": capture.captured, "dropped": capture.dropped, "taken": capture.taken,
               "pending": capture.pending,
               "reopens": capture.reopens, "stopped_by": reason, "source_ended": ended,
               "recorded_frames": outputs.recorder.frames if outputs.recorder else None,
               "recording": str(outputs.recorder.path) if outputs.recorder and outputs.recorder.frames else None,
               "recording_error": outputs.recorder.error if outputs.recorder else None,
               **{k: v for k, v in info.items()}}
    if opts.stats:
        from .atomic import write_json_atomic

        write_json_atomic(Path(opts.stats), summary)
    return summary


def _refresh(outputs: _Outputs, last, status: str) -> str | None:
    """No new frame: show the last picture again with the status (so the window answers keys and viewers see
    why nothing moves). Not recorded."""
    if last is None:
        return None
    image = last.copy()
    if status:
        draw_banner(image, status)
    return outputs.show(image, record=False)


def _snapshot(image, opts: CameraOptions, index: int) -> None:
    import cv2

    path = Path(opts.snapshot_dir) / f"cmlite-{time.strftime('%Y%m%d-%H%M%S')}-{index:06d}.png"
    if cv2.imwrite(str(path), image):
        opts.log(f"snapshot: {path}")
    else:
        opts.log(f"cannot write snapshot {path}: check that {opts.snapshot_dir} is writable")


def _check(args) -> None:
    for name, value in (("--frames", args.frames), ("--seconds", args.seconds)):
        if value is not None and value <= 0:
            raise CmliteError(f"{name} {value}: give a positive number (or leave it out to run until stopped)")
    if not 0 <= args.show_thresh <= 1:
        raise CmliteError(f"--show-thresh {args.show_thresh}: give a score in [0, 1]")
    if args.snapshot_dir and not Path(args.snapshot_dir).is_dir():
        raise CmliteError(f"--snapshot-dir {args.snapshot_dir} is not a folder")
    from .atomic import check_file_path

    check_file_path(args.stats, "--stats")  # before the run, not when its numbers are written
    check_file_path(args.record, "--record", "out.webm")


def _stop_between_frames(opts: CameraOptions):
    """The handler for Ctrl-C and SIGTERM: the run ends after the frame in hand, so the recording, the counts and
    the stats agree (an exception raised mid-write once left a frame in the file that no count had). A second
    signal raises KeyboardInterrupt, for a run stuck in one frame."""
    def handler(*_) -> None:
        if opts.stop.is_set():
            raise KeyboardInterrupt
        opts.stop_reason = "interrupted"
        opts.stop.set()
    return handler


def cmd_camera(args) -> None:
    from .model_args import config_overrides, segmenter

    _check(args)
    overrides = config_overrides(args)
    if args.serve:
        from .web import check_options, parse_address

        parse_address(args.serve)  # a bad address, token or viewer count fails before the model loads
        check_options(args.token, args.max_viewers)
    source = open_source(args.source)
    try:
        seg = segmenter(args, **overrides)
    except BaseException:
        source.close()
        raise
    opts = CameraOptions(loop=args.loop, realtime=args.realtime, mode=args.mode, window=not args.headless,
                         record=args.record, record_codec=args.record_codec, serve=args.serve, token=args.token,
                         no_token=args.no_token, max_viewers=args.max_viewers, frames=args.frames,
                         seconds=args.seconds,
                         stats=args.stats, show_thresh=args.show_thresh, snapshot_dir=args.snapshot_dir,
                         panel=args.panel)
    opts.log(f"{source.describe()} -> {seg.device} ({args.mode})")
    before = {}
    if threading.current_thread() is threading.main_thread():  # `kill` stops as cleanly as Ctrl-C
        before = {sig: signal.signal(sig, _stop_between_frames(opts)) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        s = run_camera(seg, source, opts, threads=args.threads)
    finally:
        for sig, handler in before.items():  # main() called from Python gets its handlers back
            signal.signal(sig, handler)
    lat = s["latency_ms"]
    print(f"{plural(s['frames'], 'frame')} in {s['seconds']:.1f} s ({s['stopped_by']}): {s['fps_mean'] or 0:.1f} fps mean, "
          f"{s['fps_p50'] or 0:.1f} p50; latency p50 {lat['p50']} / p90 {lat['p90']} / p99 {lat['p99']} ms; "
          f"dropped {s['dropped']} of {s['captured']} captured; {s['device']}, {plural(s['threads'], 'thread')}"
          + (f"; stats in {args.stats}" if args.stats else "") + (f"; video in {s['recording']}" if s["recording"] else ""))


def add_parser(sub) -> None:
    from .model_args import add_mode_arg, add_runtime_args

    p = sub.add_parser("camera", help="live segmentation from a camera, video, stream, folder or synth, with fps",
                       description="Live instance segmentation with an overlay of fps, per-stage ms and latency. "
                                   "Outputs: a window, --record, --serve (a web page), --stats. Keys in the window: "
                                   "q/Esc quit, space pause, s snapshot, m masks, p panel.")
    p.add_argument("--source", default="0", help=f"{SOURCES_HELP}; synth:WxH@FPS sets the scene (default 0)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--weights", help="checkpoint (.pth), run in PyTorch; default: the embedded default model")
    src.add_argument("--model", help="a converted model folder (`cmlite convert` / `quantize`), run without PyTorch")
    add_runtime_args(p, maskiou="off")
    add_mode_arg(p, "frame")
    p.add_argument("--loop", action="store_true", help="replay video files and folders")
    p.add_argument("--realtime", action="store_true", help="play a video at its own frame rate, dropping frames "
                                                           "like a camera (default: every frame, in order)")
    p.add_argument("--headless", action="store_true", help="no window")
    p.add_argument("--record", metavar="OUT.webm", help="write the overlaid video: .webm (VP8, plays in browsers), "
                                                        ".mp4 (H.264 where OpenCV can encode it, else a .webm), "
                                                        ".avi/.mkv (Motion JPEG)")
    p.add_argument("--record-codec", choices=("auto", "fast"), default="auto",
                   help="auto: a codec browsers play, encoded when the run ends; fast: MPEG-4 part 2 in .mp4 and "
                        "Motion JPEG otherwise, as recorded (default auto)")
    p.add_argument("--serve", metavar="HOST:PORT", help="serve a live web page (/, /stream.mjpg, /stats.json); "
                                                        "a bare PORT binds 127.0.0.1 only, 0.0.0.0:PORT every address "
                                                        "(then with a token)")
    tok = p.add_mutually_exclusive_group()
    tok.add_argument("--token", help="the token --serve asks for (default: off loopback one is made and printed with "
                                     "the URL; on loopback none)")
    tok.add_argument("--no-token", action="store_true", help="serve off loopback without a token (a warning says "
                                                             "who can see the camera)")
    p.add_argument("--max-viewers", type=int, default=MAX_VIEWERS,
                   help=f"viewers of the stream at once; more get a 503 (default {MAX_VIEWERS})")
    p.add_argument("--frames", type=int, help="stop after N frames")
    p.add_argument("--seconds", type=float, help="stop after T seconds")
    p.add_argument("--stats", metavar="FILE", help="write a JSON summary (fps, latency percentiles, stages, device)")
    p.add_argument("--show-thresh", type=float, default=0.5, help="draw instances scoring at least this (default 0.5)")
    p.add_argument("--panel", choices=(*CORNERS, "off"), default="top-left",
                   help="the status panel's corner, or off (the p key shows and hides it; default top-left)")
    p.add_argument("--snapshot-dir", default=".", help="where the s key writes PNG snapshots (default .)")
    p.set_defaults(func=cmd_camera)
