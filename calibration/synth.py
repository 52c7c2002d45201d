"""A deterministic synthetic instance-segmentation dataset (coloured shapes on cluttered backgrounds), COCO format.

    from cmlite.calibration.synth import generate
    generate("data/shapes", n_train=2000, n_val=200, size=320, seed=0)

writes

    data/shapes/train/000001.png ...            (the file stem is the image id, 1-based)
    data/shapes/val/000001.png ...
    data/shapes/annotations/instances_train.json   (COCO: RLE masks, tight bboxes of the visible part)
    data/shapes/annotations/instances_val.json

Each image depends only on (seed, split, image id) (see `image_rng`), so a dataset is byte-identical from run to
run, whatever the order of generation. Instances are drawn in z-order (back to front); an instance's mask is the
part of its silhouette that is visible (inside the image, not covered by instances in front of it), and instances
that would show less than `MIN_VISIBLE_FRACTION` of their silhouette or fewer than `MIN_VISIBLE_PIXELS` pixels are
not drawn at all. Silhouettes are rasterised with `cv2.fillPoly(..., cv2.LINE_8)`, and colours are painted exactly
on the visible masks, so annotations and pixels agree; the photometric changes applied afterwards (lighting, blur,
noise, colour cast) alter pixel values only, never which instance a pixel belongs to. Background distractors
(lines, curves, lumpy blobs, text) are not annotated.
"""
from __future__ import annotations

import json
import math
import os
import secrets
import shutil
import string
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_util

from cmlite.runtimes.errors import CmliteError
from cmlite.runtimes.progress import progress_bar

GENERATOR_VERSION = "1.0"
# Category ids are 1..K in this order. Thin: cross, bar; concave: star, crescent, cross; holed: ring.
CLASSES = ("disc", "ring", "triangle", "star", "crescent", "cross", "bar", "hexagon")
SPLITS = ("train", "val")
MIN_SIZE = 64  # smallest image side accepted
MAX_SIZE = 4096
MIN_VISIBLE_FRACTION = 0.4  # of the full silhouette (off-image parts count as hidden)
MIN_VISIBLE_PIXELS = 30
MIN_OBJECT = 12.0  # px: diameter of the circle enclosing the smallest silhouettes
MAX_REGULAR_OBJECT = 0.5  # of the image side: upper end of the log-uniform size distribution
LARGE_OBJECT = (0.55, 0.85)  # of the image side: the occasional large instance (box > 1/4 of the image area)
P_LARGE = 0.1  # per instance, at most one per image
# Instances per image, 1..8, weighted towards 2..5.
COUNT_WEIGHTS = np.array([0.06, 0.15, 0.19, 0.19, 0.16, 0.11, 0.08, 0.06])
COUNT_WEIGHTS = COUNT_WEIGHTS / COUNT_WEIGHTS.sum()
SUPERCATEGORY = "shape"

_SHIFT = 4  # fixed-point bits for cv2.fillPoly (sub-pixel vertices)
_ONE = 1 << _SHIFT
_TEXT_CHARS = string.ascii_letters + string.digits
_FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
          cv2.FONT_HERSHEY_SCRIPT_SIMPLEX)


# ----------------------------------------------------------------------------------------------- geometry


@dataclass
class Silhouette:
    """A shape's full silhouette: `mask` (bool, local patch) placed with its top-left corner at (x0, y0) in the image.

    x0/y0 may be negative and the patch may extend past the image: the off-image part counts in `area`.
    """
    category_id: int
    x0: int
    y0: int
    mask: np.ndarray

    @property
    def area(self) -> int:
        return int(np.count_nonzero(self.mask))

    def clip(self, height: int, width: int) -> tuple[tuple[slice, slice], np.ndarray]:
        """-> (image slices, the local mask cut to them); slices are empty when the patch is off the image."""
        h, w = self.mask.shape
        ya, xa = max(self.y0, 0), max(self.x0, 0)
        yb, xb = min(self.y0 + h, height), min(self.x0 + w, width)
        yb, xb = max(yb, ya), max(xb, xa)
        local = self.mask[ya - self.y0:yb - self.y0, xa - self.x0:xb - self.x0]
        return (slice(ya, yb), slice(xa, xb)), local


