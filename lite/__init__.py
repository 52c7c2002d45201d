"""CenterMask-Lite in plain PyTorch.

    import cv2
    from cmlite import lite
    model = lite.load_model("centermask2-lite-V-19-eSE.pth")   # variant detected from the weights
    instances = lite.predictor(model).predict(cv2.imread("image.jpg"))
"""
from .checkpoint import DEFAULT_WEIGHTS, detect_variant, load_model, read_checkpoint, resolve_weights, save_checkpoint
from .model import CenterMaskLite
from .predictor import TorchSegmenter
from . import layers
from .variants import DEFAULT_VARIANT, VARIANTS, Variant, get_variant


def build_model(variant: str = DEFAULT_VARIANT, **kwargs) -> CenterMaskLite:
    """A randomly initialised model of a variant (see `VARIANTS`)."""
    return CenterMaskLite(get_variant(variant), **kwargs).eval()


def predictor(model: CenterMaskLite, threads: int | None = None, maskiou: bool = True, **overrides) -> TorchSegmenter:
    """A Segmenter running the model eagerly; overrides are PipelineConfig fields (min_size=..., ...); maskiou=False
    skips the MaskIoU head (mask score = score)."""
    return TorchSegmenter(model, threads, maskiou, **overrides)


__all__ = ["CenterMaskLite", "TorchSegmenter", "Variant", "VARIANTS", "DEFAULT_VARIANT", "build_model",
           "detect_variant", "get_variant", "load_model", "predictor", "read_checkpoint", "save_checkpoint",
           "DEFAULT_WEIGHTS", "resolve_weights"]
