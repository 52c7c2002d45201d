"""The camera's run loop: frames from a capture thread through a model's runner to the outputs (a window, a
recording, a web stream, the stats), with the keys' state. `cmlite camera` (apps/camera/camera.py) and the demo run it.

    summary = run_camera(runtimes.load("out/onnx-int8"), open_source("synth"), CameraOptions(window=False))
"""
from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from cmlite.runtimes.errors import CmliteError
from cmlite.runtimes.modes import Auto, Memory, runner
from cmlite.runtimes.pipeline import Segmenter, timed

from .capture import Capture, EndOfSource
from .frame_stats import FrameStats
from .overlay import draw_banner, draw_panel, panel_lines
from .sources import Source
from ..visualize import draw
from .web import MAX_VIEWERS

IDLE_S = 0.25  # how often the outputs refresh when no frame comes (source lost, slow stream)


@dataclass
class CameraOptions:
    loop: bool = False
    realtime: bool = False
    mode: str = "auto"  # runtimes/modes/: auto, sequential, overlap or throughput
    retune: bool = False  # auto: measure the modes again instead of the choice remembered for this setting
    tune: bool = False  # auto: measure the modes, remember the choice and stop
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
    from ..device_info import cpu_line

    manifest = getattr(seg, "manifest", None)
    backend = manifest.target if manifest else "pytorch"
    precision = manifest.precision if manifest else "fp32"
    return {"backend": backend, "precision": precision, "device": seg.device, "cpu": cpu_line(),
            "threads": threads or "all", "mode": mode, "maskiou": getattr(seg, "maskiou", True), "resize": seg.resize,
            "source": source.describe(),
            "min_size": seg.config.min_size, "max_size": seg.config.max_size, "input": "-"}


def capture_summary(source: Source, capture: Capture) -> dict:
    """--stats: what the source delivers (a local camera: what was asked, what the driver gave), and what
    capturing costs in CPU a frame."""
    out = {"cpu_ms_per_frame": capture.cpu_ms_per_frame()}
    if getattr(source, "got", None):
        out["got"] = source.got
        out["backend"] = source.backend
    settings = getattr(source, "settings", None)
    if settings:
        out["asked"] = {"size": list(settings.size) if settings.size else None, "fps": settings.fps,
                        "format": settings.fourcc.strip() if settings.fourcc else None}
        out["unmet"] = source.note
    return out


def auto_memory(seg: Segmenter, sources: list[Source], threads: int | None) -> Memory:
    """Where auto's choice is remembered: this device (CPU, backend, threads), this model (its graphs' hashes),
    input size and MaskIoU setting, and the kind of source (a camera's pace is not a file's)."""
    import hashlib

    from ..device_info import cpu_line

    manifest = getattr(seg, "manifest", None)
    if manifest is not None:
        model = hashlib.sha256(" ".join(sorted(g.sha256 for g in manifest.graphs.values())).encode()).hexdigest()
    else:  # PyTorch: the variant (a checkpoint of the same variant runs at the same speed)
        model = f"{type(seg).__name__} {getattr(getattr(getattr(seg, 'model', None), 'variant', None), 'name', '')}"
    cfg = seg.config
    kinds = sorted(s.kind for s in sources)
    return Memory({"cpu": cpu_line(), "device": seg.device, "threads": threads or "all", "model": model[:32],
                   "input": list(seg.fixed_hw) if seg.fixed_hw else [cfg.min_size, cfg.max_size],
                   "maskiou": bool(getattr(seg, "maskiou", True)), "resize": seg.resize,
                   "source": kinds[0] if len(kinds) == 1 else f"{len(kinds)} streams: {', '.join(kinds)}"})


def make_runner(seg: Segmenter, take, opts: CameraOptions, sources: list[Source], threads: int | None, finish):
    """The camera's runner: auto makes its replicas before the first frame and remembers its choice."""
    memory = auto_memory(seg, sources, threads) if opts.mode == "auto" else None
    return runner(seg, take, opts.mode, finish=finish, prepare=True, memory=memory, retune=opts.retune or opts.tune)


def tuned(run, opts: CameraOptions) -> str | None:
    """--tune: the stop reason once auto has chosen."""
    return "auto chose" if opts.tune and getattr(run, "chosen", None) else None