def compose(silhouettes: list[Silhouette], size: int, min_fraction: float = MIN_VISIBLE_FRACTION,
            min_pixels: int = MIN_VISIBLE_PIXELS) -> tuple[np.ndarray, list[int]]:
    """Occlusion in z-order (first = back). -> (id_map int32 HxW, kept indices into `silhouettes`).

    id_map is 0 for background and k+1 where kept[k] is the front-most kept instance. Instances whose visible
    part is below `min_fraction` of their silhouette or `min_pixels` are dropped, one at a time (the least visible
    first) and the rest recomputed, as dropping an instance can only reveal more of those behind it.
    """
    keep = list(range(len(silhouettes)))
    full = np.array([s.area for s in silhouettes], np.float64)
    while True:
        id_map = np.zeros((size, size), np.int32)
        for k, i in enumerate(keep):
            (ys, xs), local = silhouettes[i].clip(size, size)
            id_map[ys, xs][local] = k + 1
        if not keep:
            return id_map, keep
        visible = np.bincount(id_map.ravel(), minlength=len(keep) + 1)[1:]
        fraction = visible / np.maximum(full[keep], 1.0)
        bad = (visible < min_pixels) | (fraction < min_fraction)
        if not bad.any():
            return id_map, keep
        del keep[int(np.flatnonzero(bad)[np.argmin(fraction[bad])])]


def _ellipse(a: float, b: float, n: int, cx: float = 0.0) -> np.ndarray:
    t = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    return np.stack([cx + a * np.cos(t), b * np.sin(t)], axis=1)


def _rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)


def _radial(angles: np.ndarray, radii: np.ndarray, squash: float = 1.0) -> np.ndarray:
    return np.stack([radii * np.cos(angles), squash * radii * np.sin(angles)], axis=1)


def _shape_parts(name: str, r: float, rng: np.random.Generator) -> list[tuple[np.ndarray, int]]:
    """Polygons (unrotated, centred on 0, inside a circle of radius ~r) with their fill: 1 = shape, 0 = hole."""
    n = int(np.clip(1.5 * r, 24, 128))  # ellipse vertices
    if name == "disc":
        return [(_ellipse(r, r * rng.uniform(0.7, 1.0), n), 1)]
    if name == "ring":
        b, k = rng.uniform(0.75, 1.0), rng.uniform(0.4, 0.65)
        return [(_ellipse(r, r * b, n), 1), (_ellipse(r * k, r * b * k, n), 0)]
    if name == "triangle":
        angles = np.pi / 2 + np.array([0.0, 2.0, 4.0]) * np.pi / 3 + rng.uniform(-0.25, 0.25, 3)
        return [(_radial(angles, r * rng.uniform(0.85, 1.0, 3), rng.uniform(0.7, 1.0)), 1)]
    if name == "star":
        points = int(rng.choice([5, 6]))
        radii = np.tile([r, r * rng.uniform(0.38, 0.55)], points)
        angles = np.arange(2 * points) * np.pi / points
        return [(_radial(angles, radii, rng.uniform(0.85, 1.0)), 1)]
    if name == "crescent":  # a disc with an offset disc cut out that reaches past its edge (one concave piece)
        k = rng.uniform(0.7, 0.9)
        d = r * rng.uniform(max(0.35, 1.12 - k), 0.65)
        return [(_ellipse(r, r, n), 1), (_ellipse(r * k, r * k, n, cx=d), 0)]
    if name == "cross":
        hw = max(1.6, rng.uniform(0.09, 0.16) * 2 * r)
        lv, o = r * rng.uniform(0.6, 1.0), r * rng.uniform(-0.25, 0.25)
        return [(_rect(-r, -hw, r, hw), 1), (_rect(o - hw, -lv, o + hw, lv), 1)]
    if name == "bar":
        hw = max(1.6, rng.uniform(0.05, 0.12) * 2 * r)
        return [(_rect(-r, -hw, r, hw), 1)]
    if name == "hexagon":
        angles = np.arange(6) * np.pi / 3 + rng.uniform(-0.05, 0.05, 6)
        return [(_radial(angles, r * rng.uniform(0.92, 1.0, 6), rng.uniform(0.8, 1.0)), 1)]
    raise ValueError(f"unknown shape class {name!r}")


