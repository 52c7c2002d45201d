"""`cmlite pick`: the fastest deployment on this device within an AP budget, as one folder.

    cmlite pick --calib data/train --val data/annotations/instances_val.json --val-images data/val \\
                --max-ap-drop 0.5 --source clip.mp4 --out deploy/

1. Candidates: every CPU target installed here x FP32, FP16, BF16 (where the CPU has it) and INT8, made from the
   checkpoint (`--weights`, default the embedded model) into `--models` (default: pick-models/ beside --out):
   up-to-date folders are reused, the rest converted or quantized. `--max-minutes` stops adding candidates when
   it is reached (the ones skipped are named).
2. Measured as the user will run it: mask and box AP on the val set and peak memory through `cmlite bench`'s code
   (one process per candidate, rounds interleaved), and live fps and latency through the camera app itself
   (`cmlite camera --headless --stats` on `--source`, or a synthetic 640x480 clip, in `--mode`, with the
   device's threads; under auto each candidate tuned first, so the rounds run the mode it chose), one process per
   candidate and round, rounds interleaved: each round's frames over its seconds, the median and the spread.
3. The choice (apps/reports/pick_report.py): the fastest candidate whose mask AP is within `--max-ap-drop` of the FP32
   reference (the checkpoint itself in PyTorch, on the same val set); a lead inside the rounds' spread (or under
   2%) is a tie, settled by the smaller peak memory, then the lower latency. Written to --out: the chosen folder,
   pick.json, pick.html.
4. Nothing within the budget: one line naming the closest, status 2. A candidate that fails (to make, load or run,
   or a live run past --live-timeout) is a row of the table with its reason, never a traceback.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from cmlite.runtimes.errors import CmliteError
from cmlite.runtimes.target_table import CPU_TARGETS, PRECISIONS, folder_name
from cmlite.runtimes.target_table import get as target_row

from ..table import plural


@dataclass
class Candidate:
    target: str
    precision: str
    folder: Path
    made: str = ""  # "reused" | "made" | "" (not yet)
    error: str | None = None  # why it failed (making, measuring)
    skipped: str | None = None  # why it was not made (the time cap)
    figures: dict = field(default_factory=dict)  # mask_ap, box_ap, peak_rss_mb, fps, latency p50/p90, ...

    @property
    def name(self) -> str:
        return folder_name(self.target, self.precision)


def add_parser(sub) -> None:
    from ..model_args import add_mode_arg, add_size_args

    p = sub.add_parser("pick", help="the fastest deployment on this device within an AP budget, as one folder",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", help="the checkpoint (default: the embedded default model)")
    p.add_argument("--calib", required=True, help="INT8 calibration frames: an image folder, a COCO .json (with "
                                                  "--calib-images), a video or camera:N")
    p.add_argument("--calib-images", help="the image folder of a COCO --calib")
    p.add_argument("--calib-count", type=int, default=32, help="calibration frames (default 32)")
    p.add_argument("--val", required=True, help="the val set's COCO annotations (.json)")
    p.add_argument("--val-images", required=True, help="the val set's image folder")
    p.add_argument("--val-limit", type=int, help="AP on the first N val images (default: all)")
    p.add_argument("--max-ap-drop", type=float, default=0.5,
                   help="mask AP points a candidate may lose against the FP32 reference (default 0.5)")
    p.add_argument("--threads", type=int, help="threads, as the device will run (default: all cores)")
    p.add_argument("--source", help="the clip (or camera) the live fps is measured on (default: a synthetic "
                                    "640x480 clip)")
    p.add_argument("--frames", type=int, default=150, help="frames per live run (default 150)")
    p.add_argument("--rounds", type=int, default=3, help="live rounds per candidate, interleaved (default 3)")
    p.add_argument("--live-timeout", type=float, default=LIVE_TIMEOUT_S,
                   help=f"seconds one live run may take before it is stopped and its candidate counted as failed "
                        f"(default {LIVE_TIMEOUT_S:g})")
    add_mode_arg(p, "frame")
    p.add_argument("--targets", help=f"comma list (default: every CPU target installed here: "
                                     f"{', '.join(CPU_TARGETS)})")
    p.add_argument("--precisions", help="comma list (default: fp32, fp16, bf16 where the CPU has it, int8)")
    p.add_argument("--models", help="where candidates are made and reused (default: pick-models/ beside --out); a "
                                    "folder there made by another command for other settings is left as it is and "
                                    "pick's candidate goes to MODELS/pick/")
    p.add_argument("--overwrite", action="store_true", help="replace such folders in --models in place instead")
    p.add_argument("--max-minutes", type=float, help="stop adding candidates after this many minutes (default: "
                                                     "no cap)")
    add_size_args(p, "the candidates' manifests")
    p.add_argument("--out", required=True, help="the deployment folder: the chosen model, pick.json, pick.html")
    p.set_defaults(func=cmd_pick)


def cpu_has_bf16() -> bool:
    from ..device_info import cpu

    return bool({"avx512_bf16", "amx_bf16"} & set(cpu().get("isa") or ()))


def plan(models: Path, targets: list[str] | None, precisions: list[str] | None) -> tuple[list[Candidate], list[str]]:
    """The candidates, FP32 first, INT8 last (made in that order: INT8 starts from its FP32 twin); and lines for
    the targets left out (not installed here)."""
    left_out = []
    chosen = targets or [t for t in CPU_TARGETS]
    for t in chosen:
        row = target_row(t)
        if not row.runs_here:
            raise CmliteError(f"--targets {t}: {row.runtime} runs on {row.device}, not this CPU; pick among "
                              f"{', '.join(CPU_TARGETS)}")
    usable = [t for t in chosen if target_row(t).installed()]
    left_out += [f"{t}: {target_row(t).runtime} is not installed (pip install \"cmlite[{t}]\")"
                 for t in chosen if t not in usable]
    wanted = precisions or [p for p in PRECISIONS if p != "bf16" or cpu_has_bf16()]
    bad = [p for p in wanted if p not in PRECISIONS]
    if bad:
        raise CmliteError(f"--precisions {','.join(bad)}: choose from {', '.join(PRECISIONS)}")
    if precisions is None and not cpu_has_bf16():
        left_out.append("bf16: this CPU has no BF16 instructions (avx512_bf16 / amx_bf16)")
    out = [Candidate(t, p, models / folder_name(t, p)) for p in PRECISIONS if p in wanted for t in usable
           if p == "int8" or p in target_row(t).precisions]
    if not out:
        raise CmliteError("no candidates: " + ("; ".join(left_out) or "no target makes these precisions"))
    return out, left_out


OWN = "pick"  # the sub-folder of --models where pick puts a candidate whose name is taken by another's folder


def stale(c: Candidate, model, source: Path, frames) -> str | None:
    """Why c's folder is not what pick would make now (None: up to date, reused as it is)."""
    from cmlite.calibration.quantize import int8_up_to_date
    from cmlite.converters.convert import up_to_date
    from cmlite.converters.fp32_graphs import input_hw

    if c.precision == "int8":
        return int8_up_to_date(c.folder, model, source, None, frames, "minmax", [])
    return up_to_date(c.folder, model, source, input_hw(target_row(c.target), model.config, None))