def mode_summary(run) -> dict:
    """--stats: the mode that ran, and for auto what it chose and why (its trials, or the run it remembered)."""
    out = {"mode": run.describe(), "running": run.brief()}
    if isinstance(run, Auto):
        out["auto"] = run.summary()
    return out


class Outputs:
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


@dataclass
class CameraState:
    """What the keys change and the loop reads."""
    paused: bool = False
    masks: bool = True
    panel: bool = True
    status: str = ""  # why no frame comes (source lost) or "paused ...", shown as a banner
    panel_rect: tuple | None = None  # where the panel was drawn: labels keep out of it
    resumed_at: float = 0.0  # frames taken before the pause ended are not shown
    last: object = None  # the last picture shown, without the banner (refreshes, snapshots)

    def on_key(self, action: str | None, opts: CameraOptions, frames: int, tag: str = "") -> str | None:
        """Apply a key's action (tag: in a snapshot's name, which stream); -> the stop reason when it ends the run."""
        if action == "quit":
            return "quit key"
        if action == "pause":
            self.paused = not self.paused
            self.resumed_at = time.perf_counter()
        elif action == "masks":
            self.masks = not self.masks
        elif action == "panel":
            self.panel = not self.panel
        elif action == "snapshot" and self.last is not None:
            _snapshot(self.last, opts, frames, tag)
        return None


class CameraRun:
    """One run of the camera loop: the capture, the runner over the model, the outputs and the counts."""

    def __init__(self, seg: Segmenter, source: Source, opts: CameraOptions, threads: int | None):
        self.opts, self.stats = opts, FrameStats()
        self.info = model_info(seg, source, threads, opts.mode)
        self.capture = Capture(source, loop=opts.loop, realtime=opts.realtime, log=opts.log)
        self.state = CameraState(panel=opts.panel != "off")
        self.corner = opts.panel if opts.panel != "off" else "top-left"
        self.seg, self.source, self.run = seg, source, None
        self.failed = 0  # frames a graph refused

    def live_stats(self) -> dict:
        c, st = self.capture, self.state
        return {**self.stats.live(), **self.info, "dropped": c.dropped, "captured": c.captured, "reopens": c.reopens,
                "status": st.status, "paused": st.paused}

    def take(self, timeout: float):
        frame = self.capture.get(timeout)
        return None if frame is None else (frame, frame.image)

    def overlay(self, frame, job) -> None:
        """The instances drawn on the frame, where the runner finishes a frame (overlapped: a stage thread)."""
        with timed(job, "draw"):
            st = self.state
            avoid = [st.panel_rect] if st.panel and st.panel_rect else []  # labels stay readable
            draw(frame.image, job.instances, min_score=self.opts.show_thresh, masks=st.masks, inplace=True,
                 avoid=avoid)

    def present(self, frame, job, outputs: Outputs) -> str | None:
        """A finished frame: the panel and banner drawn, shown on every output once, counted. -> a key's action."""
        st = self.state
        self.info["input"] = "x".join(map(str, job.pre.tensor.shape[2:]))
        self.info["mode"], self.info["running"] = self.run.describe(), self.run.brief()
        image = frame.image
        with timed(job, "draw"):  # the panel and the banner: drawing too, after the instances'
            if st.panel:
                st.panel_rect = draw_panel(image, panel_lines(self.live_stats()), self.corner)
            st.last = image.copy()
            if st.status:
                draw_banner(image, st.status)
        with timed(job, "output"):
            action = outputs.show(image)
        self.stats.add(frame.t_capture, time.perf_counter(), job.timings, job.cpu)
        return action

    def limit_reached(self, deadline: float | None) -> str | None:
        """Why the run stops before the next frame (--frames, --seconds, stop()), or None."""
        opts = self.opts
        if opts.frames is not None and self.stats.frames >= opts.frames:
            return f"{opts.frames} frames"
        if deadline is not None and time.perf_counter() >= deadline:
            return f"{opts.seconds:g} s"
        if opts.stop.is_set():
            return opts.stop_reason
        return tuned(self.run, opts)

    def loop(self, outputs: Outputs) -> str:
        """Frames until a limit, the quit key or the end of the source (EndOfSource). -> why it stopped."""
        st = self.state
        deadline = None if self.opts.seconds is None else time.perf_counter() + self.opts.seconds
        while True:
            reason = self.limit_reached(deadline)
            if reason:
                return reason
            item = None if st.paused else self.run.next(IDLE_S)
            st.status = "paused (space to resume)" if st.paused else self.capture.status  # as of this frame
            if item is None:
                if st.paused:
                    time.sleep(0.03)
                action = _refresh(outputs, st.last, st.status)
            else:
                frame, job = item
                if frame.t_capture < st.resumed_at:  # taken before the pause ended
                    continue
                if job.error is not None:  # a graph refused this frame (InferenceError): said once, counted
                    if not self.failed:
                        self.opts.log(f"frame {frame.index} skipped: {job.error} (further ones are counted)")
                    self.failed += 1
                    continue
                action = self.present(frame, job, outputs)
            reason = st.on_key(action, self.opts, self.stats.frames)
            if reason:
                return reason

    def summary(self, outputs: Outputs, reason: str, ended: bool) -> dict:
        c, rec = self.capture, outputs.recorder
        if self.run is not None:
            self.info.update(mode_summary(self.run))
        capture = capture_summary(self.source, c)
        return {**self.stats.summary(capture["cpu_ms_per_frame"]["total"]), "capture": capture,
                "captured": c.captured, "dropped": c.dropped, "taken": c.taken,
                "pending": c.pending, "reopens": c.reopens, "failed": self.failed, "stopped_by": reason,
                "source_ended": ended,
                "recorded_frames": rec.frames if rec else None,
                "recording": str(rec.path) if rec and rec.frames else None,
                "recording_error": rec.error if rec else None, **self.info}


