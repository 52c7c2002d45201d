"""Loading official CenterMask2 checkpoints (and cmlite's own) safely, with the variant detected.

Checkpoints are pickles: they are read with `torch.load(weights_only=True)`, which refuses anything
but tensors and plain containers, so a file carrying code is rejected instead of run.
"""
from __future__ import annotations

import functools
import re
from pathlib import Path

import torch

from cmlite.runtimes.config import PipelineConfig
from cmlite.runtimes.errors import CheckpointError

from .layers import skip_init
from .model import CenterMaskLite
from .variants import VARIANTS, Variant

DEFAULT_WEIGHTS = Path(__file__).parent / "weights" / "cmlite_v19_slim_dw_synth.pth"
TOLERATED_KEYS = ("pixel_mean", "pixel_std")  # buffers of the detectron2 meta-arch, not weights
CLS_KEY = "proposal_generator.fcos_head.cls_logits.bias"
MASKIOU_PREFIX = "roi_heads.maskiou_head."


def resolve_weights(path: str | Path | None) -> Path:
    """'default' or None -> the embedded default model shipped with cmlite; anything else as given."""
    if path is None or str(path) == "default":
        if not DEFAULT_WEIGHTS.is_file():
            raise CheckpointError(f"the embedded default model is missing ({DEFAULT_WEIGHTS}); reinstall cmlite "
                                  "or pass --weights CKPT")
        return DEFAULT_WEIGHTS
    return Path(path)


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """-> (state_dict, cmlite metadata or {}). Accepts {"model": sd, ...} and a bare state_dict."""
    path = resolve_weights(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path} (give the path to a .pth file)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # the restricted unpickler raises many types on damaged files
        text = str(e)
        if "GLOBAL" in text or "Unsupported global" in text or "unsupported global" in text.lower():
            found = re.search(r"GLOBAL ([\w.]+)", text)
            raise CheckpointError(f"refused to load {path}: it holds pickled objects other than tensors "
                                  f"({found.group(1) if found else 'a Python global'}), which could run code; only plain state_dict "
                                  "checkpoints are accepted") from None
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint: the file is damaged, truncated or of "
                              f"another format ({type(e).__name__}: {_first_line(e)})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a checkpoint dict")
    meta = obj.get("cmlite", {}) if isinstance(obj.get("cmlite", {}), dict) else {}
    sd = obj["model"] if isinstance(obj.get("model"), dict) else obj
    sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in sd.items()}
    bad = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path}: entries are not tensors: {bad[:3]}; expected a state_dict "
                              "or {'model': state_dict}")
    return {k: v for k, v in sd.items() if k.split(".")[-1] not in TOLERATED_KEYS}, meta


def _first_line(e: Exception, width: int = 120) -> str:
    """The cause's first line, shortened at a word boundary ('...' marks the cut), never mid-word."""
    import textwrap

    text = str(e).strip().splitlines()
    return textwrap.shorten(text[0], width, placeholder=" ...") if text else type(e).__name__


@functools.lru_cache(maxsize=None)
def expected_shapes(v: Variant) -> dict[str, tuple[int, ...]]:
    with skip_init():
        m = CenterMaskLite(v)
    return {k: tuple(t.shape) for k, t in m.state_dict().items()}


def detect_variant(sd: dict[str, torch.Tensor], source: str = "checkpoint") -> Variant:
    """The variant whose keys and shapes equal the state_dict's; else an error naming the closest one."""
    num_classes = int(sd[CLS_KEY].shape[0]) if CLS_KEY in sd else 80
    maskiou = any(k.startswith(MASKIOU_PREFIX) for k in sd)
    have = {k: tuple(v.shape) for k, v in sd.items()}
    best = None
    for v in VARIANTS.values():
        v = v.with_(num_classes=num_classes, maskiou=maskiou)
        want = expected_shapes(v)
        if want == have:
            return v
        score = sum(have.get(k) == s for k, s in want.items()) - len(set(have) - set(want))
        if best is None or score > best[0]:
            best = (score, v, want)
    _, v, want = best
    missing = sorted(set(want) - set(have))
    unexpected = sorted(set(have) - set(want))
    shapes = sorted(k for k in set(want) & set(have) if want[k] != have[k])
    parts = [f"{len(missing)} missing keys (e.g. {missing[:3]})" if missing else "",
             f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]})" if unexpected else "",
             f"{len(shapes)} keys with other shapes (e.g. {shapes[0]}: {have[shapes[0]]} vs {want[shapes[0]]})"
             if shapes else ""]
    raise CheckpointError(f"{source} does not fit any CenterMask-Lite variant; it resembles {v.name} but has "
                          + "; ".join(p for p in parts if p))


def load_model(path: str | Path | None = "default") -> CenterMaskLite:
    """Build the detected variant and load the weights; metadata written by cmlite is applied.
    "default" (or None) is the embedded default model."""
    sd, meta = read_checkpoint(path)
    variant = detect_variant(sd, source=str(resolve_weights(path)))
    config = PipelineConfig.from_dict(meta["pipeline"]) if "pipeline" in meta else None
    with skip_init():
        model = CenterMaskLite(variant, class_names=tuple(meta["class_names"]) if "class_names" in meta else None,
                               category_ids=tuple(meta["category_ids"]) if "category_ids" in meta else None,
                               config=config)
    model.load_state_dict(sd, strict=True)  # copies into float32 parameters (shipped weights may be FP16)
    return model.eval()


def save_checkpoint(model: CenterMaskLite, path: str | Path, fp16: bool = False, **extra) -> Path:
    """Write the official layout {"model": state_dict} plus the metadata official files lack ("cmlite").

    fp16 stores the weights in half precision (half the file; loading restores float32).
    Written to a temporary file and renamed, so an interrupted save leaves no half-written checkpoint.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    sd = {k: v.half() if fp16 and v.is_floating_point() else v for k, v in model.state_dict().items()}
    try:
        torch.save({"model": sd, "cmlite": model.metadata, **extra}, tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