def settle(cands: list[Candidate], model, source: Path, frames, overwrite: bool, log) -> None:
    """Pick never replaces what another command made: a folder in --models that is not what pick would make (the
    demo's TFLite at 320x320, another checkpoint's, a folder without a manifest) is left as it is and the candidate
    goes to --models/pick/ instead, said in one line; folders pick made itself, and any with --overwrite, are
    made again in place."""
    from cmlite.runtimes.manifest import read_manifest

    for c in cands:
        if overwrite or not c.folder.exists():
            continue
        try:
            made_by = (read_manifest(c.folder).provenance or {}).get("command") or "an unknown command"
        except CmliteError:
            made_by = None  # not a model folder cmlite can read: never pick's to replace
        if made_by is not None and made_by.split()[:2] == ["cmlite", "pick"]:
            continue
        why = stale(c, model, source, frames) if made_by is not None else "not a converted model folder"
        if why is None:
            continue
        own = c.folder.parent / OWN / c.folder.name
        log(f"pick: {c.folder} was made by `{made_by}` for other settings ({why}): left as it is; pick's {c.name} "
            f"goes to {own} (--overwrite replaces it in place)" if made_by else
            f"pick: {c.folder} is not a converted model folder: left as it is; pick's {c.name} goes to {own}")
        c.folder = own


