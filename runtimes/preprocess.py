"""The one preprocessing path: resize the short side (PIL's bilinear), pad with the mean, NCHW float32.

The official model resizes with PIL's antialiased bilinear filter (detectron2's ResizeTransform), so this
does too: Pillow's own C resize is that filter, bit for bit, by definition, and takes 1.5-3.5 ms for a 640x480
webcam frame where a numpy transcription took 6.5. Normalisation (x - mean) / std happens inside graph 1;
padding with the mean makes the padded area exactly the normalised zero that the official model pads with.

RESIZES: "exact" (Pillow's filter: what parity, eval, predict and bench run) or "fast" (OpenCV: a Gaussian blur
as wide as Pillow's antialiasing, then bilinear; 0.5 ms: the camera's and eval's opt-in `--fast-resize`, measured
against the exact path for AP and parity in docs/speed.md).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from .errors import ImageError

# A dynamic input is padded to at least this many size-divisibility steps per side: OpenVINO's CPU plugin refuses a
# 1-pixel map at stride 32 ("MaxPool ... Kernel ... larger than the data shape"), which a 32-pixel side gives.
# Only images thinner than about 17:1 (320/533) or 31:1 (600/1000) reach it; every backend pads alike.
MIN_STEPS = 2
RESIZES = ("exact", "fast")
# Pillow's bilinear filter on a downscale by s is a triangle s source pixels wide (variance s^2 / 6); OpenCV's
# bilinear adds one a pixel wide (1 / 6). A Gaussian of the difference, a little wider (fitted on the synthetic
# val set: mean 0.4 grey levels from Pillow's, 99% within 2, where bilinear alone is 1.1 and 7) stands in for it.
FAST_BLUR = 1.15


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


def _resized(img: np.ndarray, out_h: int, out_w: int) -> Image.Image:
    """PIL `Image.resize((w, h), Image.BILINEAR)` of an HxWx3 uint8 array (channels are filtered alike, so BGR
    needs no swap)."""
    im = Image.fromarray(img)
    return im if (out_h, out_w) == img.shape[:2] else im.resize((out_w, out_h), Image.BILINEAR)


def resize_bilinear_pil(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """The official resize of an HxWx3 uint8 array, HxWx3 out."""
    return np.asarray(_resized(img, out_h, out_w))


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


def planes(img: np.ndarray, out_h: int, out_w: int, resize: str = "exact") -> list[np.ndarray]:
    """The resized image's three channel planes, each contiguous: Pillow's filter (exact), or OpenCV's
    bilinear (fast)."""
    if resize == "fast":
        if (out_h, out_w) != img.shape[:2]:
            sx, sy = img.shape[1] / out_w, img.shape[0] / out_h
            sigma_x, sigma_y = (FAST_BLUR * max(s * s - 1, 0.0) ** 0.5 / 6 ** 0.5 for s in (sx, sy))
            if sigma_x or sigma_y:  # downscaling: antialiased as Pillow's filter is
                img = cv2.GaussianBlur(img, (0, 0), sigma_x or 1e-3, sigmaY=sigma_y or 1e-3)
            img = cv2.resize(img, (out_w, out_h), interpolation=cv2.INTER_LINEAR)
        return list(cv2.split(img))
    return [np.asarray(band) for band in _resized(img, out_h, out_w).split()]


def preprocess(img: np.ndarray, min_size: int, max_size: int, pixel_mean, size_divisibility: int = 32,
               fixed_hw: tuple[int, int] | None = None, resize: str = "exact") -> Preprocessed:
    """BGR uint8 image -> padded NCHW float32 (raw pixel values; pad value = mean).

    fixed_hw pads to that size instead of the next multiple of `size_divisibility` (fixed-shape targets);
    an image whose official resize does not fit is scaled down further, keeping its aspect, to fit.
    resize: RESIZES, "exact" unless the caller measured "fast" against it.
    """
    img = check_image(img)
    h, w = img.shape[:2]
    rh, rw = resized_size(h, w, min_size, max_size)
    if fixed_hw is None:
        least = MIN_STEPS * size_divisibility
        ph = max(-(-rh // size_divisibility) * size_divisibility, least)
        pw = max(-(-rw // size_divisibility) * size_divisibility, least)
    else:
        ph, pw = fixed_hw
        if rh > ph or rw > pw:
            s = min(ph / rh, pw / rw)
            rh, rw = max(min(int(rh * s + 0.5), ph), 1), max(min(int(rw * s + 0.5), pw), 1)
    out = np.empty((1, 3, ph, pw), np.float32)
    for c, plane in enumerate(planes(img, rh, rw, resize)):  # contiguous planes: no strided transpose
        mean = np.float32(pixel_mean[c])
        out[0, c, rh:, :] = mean
        out[0, c, :rh, rw:] = mean
        out[0, c, :rh, :rw] = plane
    return Preprocessed(out, (rh, rw), (h, w))
