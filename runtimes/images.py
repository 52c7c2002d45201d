"""Reading images from disk with one-line errors."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from cmlite.runtimes.errors import ImageError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".jp2"}


def read_bgr(path: str | Path) -> np.ndarray:
    """HxWx3 uint8 BGR; grey, 16-bit and alpha images are converted. Raises ImageError with the cause."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"image not found: {path}")
    data = np.fromfile(path, np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise ImageError(f"cannot decode image {path}: not an image file or corrupt "
                         f"(OpenCV reads {', '.join(sorted(IMAGE_SUFFIXES))})")
    return img


def expand_images(paths: list[str]) -> list[Path]:
    """Files as given; folders expand to the images inside them, sorted."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise ImageError(f"no images in folder {p} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
            out += found
        else:
            out.append(p)
    return out