def make(cands: list[Candidate], model, source: Path, frames, threads: int | None, deadline: float | None,
         log, models: Path | None = None) -> None:
    """Convert or quantize each candidate (up-to-date folders reused; INT8's FP32 twin looked for beside it and in
    `models`); a failure is that candidate's reason."""
    from cmlite.calibration.quantize import quantize
    from cmlite.converters.convert import convert, up_to_date
    from cmlite.converters.fp32_graphs import input_hw

    for i, c in enumerate(cands):
        if deadline is not None and time.monotonic() > deadline:
            c.skipped = "the time cap (--max-minutes) was reached before it was made"
            log(f"pick: [{i + 1}/{len(cands)}] {c.name}: skipped ({c.skipped})")
            continue
        t0 = time.monotonic()
        try:
            if c.precision == "int8":  # quantize() keeps an INT8 folder made from this model with these frames
                log(f"pick: [{i + 1}/{len(cands)}] {c.name}: quantizing (unless up to date) ...")
                before = _stamp(c.folder)
                [c.folder] = quantize(model, c.folder.parent, [c.target], frames, keep_float=[], source=source,
                                      threads=threads, log=lambda m: None, overwrite=True,
                                      fp32_dirs=[c.folder.parent, *([models] if models else [])], reuse=True)
                c.made = "reused" if before is not None and before == _stamp(c.folder) else "made"
            elif up_to_date(c.folder, model, source, input_hw(target_row(c.target), model.config, None)) is None:
                c.made = "reused"
            else:
                log(f"pick: [{i + 1}/{len(cands)}] {c.name}: converting ...")
                [c.folder] = convert(model, c.folder.parent, [c.target], [c.precision], source=source,
                                     log=lambda m: None, overwrite=True)
                c.made = "made"
            log(f"pick: [{i + 1}/{len(cands)}] {c.name}: {c.made} in {time.monotonic() - t0:.0f} s")
        except CmliteError as e:
            c.error = f"could not be made: {e}"
            log(f"pick: [{i + 1}/{len(cands)}] {c.name}: failed: {e}")
        except Exception as e:  # a converter's own failure on this machine: reported, the others go on
            c.error = f"could not be made: {type(e).__name__}: {' '.join(str(e).split())[:300]}"
            log(f"pick: [{i + 1}/{len(cands)}] {c.name}: failed: {c.error}")


def _stamp(folder: Path) -> float | None:
    try:
        return (folder / "manifest.json").stat().st_mtime_ns
    except OSError:
        return None


def measure_ap(cands: list[Candidate], weights: str, val: tuple, threads: int, size, log) -> dict:
    """Mask/box AP and peak memory of each candidate and of the reference, through `cmlite bench`'s code (a process
    per row). Returns the reference's row."""
    from .bench import bench_images, run_bench
    from .bench_worker import RowSpec

    ready = [c for c in cands if c.error is None and c.skipped is None]
    specs = [RowSpec("weights", weights, threads, size)] + [RowSpec("model", str(c.folder), threads, size)
                                                            for c in ready]
    log(f"pick: AP on the val set and peak memory of {plural(len(ready), 'candidate')} and the FP32 reference "
        f"(a process each) ...")
    report = run_bench(specs, bench_images([val[1]], 3), runs=2, warmup=1, data=val, log=log,
                       command="cmlite pick")
    rows = report["results"]
    for c, r in zip(ready, rows[1:]):
        if r.get("error") or r.get("eval_error"):
            c.error = f"failed on this device: {r.get('error') or r.get('eval_error')}"
        else:
            c.figures.update(mask_ap=r["mask_ap"], box_ap=r["box_ap"], peak_rss_mb=r["peak_rss_mb"],
                             size_mb=r["size_mb"], device=r.get("backend_device"))
    ref = rows[0]
    if ref.get("error") or ref.get("mask_ap") is None:
        raise CmliteError(f"the FP32 reference (the checkpoint in PyTorch) failed: "
                          f"{ref.get('error') or ref.get('eval_error')}")
    return ref


LIVE_TIMEOUT_S = 600.0  # default --live-timeout: one live run (or auto's tuning run) of one candidate


def live_run(folder: Path, source: str, frames: int, threads: int | None, mode: str, stats: Path,
             timeout: float, *extra: str) -> dict:
    """`cmlite camera --headless --stats` in a process of its own: the summary it writes, or {"error": line} (its
    last line, or the timeout: a hung run is stopped and counted as failed)."""
    cmd = [sys.executable, "-m", "cmlite.apps.cli", "camera", "--model", str(folder), "--source", source,
           "--headless", "--frames", str(frames), "--stats", str(stats), "--mode", mode, *extra]
    cmd += ["--threads", str(threads)] if threads else []
    try:
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"no result within {timeout:g} s (--live-timeout): stopped"}
    if run.returncode:
        lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
        return {"error": (lines[-1] if lines else f"status {run.returncode}").removeprefix("cmlite: error: ")}
    return json.loads(stats.read_text())


