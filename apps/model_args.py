"""What every command that runs a model shares: --weights / --model, the runtime flags, and opening the model."""
from __future__ import annotations

from cmlite.runtimes.errors import CmliteError
from cmlite.runtimes.target_table import CPU_TARGETS, NAMES


def need_torch(what: str, extra: str = "torch", model_hint: bool = False) -> None:
    """One line when PyTorch is missing: what needs it, what to install (the README's extras), and with
    model_hint the torch-free alternative."""
    try:
        import torch  # noqa: F401  (only whether it imports)
    except ImportError:
        raise CmliteError(f"{what} needs PyTorch, which is not installed: pip install \"cmlite[{extra}]\""
                          + (" (or run a converted model with --model DIR, which needs no PyTorch)"
                             if model_hint else "")) from None


def load_model(weights: str | None):
    need_torch("--weights" if weights and weights != "default" else "the embedded default model (no --model given)",
               model_hint=True)
    from cmlite import lite

    return lite.load_model(weights or "default")


def segmenter(args, **overrides):
    """--weights CKPT (eager PyTorch) or --model DIR (converted, torch-free), resizing as --fast-resize says (the
    official filter where the command has no such flag)."""
    seg = _load_segmenter(args, overrides)
    seg.resize = "fast" if getattr(args, "fast_resize", False) else "exact"
    return seg


def _load_segmenter(args, overrides: dict):
    maskiou = getattr(args, "maskiou", "on") == "on"
    backend = getattr(args, "backend", None)
    if getattr(args, "model", None):
        from cmlite import runtimes

        return runtimes.load(args.model, threads=args.threads, maskiou=maskiou, backend=backend, **overrides)
    if backend:
        raise CmliteError(f"--backend {backend} runs a converted folder (--model DIR) on another runtime; a "
                          f"checkpoint runs in PyTorch")
    model = load_model(args.weights)  # says what to install before anything imports torch
    from cmlite import lite

    return lite.predictor(model, threads=args.threads, maskiou=maskiou, **overrides)


def config_overrides(args) -> dict:
    """--min-size, --max-size, --score-thresh as PipelineConfig fields; checks --threads too."""
    threads = getattr(args, "threads", None)
    if threads is not None and threads < 1:
        raise CmliteError(f"--threads {threads}: give at least 1 (or leave it out to use every core)")
    out = {k: getattr(args, k) for k in ("min_size", "max_size", "score_thresh") if getattr(args, k, None) is not None}
    for k in ("min_size", "max_size"):
        if k in out and out[k] < 32:
            raise CmliteError(f"--{k.replace('_', '-')} {out[k]}: the test size must be at least 32 pixels")
    if "min_size" in out and "max_size" in out and out["max_size"] < out["min_size"]:
        raise CmliteError(f"--max-size {out['max_size']} is below --min-size {out['min_size']}: the long-side cap "
                          f"must be at least the short side")
    if "score_thresh" in out and not 0 <= out["score_thresh"] < 1:
        raise CmliteError(f"--score-thresh {out['score_thresh']}: give a score in [0, 1), e.g. 0.05 (the "
                          f"official model's) or 0.3")
    return out


def parse_hw(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise CmliteError(f"--input-size {text!r}: expected HxW, e.g. 608x800") from None
    if h <= 0 or w <= 0 or h % 32 or w % 32:
        raise CmliteError(f"--input-size {text}: both sides must be positive multiples of 32 (e.g. 608x800)")
    return h, w


def add_runtime_args(p, weights_required: bool = False, maskiou: str = "on") -> None:
    """maskiou: the --maskiou default (the camera shows no mask scores: off there)."""
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    p.add_argument("--backend", choices=NAMES,
                   help="the runtime for --model DIR (default: the folder's own target); onnx runs a TensorRT "
                        "folder's ONNX graphs in ONNX Runtime, off the device")
    p.add_argument("--maskiou", choices=("on", "off"), default=maskiou,
                   help="the MaskIoU head, which only ranks masks (their mask_score): off skips it, a third of graph "
                        "2, and the mask score is then the box score, as in models without the head (default "
                        f"{maskiou}{'' if maskiou == 'off' else '; the camera defaults to off'})")
    add_size_args(p)
    p.add_argument("--score-thresh", type=float, help="detection threshold (default 0.05, as the official model)")


def add_size_args(p, written: str = "") -> None:
    """--min-size / --max-size, the test size; written: where it goes ("the manifest" for convert, quantize)."""
    where = f" written to {written}" if written else ""
    p.add_argument("--min-size", type=int, help=f"test size{where}: short side (default: the model's own: 320 for "
                                                f"the embedded default, 600 for the official Lite models)")
    p.add_argument("--max-size", type=int, help=f"test size{where}: long side cap (default: the model's own: 533 "
                                                f"for the embedded default, 1000 for the official Lite models)")


def add_mode_arg(p, what: str = "image") -> None:
    """--mode: how consecutive images share the CPU (runtimes/modes/)."""
    from cmlite.runtimes.modes import MODES

    p.add_argument("--mode", choices=MODES, default="auto",
                   help=f"overlap: the host work of one {what} (reading, resize, decode, RoIAlign, paste, drawing) "
                        f"runs beside the graphs of the next, each graph with every thread (up to two {what}s more "
                        f"latency); sequential: one {what} at a time; throughput: lanes of model replicas with the "
                        f"threads split, each on its own {what} (the most {what}s per second, each {what}'s latency "
                        f"higher); auto: each is measured in interleaved trials on the first {what}s (frames over "
                        f"seconds) and the fastest runs, a tie going to the lower latency (default auto)")


def add_targets_arg(p, extra: str = "") -> None:
    """--targets for convert and quantize: the table's targets, those that run on a CPU by default."""
    default = ",".join(CPU_TARGETS)
    p.add_argument("--targets", default=default, help=f"comma list of {', '.join(NAMES)}{extra} (default {default})")


def comma_list(text: str | None) -> list[str]:
    """A comma list from the command line ("onnx, openvino,"): its items, stripped, empty ones dropped."""
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def comma_ints(text: str, flag: str, example: str) -> list[int]:
    """A comma list of whole numbers; one line naming the flag and an example otherwise."""
    try:
        return [int(t) for t in comma_list(text)]
    except ValueError:
        raise CmliteError(f"{flag} {text!r}: give whole numbers separated by commas, e.g. {example}") from None


def add_fast_resize_arg(p) -> None:
    """--fast-resize: OpenCV's resize instead of the official filter (runtimes/preprocess.py)."""
    p.add_argument("--fast-resize", action="store_true",
                   help="resize with OpenCV (a Gaussian as wide as Pillow's antialiasing, then bilinear: 0.5 ms "
                        "against 2-3.5 for a 640x480 frame) instead of the official filter (Pillow's). Check it on "
                        "your model first: `cmlite eval --fast-resize` against `cmlite eval`, and "
                        "benchmarks/fast_resize.py for the parity verdict (the default model: docs/speed.md)")