def silhouette(category_id: int, diameter: float, angle: float, cx: float, cy: float,
               rng: np.random.Generator) -> Silhouette:
    """The full silhouette of a shape of class `category_id` (1-based), enclosed by a circle of `diameter` px,
    rotated by `angle` (radians) and centred at (cx, cy) in image coordinates; shape details are drawn from rng."""
    r = diameter / 2.0
    parts = _shape_parts(CLASSES[category_id - 1], r, rng)
    half = int(math.ceil(1.15 * r)) + 2
    fx, fy = math.floor(cx), math.floor(cy)
    origin = np.array([half + cx - fx, half + cy - fy])
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    canvas = np.zeros((2 * half + 1, 2 * half + 1), np.uint8)
    for pts, fill in parts:  # one call per polygon: fillPoly's even-odd rule would cut overlaps of several
        p = np.round((pts @ rot.T + origin) * _ONE).astype(np.int32)
        cv2.fillPoly(canvas, [p], fill, cv2.LINE_8, _SHIFT)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(canvas, connectivity=8)
    if count > 2:  # rasterised sharp tips (crescent horns) can leave stray pixels: keep the main piece
        canvas = labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return Silhouette(category_id, fx - half, fy - half, canvas.astype(bool))


def _sample_silhouettes(size: int, rng: np.random.Generator) -> list[Silhouette]:
    """1..8 random silhouettes in z-order (back first: larger ones tend to be further back)."""
    n = int(rng.choice(len(COUNT_WEIGHTS), p=COUNT_WEIGHTS)) + 1
    large_left = True
    items = []
    for _ in range(n):
        category_id = int(rng.integers(len(CLASSES))) + 1
        if large_left and rng.random() < P_LARGE:
            diameter = rng.uniform(*LARGE_OBJECT) * size
            large_left = False
        else:
            diameter = math.exp(rng.uniform(math.log(MIN_OBJECT), math.log(MAX_REGULAR_OBJECT * size)))
        margin = min(0.25 * diameter, size / 2 - 1)
        cx, cy = rng.uniform(margin, size - margin, 2)
        sil = silhouette(category_id, diameter, rng.uniform(0, 2 * np.pi), float(cx), float(cy), rng)
        items.append((math.log(diameter) + rng.normal(0.0, 0.6), sil))
    items.sort(key=lambda item: -item[0])  # stable: ties keep their order
    return [sil for _, sil in items]


# ----------------------------------------------------------------------------------------------- appearance


def _smooth_noise(size: int, grid: int, rng: np.random.Generator) -> np.ndarray:
    """Low-frequency noise, size x size float32: a grid x grid Gaussian field upsampled (bicubic)."""
    small = rng.standard_normal((grid, grid)).astype(np.float32)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)


