"""The one preprocessing path: resize the short side (PIL-exact bilinear), pad with the mean, NCHW float32.

The official model resizes with PIL's antialiased bilinear filter. We reproduce PIL's fixed-point
two-pass algorithm bit for bit in numpy, so a device needs neither PIL nor torch. Normalisation
(x - mean) / std happens inside graph 1; padding with the mean makes the padded area exactly the
normalised zero that the official model pads with.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ImageError

_PRECISION_BITS = 32 - 8 - 2  # PIL's fixed-point precision for 8-bit images


@dataclass(frozen=True)
class Preprocessed:
    tensor: np.ndarray  # (1, 3, H_pad, W_pad) float32, raw BGR values, padded with the mean
    resized_hw: tuple[int, int]  # (h, w) of the resized image before padding
    original_hw: tuple[int, int]


def resized_size(h: int, w: int, min_size: int, max_size: int) -> tuple[int, int]:
    """detectron2's ResizeShortestEdge: short side to min_size, long side capped at max_size; a side that would
    round to 0 pixels (a 1x3000 strip: 0.18 px) is kept at 1 (detectron2 would fail on it)."""
    scale = min_size / min(h, w)
    new_h, new_w = (min_size, scale * w) if h < w else (scale * h, min_size)
    if max(new_h, new_w) > max_size:
        s = max_size / max(new_h, new_w)
        new_h, new_w = new_h * s, new_w * s
    return max(int(new_h + 0.5), 1), max(int(new_w + 0.5), 1)


def _pil_coeffs(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """PIL's precompute_coeffs for the bilinear (triangle) filter, as fixed-point ints.

    Returns (index (out, k) into the input, weight (out, k) int64); unused taps have weight 0.
    """
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 1.0 * filterscale
    ksize = int(np.ceil(support)) * 2 + 1
    center = (np.arange(out_size) + 0.5) * scale
    xmin = np.maximum((center - support + 0.5).astype(np.int64), 0)
    xmax = np.minimum((center + support + 0.5).astype(np.int64), in_size) - xmin
    taps = np.arange(ksize)
    x = (taps[None, :] + xmin[:, None] - center[:, None] + 0.5) / filterscale
    w = np.clip(1.0 - np.abs(x), 0.0, None)
    w[taps[None, :] >= xmax[:, None]] = 0.0
    total = w.sum(axis=1, keepdims=True)
    w = np.divide(w, total, out=np.zeros_like(w), where=total != 0)
    fixed = np.where(w < 0, -0.5, 0.5) + w * (1 << _PRECISION_BITS)
    index = np.minimum(xmin[:, None] + taps[None, :], in_size - 1)
    return index, np.trunc(fixed).astype(np.int64)


def _pass(img: np.ndarray, in_size: int, out_size: int, axis: int) -> np.ndarray:
    index, weight = _pil_coeffs(in_size, out_size)
    # int32 is exact: taps <= 255, weights sum to 2**22, as in PIL's C code. Loop over the few taps.
    shape = [1] * img.ndim
    shape[axis] = out_size
    acc = np.full([out_size if a == axis else n for a, n in enumerate(img.shape)],
                  1 << (_PRECISION_BITS - 1), np.int32)
    for t in range(index.shape[1]):
        if weight[:, t].any():
            acc += np.take(img, index[:, t], axis=axis) * weight[:, t].astype(np.int32).reshape(shape)
    np.clip(acc >> _PRECISION_BITS, 0, 255, out=acc)
    return acc.astype(np.uint8)


def resize_bilinear_pil(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Bit-exact equivalent of PIL `Image.resize((w, h), Image.BILINEAR)` on an HxWxC uint8 array."""
    h, w = img.shape[:2]
    out = img
    if out_w != w:  # PIL: horizontal pass first, rounding to uint8 in between
        out = _pass(out, w, out_w, axis=1)
    if out_h != h:
        out = _pass(out, h, out_h, axis=0)
    return np.ascontiguousarray(out)


def check_image(img) -> np.ndarray:
    """Accept an HxWx3 uint8 BGR image (HxW grey and HxWx4 BGRA are converted); reject anything else."""
    if not isinstance(img, np.ndarray):
        raise ImageError(f"expected a numpy image array, got {type(img).__name__}")
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, :3]
    elif img.ndim == 3 and img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ImageError(f"expected an HxWx3 BGR image, got shape {img.shape}")
    if img.dtype != np.uint8:
        raise ImageError(f"expected a uint8 image, got {img.dtype}; convert it with "
                         "np.clip(img, 0, 255).astype(np.uint8)")
    if min(img.shape[:2]) < 1:
        raise ImageError(f"image is empty: shape {img.shape}")
    return img


def preprocess(img: np.ndarray, min_size: int, max_size: int, pixel_mean, size_divisibility: int = 32,
               fixed_hw: tuple[int, int] | None = None) -> Preprocessed:
    """BGR uint8 image -> padded NCHW float32 (raw pixel values; pad value = mean).

    fixed_hw pads to that size instead of the next multiple of `size_divisibility` (fixed-shape targets);
    an image whose official resize does not fit is scaled down further, keeping its aspect, to fit.
    """
    img = check_image(img)
    h, w = img.shape[:2]
    rh, rw = resized_size(h, w, min_size, max_size)
    if fixed_hw is None:
        ph = -(-rh // size_divisibility) * size_divisibility
        pw = -(-rw // size_divisibility) * size_divisibility
    else:
        ph, pw = fixed_hw
        if rh > ph or rw > pw:
            s = min(ph / rh, pw / rw)
            rh, rw = max(min(int(rh * s + 0.5), ph), 1), max(min(int(rw * s + 0.5), pw), 1)
    resized = resize_bilinear_pil(img, rh, rw)
    out = np.empty((1, 3, ph, pw), np.float32)
    out[0] = np.asarray(pixel_mean, np.float32)[:, None, None]
    out[0, :, :rh, :rw] = resized.transpose(2, 0, 1)
    return Preprocessed(out, (rh, rw), (h, w))