def run_camera(seg: Segmenter, source: Source, opts: CameraOptions, threads: int | None = None) -> dict:
    """Run until the source ends, --frames/--seconds, q/Esc or Ctrl-C. -> the --stats summary."""
    cam = CameraRun(seg, source, opts, threads)
    outputs = Outputs(opts, source, cam.live_stats)
    ended, reason = False, "done"
    try:
        cam.capture.start()
        cam.run = make_runner(seg, cam.take, opts, [source], threads, cam.overlay)
        reason = cam.loop(outputs)
    except EndOfSource:
        ended, reason = True, "end of source"
    except KeyboardInterrupt:
        reason = "interrupted"
    finally:
        cam.stats.stop()  # the run's time ends here; closing the outputs (a recording's encode) is timed apart
        t_close = time.perf_counter()
        if cam.run is not None:
            cam.run.close()
        cam.capture.stop()
        outputs.close()
        close_s = time.perf_counter() - t_close
    summary = cam.summary(outputs, reason, ended) | {"close_s": round(close_s, 3)}
    if opts.stats:
        write_stats(Path(opts.stats), summary, opts)
    return summary


def write_stats(path: Path, summary: dict, opts: CameraOptions) -> None:
    """--stats FILE; if it cannot be written now (the disk filled, the folder went read-only), one line says so
    and the stats go to standard output instead: the run's numbers are never lost."""
    import json

    from ..atomic import write_json_atomic

    try:
        write_json_atomic(path, summary)
    except OSError as e:
        opts.log(f"cannot write --stats {path} ({e.strerror or e}): the stats follow on standard output")
        summary["stats_error"] = f"{path}: {e.strerror or e}"
        print(json.dumps(summary, indent=1))


def _refresh(outputs: Outputs, last, status: str) -> str | None:
    """No new frame: show the last picture again with the status (so the window answers keys and viewers see
    why nothing moves). Not recorded."""
    if last is None:
        return None
    image = last.copy()
    if status:
        draw_banner(image, status)
    return outputs.show(image, record=False)


def _snapshot(image, opts: CameraOptions, index: int, tag: str = "") -> None:
    import cv2

    path = Path(opts.snapshot_dir) / f"cmlite-{time.strftime('%Y%m%d-%H%M%S')}{tag}-{index:06d}.png"
    if cv2.imwrite(str(path), image):
        opts.log(f"snapshot: {path}")
    else:
        opts.log(f"cannot write snapshot {path}: check that {opts.snapshot_dir} is writable")