def background(size: int, rng: np.random.Generator) -> np.ndarray:
    """Float32 HxWx3 BGR: gradient + low-frequency colour noise + texture + unannotated distractors."""
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size
    theta = rng.uniform(0, 2 * np.pi)
    t = math.cos(theta) * coords[None, :] + math.sin(theta) * coords[:, None]
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    c0, c1 = rng.uniform(0, 255, (2, 3))
    grid, amplitude = int(rng.integers(3, 8)), np.float32(rng.uniform(10, 45))
    colour_noise = [_smooth_noise(size, grid, rng) * amplitude for _ in range(3)]
    texture = _smooth_noise(size, int(rng.integers(16, 48)), rng) * np.float32(rng.uniform(0, 15))
    # Channel planes merged at the end: numpy broadcasting over a trailing axis of 3 is slow.
    bg = cv2.merge([float(c0[c]) + float(c1[c] - c0[c]) * t + colour_noise[c] + texture for c in range(3)])
    layer = np.clip(bg + 0.5, 0, 255).astype(np.uint8)  # cv2.putText draws on 8-bit images only
    for _ in range(int(rng.integers(4, 21))):
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        kind = rng.integers(4)
        if kind == 0:  # straight thin line
            p, q = rng.uniform(-0.1, 1.1, (2, 2)) * size
            cv2.line(layer, (int(p[0]), int(p[1])), (int(q[0]), int(q[1])), colour, int(rng.integers(1, 3)),
                     cv2.LINE_AA)
        elif kind == 1:  # wandering curve
            steps = int(rng.integers(5, 13))
            heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.5, steps))
            step = rng.uniform(0.02, 0.08) * size
            pts = rng.uniform(0, size, 2) + np.cumsum(step * np.stack([np.cos(heading), np.sin(heading)], 1), 0)
            cv2.polylines(layer, [np.round(pts).astype(np.int32)], False, colour, int(rng.integers(1, 4)),
                          cv2.LINE_AA)
        elif kind == 2:  # lumpy blob (no straight edges, not round)
            angles = np.linspace(0, 2 * np.pi, 40, endpoint=False)
            radius = rng.uniform(0.015, 0.12) * size
            wobble = np.ones_like(angles)
            for h in range(2, 6):
                wobble += rng.uniform(0.06, 0.18) * np.cos(h * angles + rng.uniform(0, 2 * np.pi))
            pts = rng.uniform(0, size, 2) + _radial(angles, radius * wobble, rng.uniform(0.5, 1.0))
            cv2.fillPoly(layer, [np.round(pts).astype(np.int32)], colour, cv2.LINE_AA)
        else:  # text-like strokes
            text = "".join(rng.choice(list(_TEXT_CHARS), int(rng.integers(2, 9))))
            org = (int(rng.uniform(-0.1, 0.9) * size), int(rng.uniform(0.05, 1.0) * size))
            cv2.putText(layer, text, org, _FONTS[int(rng.integers(len(_FONTS)))], rng.uniform(0.3, 1.3) * size / 320,
                        colour, int(rng.integers(1, 3)), cv2.LINE_AA)
    alpha = rng.uniform(0.45, 1.0)
    return cv2.addWeighted(bg, 1.0 - alpha, layer.astype(np.float32), alpha, 0.0)