def measure_live(cands: list[Candidate], source: str, frames: int, threads: int | None, mode: str, rounds: int,
                 timeout: float, log) -> None:
    """Each candidate's live fps (frames over seconds of each camera run), rounds interleaved: the median and the
    rounds' spread. Under --mode auto each candidate is first tuned (`cmlite camera --tune --loop`: auto's trials,
    the choice remembered), so every round runs in the chosen mode with no trial frames, as the user's runs will."""
    import statistics

    ready = [c for c in cands if c.error is None and c.skipped is None]
    runs: dict[str, list[dict]] = {c.name: [] for c in ready}
    with tempfile.TemporaryDirectory() as tmp:
        if mode == "auto":
            for c in ready:
                log(f"pick: tuning auto on {c.name} (its modes measured and remembered) ...")
                s = live_run(c.folder, source, 10 ** 6, threads, mode, Path(tmp) / f"{c.name}-tune.json", timeout,
                             "--tune", "--loop")
                if "error" in s:
                    c.error = f"failed live on this device: {s['error']}"
        for r in range(rounds):
            for c in ready:
                if c.error:
                    continue
                log(f"pick: live round {r + 1}/{rounds}: {c.name} ...")
                s = live_run(c.folder, source, frames, threads, mode, Path(tmp) / f"{c.name}-{r}.json", timeout)
                if "error" in s:
                    c.error = f"failed live on this device: {s['error']}"
                    continue
                runs[c.name].append(s)
    for c in ready:
        got = runs[c.name]
        if c.error or not got:
            continue
        med = lambda f: round(statistics.median(f(s) for s in got), 2)  # noqa: E731
        fps = [s["fps_mean"] or 0.0 for s in got]
        c.figures.update(fps=med(lambda s: s["fps_mean"] or 0.0), fps_rounds=fps,
                         fps_spread=round(max(fps) - min(fps), 2),
                         latency_p50_ms=med(lambda s: s["latency_ms"]["p50"]),
                         latency_p90_ms=med(lambda s: s["latency_ms"]["p90"]), live_mode=got[-1].get("running"),
                         live_rounds=len(got))


def cmd_pick(args) -> int:
    from cmlite.converters.folders import check_dir_path

    from ..model_args import comma_list, config_overrides, need_torch
    from cmlite.calibration.synth_scene import clip_once
    from .pick_report import choose, write_deploy

    out = check_dir_path(args.out)
    for flag, v in (("--calib-count", args.calib_count), ("--frames", args.frames), ("--rounds", args.rounds)):
        if v < 1:
            raise CmliteError(f"{flag} {v}: give at least 1")
    if args.live_timeout <= 0:
        raise CmliteError(f"--live-timeout {args.live_timeout}: give a positive number of seconds")
    if args.max_minutes is not None and args.max_minutes <= 0:
        raise CmliteError(f"--max-minutes {args.max_minutes}: give a positive number of minutes")
    for flag, path in (("--val", args.val), ("--val-images", args.val_images)):
        if not Path(path).exists():
            raise CmliteError(f"{flag} {path}: not found")
    overrides = config_overrides(args)
    need_torch("cmlite pick (it converts and quantizes the candidates)", extra="all")
    from cmlite import lite
    from cmlite.calibration.frames import read_frames

    t_start = time.monotonic()
    deadline = t_start + args.max_minutes * 60 if args.max_minutes else None
    models = Path(args.models) if args.models else out.resolve().parent / "pick-models"
    cands, left_out = plan(models, comma_list(args.targets) or None, comma_list(args.precisions) or None)
    for line in left_out:
        print(f"pick: left out {line}", file=sys.stderr)
    weights = args.weights or "default"
    model = lite.load_model(weights)
    if overrides:
        model.config = model.config.with_(**overrides)
    source_path = lite.resolve_weights(weights)
    frames = read_frames(args.calib, args.calib_count, images_dir=args.calib_images, progress=False)
    models.mkdir(parents=True, exist_ok=True)
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    log(f"pick: {plural(len(cands), 'candidate')} ({', '.join(c.name for c in cands)}) in {models}")
    settle(cands, model, source_path, frames, args.overwrite, log)
    make(cands, model, source_path, frames, args.threads, deadline, log, models)
    size = (model.config.min_size, model.config.max_size)
    ref = measure_ap(cands, weights, (args.val, args.val_images, args.val_limit), args.threads or os.cpu_count(),
                     size, log)
    source = args.source or str(clip_once(models / "clip.avi", 150))  # the demo's moving scene
    measure_live(cands, source, args.frames, args.threads, args.mode, args.rounds, args.live_timeout, log)
    settings = {"weights": weights, "max_ap_drop": args.max_ap_drop, "threads": args.threads, "mode": args.mode,
                "source": source, "frames": args.frames, "rounds": args.rounds, "val": args.val,
                "val_limit": args.val_limit, "calib": args.calib, "calib_count": args.calib_count,
                "models": str(models), "left_out": left_out, "minutes": round((time.monotonic() - t_start) / 60, 1)}
    result = choose(cands, ref["mask_ap"], args.max_ap_drop)
    return write_deploy(out, cands, result, ref, settings)
