"""`cmlite camera`: live instance segmentation from a webcam, a video, a stream, a folder or `synth`, on any
backend, with the fps and latency each device reaches.

    cmlite camera --source 0 --model out/openvino-int8                 # a window (a display and GUI OpenCV)
    cmlite camera --source synth --serve 0.0.0.0:8080 --headless       # watch from a browser
    cmlite camera --source clip.mp4 --record seg.webm --stats run.json --headless

Torch-free with --model DIR; the embedded default (or --weights) runs in PyTorch. The run loop itself is
apps/camera/loop.py.
"""
from __future__ import annotations

import signal
import threading
from pathlib import Path

from cmlite.runtimes.errors import CmliteError

from .loop import CameraOptions, run_camera
from .overlay import CORNERS
from .sources import SOURCES_HELP, open_source
from ..table import plural
from .web import MAX_VIEWERS


def _check(args) -> None:
    for flag in ("--retune", "--tune"):
        if getattr(args, flag[2:]) and args.mode != "auto":
            raise CmliteError(f"{flag} is for --mode auto (it measures the modes): drop {flag} or --mode {args.mode}")
    for name, value in (("--frames", args.frames), ("--seconds", args.seconds)):
        if value is not None and value <= 0:
            raise CmliteError(f"{name} {value}: give a positive number (or leave it out to run until stopped)")
    if not 0 <= args.show_thresh <= 1:
        raise CmliteError(f"--show-thresh {args.show_thresh}: give a score in [0, 1]")
    if args.snapshot_dir and not Path(args.snapshot_dir).is_dir():
        raise CmliteError(f"--snapshot-dir {args.snapshot_dir} is not a folder")
    from ..atomic import check_file_path

    for flag, given in (("--token", args.token is not None), ("--no-token", args.no_token)):
        if given and not args.serve:
            raise CmliteError(f"{flag} is for --serve (the web page's access): add --serve HOST:PORT, or drop {flag}")
    check_file_path(args.stats, "--stats")  # before the model loads, not when its numbers are written
    if check_file_path(args.record, "--record", "out.webm"):
        from .recorder import check_suffix

        check_suffix(Path(args.record))


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
    from ..model_args import config_overrides, segmenter

    _check(args)
    overrides = config_overrides(args)
    if args.serve:
        from ..listen import check_address_free
        from .web import check_options

        check_address_free(args.serve)  # a bad address or one in use, token or viewer count: before the model loads
        check_options(args.token, args.max_viewers)
    from cmlite.runtimes.video_capture import parse_settings

    settings = parse_settings(args.camera_size, args.camera_fps, args.camera_format)
    sources = []
    try:
        for spec in args.source or ["0"]:
            sources.append(open_source(spec, settings))
        seg = segmenter(args, **overrides)  # with --fast-resize's resize
    except BaseException:
        for source in sources:
            source.close()
        raise
    opts = CameraOptions(loop=args.loop, realtime=args.realtime, mode=args.mode, retune=args.retune, tune=args.tune,
                         window=not args.headless,
                         record=args.record, record_codec=args.record_codec, serve=args.serve, token=args.token,
                         no_token=args.no_token, max_viewers=args.max_viewers, frames=args.frames,
                         seconds=args.seconds,
                         stats=args.stats, show_thresh=args.show_thresh, snapshot_dir=args.snapshot_dir,
                         panel=args.panel)
    opts.log(f"{', '.join(s.describe() for s in sources)} -> {seg.device} ({args.mode})")
    for s in sources:  # what each camera or pipeline gives; a request its driver could not meet, said once
        if getattr(s, "delivers", None) and s.delivers():
            opts.log(f"{s.describe()} gives {s.delivers()}")
        if getattr(s, "note", None):
            opts.log(f"cmlite: warning: {s.describe()}: {s.note}")
    before = {}
    if threading.current_thread() is threading.main_thread():  # `kill` stops as cleanly as Ctrl-C
        before = {sig: signal.signal(sig, _stop_between_frames(opts)) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if len(sources) > 1:
            from .streams import run_streams

            s = run_streams(seg, sources, opts, threads=args.threads)
        else:
            s = run_camera(seg, sources[0], opts, threads=args.threads)
    finally:
        for sig, handler in before.items():  # main() called from Python gets its handlers back
            signal.signal(sig, handler)
    auto = s.get("auto")
    if args.tune and not (auto and auto["chosen"]):
        done = f"{len(auto['trials'])} of {auto['trials_planned']} trials" if auto else "no trial"
        raise CmliteError(f"--tune: the run stopped ({s['stopped_by']}, {s.get('total', s)['frames']} frames) before "
                          f"auto's trials were done ({done}): give a longer clip, --loop, or more --frames/--seconds")
    if len(sources) > 1:
        return _print_streams(s, args)
    lat, per = s["latency_ms"], s["fps_per_second"]
    print(f"{plural(s['frames'], 'frame')} in {s['seconds']:.1f} s ({s['stopped_by']}): {s['fps_mean'] or 0:.1f} fps "
          f"(frames over seconds" + (f"; {per['min']:.1f}-{per['max']:.1f} over each second" if per else "") +
          f"); latency p50 {lat['p50']} / p90 {lat['p90']} / p99 {lat['p99']} ms; "
          f"dropped {s['dropped']} of {s['captured']} captured; {s['device']}, {plural(s['threads'], 'thread')}, "
          f"{s['mode']}"
          + (f"; stats in {args.stats}" if args.stats and "stats_error" not in s else "")
          + (f"; video in {s['recording']}" if s["recording"] else ""))


def _print_streams(s: dict, args) -> None:
    from ..table import format_table

    rows = [[t["stream"], t["source"], t["frames"], t["fps_mean"], t["latency_ms"]["p50"], t["latency_ms"]["p90"],
             t["latency_ms"]["p99"], t["dropped"], t["reopens"]] for t in s["streams"]]
    tot = s["total"]
    rows.append(["all", f"{tot['streams']} streams", tot["frames"], tot["fps_total"], tot["latency_ms"]["p50"],
                 tot["latency_ms"]["p90"], tot["latency_ms"]["p99"], tot["dropped"], tot["reopens"]])
    print(format_table(["stream", "source", "frames", "fps", "latency p50", "p90", "p99", "dropped", "reopens"], rows))
    print(f"{s['stopped_by']}: {tot['fps_total']} fps in total, the slowest stream {tot['fps_per_stream_min']} fps "
          f"({(tot['slowest_of_mean'] or 0):.0%} of the mean); {s['device']}, {plural(s['threads'], 'thread')}, "
          f"{s['mode']}" + (f"; stats in {args.stats}" if args.stats and "stats_error" not in s else ""))


def add_parser(sub) -> None:
    from ..model_args import add_fast_resize_arg, add_mode_arg, add_runtime_args

    p = sub.add_parser("camera", help="live segmentation from a camera, video, stream, folder or synth, with fps",
                       description="Live instance segmentation with an overlay of fps, per-stage ms and latency. "
                                   "Outputs: a window, --record, --serve (a web page), --stats. Keys in the window: "
                                   "q/Esc quit, space pause, s snapshot, m masks, p panel.")
    p.add_argument("--source", action="append",
                   help=f"{SOURCES_HELP} (synth:WxH@FPS#SEED: the virtual camera's frame size, rate and scene); "
                        f"repeat it for several streams through the one model (default: camera 0)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--weights", help="checkpoint (.pth), run in PyTorch; default: the embedded default model")
    src.add_argument("--model", help="a converted model folder (`cmlite convert` / `quantize`), run without PyTorch")
    add_runtime_args(p, maskiou="off")
    add_mode_arg(p, "frame")
    p.add_argument("--retune", action="store_true",
                   help="--mode auto: measure the modes again instead of the choice remembered for this device, "
                        "model, input size and source kind (kept in ~/.cache/cmlite/auto-modes.json)")
    p.add_argument("--tune", action="store_true",
                   help="--mode auto: measure the modes, remember the choice for the runs that follow, and stop")
    p.add_argument("--camera-size", metavar="WxH", help="ask a local camera (an index, /dev/videoN, picam:N) for this "
                                                        "frame size, e.g. 1280x720 (default: the driver's)")
    p.add_argument("--camera-fps", type=float, metavar="N", help="ask a local camera for this frame rate")
    p.add_argument("--camera-format", metavar="FOURCC", help="ask a local camera for this pixel format: MJPG "
                                                             "(compressed: the high sizes and rates over USB 2), "
                                                             "YUYV (raw), H264, ... What the driver gave is printed "
                                                             "and in --stats; a request it cannot meet is a warning")
    add_fast_resize_arg(p)
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