def pick_colour(references: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Of 16 random colours, the one farthest (min over references) from the colours it must stand out against."""
    candidates = rng.uniform(0, 255, (16, 3))
    ref = np.array(references, np.float64).reshape(-1, 3)
    dist = np.linalg.norm(candidates[:, None, :] - ref[None, :, :], axis=2).min(axis=1)
    return candidates[int(np.argmax(dist))].astype(np.float32)


def fill_silhouette(sil: Silhouette, base: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The instance's colour over its local patch (float32 hxwx3): base colour with a gradient or stripes, and
    sometimes a thin darker or lighter outline inside the silhouette."""
    h, w = sil.mask.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy -= h / 2
    xx -= w / 2
    theta = rng.uniform(0, 2 * np.pi)
    proj = (math.cos(theta) * xx + math.sin(theta) * yy) / max(h / 2, 1.0)
    shade = proj * np.float32(rng.uniform(0, 25))
    if rng.random() < 0.4:  # stripes
        phi = rng.uniform(0, 2 * np.pi)
        along = math.cos(phi) * xx + math.sin(phi) * yy
        shade += np.float32(rng.uniform(6, 20)) * np.sin(along * np.float32(2 * np.pi / rng.uniform(4, 12)))
    colour = cv2.merge([shade + float(b) for b in base])
    if rng.random() < 0.35 and h >= 24:
        thickness = int(rng.integers(1, 3))
        inner = cv2.erode(sil.mask.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=thickness).astype(bool)
        edge = sil.mask & ~inner
        line = base * 0.35 if rng.random() < 0.5 else base + (255 - base) * 0.6
        colour[edge] = line
    return colour


def _photometric(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Lighting (gamma, contrast, brightness) and colour cast through one per-channel lookup table, sometimes blur,
    then Gaussian noise; float32 in, uint8 out."""
    gamma = math.exp(rng.uniform(math.log(0.7), math.log(1.4)))
    contrast, brightness = rng.uniform(0.75, 1.25), rng.uniform(-0.12, 0.12)
    cast = rng.uniform(0.9, 1.1, 3)
    levels = np.arange(256, dtype=np.float64) / 255
    curve = ((levels ** gamma - 0.5) * contrast + 0.5 + brightness)[:, None] * cast[None, :] * 255
    lut = np.clip(np.round(curve), 0, 255).astype(np.uint8).reshape(256, 1, 3)
    x = cv2.LUT(np.clip(img + 0.5, 0, 255).astype(np.uint8), lut)
    if rng.random() < 0.35:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.4, 1.2))
    noise = rng.standard_normal(x.shape, dtype=np.float32) * np.float32(rng.uniform(0, 8))
    noise += x
    noise += np.float32(0.5)
    np.clip(noise, 0, 255, out=noise)
    return noise.astype(np.uint8)


def check_size(size) -> None:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise CmliteError(f"size must be an integer number of pixels, got {size!r}")
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise CmliteError(f"size must be between {MIN_SIZE} and {MAX_SIZE} pixels, got {size}")


def render(size: int, rng: np.random.Generator) -> tuple[np.ndarray, list[dict], np.ndarray]:
    """One size x size image. -> (BGR uint8 image, instances, id_map).

    instances: in z-order (back to front), each {"category_id": 1..len(CLASSES), "mask": HxW bool (the visible
    part only), "full_area": pixels of the whole silhouette, hidden and off-image parts included}.
    id_map: HxW int32, 0 = background, k+1 where instances[k] is visible. At least one instance.
    """
    check_size(size)
    size = int(size)
    bg = background(size, rng)
    for _ in range(100):  # an empty layout is rare (the front instance is only ever clipped): draw another
        sils = _sample_silhouettes(size, rng)
        id_map, keep = compose(sils, size)
        if keep:
            break
    else:  # pragma: no cover
        raise RuntimeError("could not place any visible instance")
    kept = [sils[i] for i in keep]

    img = bg.copy()
    painted = np.zeros((size, size), np.int32)  # what lies under each instance as it is painted
    bases: list[np.ndarray] = []
    for k, sil in enumerate(kept):
        (ys, xs), local = sil.clip(size, size)
        under = painted[ys, xs][local]
        references = [bg[ys, xs][local].mean(axis=0)] + [bases[j - 1] for j in np.unique(under) if j > 0]
        base = pick_colour(references, rng)
        bases.append(base)
        painted[ys, xs][local] = k + 1
        colour = fill_silhouette(sil, base, rng)
        (ly, lx) = (slice(ys.start - sil.y0, ys.stop - sil.y0), slice(xs.start - sil.x0, xs.stop - sil.x0))
        visible = id_map[ys, xs] == k + 1
        img[ys, xs][visible] = colour[ly, lx][visible]
    image = _photometric(img, rng)
    instances = [{"category_id": sil.category_id, "mask": id_map == k + 1, "full_area": sil.area}
                 for k, sil in enumerate(kept)]
    return image, instances, id_map


# ----------------------------------------------------------------------------------------------- dataset


def image_rng(seed: int, split: str, image_id: int) -> np.random.Generator:
    """The generator of one image: it depends on (seed, split, image id) only."""
    return np.random.default_rng([int(seed), SPLITS.index(split), int(image_id)])


def file_name(image_id: int) -> str:
    return f"{image_id:06d}.png"


def categories() -> list[dict]:
    return [{"id": i + 1, "name": name, "supercategory": SUPERCATEGORY} for i, name in enumerate(CLASSES)]


def annotation(instance: dict, ann_id: int, image_id: int) -> dict:
    """A COCO annotation of a rendered instance (RLE of its visible mask, tight bbox, visible area)."""
    mask = instance["mask"]
    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    bbox = [float(v) for v in mask_util.toBbox(rle)]
    rle["counts"] = rle["counts"].decode("ascii")
    return {"id": ann_id, "image_id": image_id, "category_id": int(instance["category_id"]), "bbox": bbox,
            "area": float(np.count_nonzero(mask)), "iscrowd": 0, "segmentation": rle}


def _check_count(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise CmliteError(f"{name} must be an integer, got {value!r}")
    if value < 0:
        raise CmliteError(f"{name} must be >= 0, got {value}")
    return int(value)


def _is_dataset(path: Path) -> bool:
    """Whether a folder holds a dataset this module wrote (so overwrite may replace it)."""
    names = {p.name for p in path.iterdir()}
    return "annotations" in names and names <= {"annotations", *SPLITS}


def _write_split(root: Path, split: str, n: int, size: int, seed: int, bar) -> dict:
    folder = root / split
    folder.mkdir()
    images, annotations = [], []
    for image_id in range(1, n + 1):
        image, instances, _ = render(size, image_rng(seed, split, image_id))
        ok, png = cv2.imencode(".png", image)
        if not ok:  # pragma: no cover
            raise RuntimeError(f"PNG encoding failed for {split} image {image_id}")
        (folder / file_name(image_id)).write_bytes(png.tobytes())
        images.append({"id": image_id, "file_name": file_name(image_id), "height": size, "width": size})
        for instance in instances:
            annotations.append(annotation(instance, len(annotations) + 1, image_id))
        bar.update(1)
    info = {"description": "cmlite synthetic shapes (cmlite.calibration.synth)", "generator": "cmlite.calibration.synth",
            "version": GENERATOR_VERSION, "seed": seed, "split": split, "size": size, "images": len(images),
            "annotations": len(annotations), "classes": list(CLASSES)}
    coco = {"info": info, "images": images, "annotations": annotations, "categories": categories()}
    (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(coco, separators=(",", ":")),
                                                                 encoding="ascii")
    return {"images": len(images), "instances": len(annotations)}


def generate(out_dir, n_train: int, n_val: int, size: int, seed: int, progress: bool = True,
             overwrite: bool = False) -> dict:
    """Write a train/val dataset to out_dir (see the module docstring). -> summary
    {"out_dir", "size", "seed", "train": {"images", "instances"}, "val": {...}, "seconds"}.

    Everything is written into a hidden sibling folder that is renamed to out_dir at the end (and removed if the
    run fails or is interrupted), so out_dir never holds a half-written dataset. An existing non-empty out_dir is
    refused unless overwrite=True, and even then only if it holds a dataset written here (train/, val/,
    annotations/ and nothing else), so a mistyped path cannot wipe unrelated files.
    """
    n_train, n_val = _check_count("n_train", n_train), _check_count("n_val", n_val)
    if n_train + n_val == 0:
        raise CmliteError("n_train and n_val are both 0: nothing to generate")
    check_size(size)
    size = int(size)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise CmliteError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    out = Path(out_dir)
    if out.exists() or out.is_symlink():
        if not out.is_dir():
            raise CmliteError(f"{out} exists and is not a folder")
        if any(out.iterdir()):
            if not overwrite:
                raise CmliteError(f"{out} exists and is not empty: choose another folder or pass --overwrite "
                                 "(overwrite=True from Python)")
            if not _is_dataset(out):
                raise CmliteError(f"{out} is not empty and does not hold a synthetic dataset (only train/, val/, "
                                 "annotations/): refusing to overwrite it, remove it yourself")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir()
    start = time.perf_counter()
    summary = {"out_dir": str(out), "size": size, "seed": seed}
    try:
        (tmp / "annotations").mkdir()
        with progress_bar(total=n_train + n_val, desc=f"synth {out.name}", unit="img", file=sys.stderr,
                  disable=not progress, dynamic_ncols=True) as bar:
            for split, n in zip(SPLITS, (n_train, n_val)):
                summary[split] = _write_split(tmp, split, n, size, seed, bar)
        _install(tmp, out, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    summary["seconds"] = round(time.perf_counter() - start, 3)
    return summary


def _install(tmp: Path, out: Path, overwrite: bool) -> None:
    """Rename the finished tmp folder to out, replacing an empty folder or (with overwrite) a previous dataset.
    Checked again here: out may have changed while the dataset was being generated."""
    if not out.exists():
        os.rename(tmp, out)
        return
    if not any(out.iterdir()):
        out.rmdir()
        os.rename(tmp, out)
        return
    if not (overwrite and _is_dataset(out)):
        raise CmliteError(f"{out} was filled while the dataset was being generated: not replacing it")
    old = out.parent / f".{out.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)
