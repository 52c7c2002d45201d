"""A moving scene of the synthetic shapes: a camera for machines that have none (`cmlite camera --source synth`).

    scene = MovingScene(640, 480, seed=0)
    frame = scene.render(t)          # BGR uint8 at time t seconds; the same (seed, size, t) gives the same frame

Shapes of every class drift across a cluttered background (the dataset's, `calibration.synth`), rotate, bounce
off the edges and pass in front of one another (fixed depth order, so they occlude); the background pans
slowly. Shape details and fills are drawn from a per-object seed, so an object keeps its look from frame to
frame. The frame is a pure function of t: a source can render the frame that is due now and count the ones it
skipped, as a camera drops them.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from .synth import CLASSES, background, check_size, compose, fill_silhouette, pick_colour, silhouette

PAN = 0.1  # background pan: amplitude as a fraction of the frame's long side
PAN_SPEED = 0.15  # rad/s of the pan's phase


class MovingScene:
    def __init__(self, width: int = 640, height: int = 480, seed: int = 0, objects: int | None = None):
        for side in (width, height):
            check_size(side)
        self.width, self.height, self.seed = int(width), int(height), int(seed)
        rng = np.random.default_rng([self.seed, 7])
        short = min(self.width, self.height)
        # the background is larger than the frame so that it can pan
        self._margin = int(math.ceil(PAN * max(self.width, self.height))) + 1
        side = max(self.width, self.height) + 2 * self._margin
        self._bg = np.clip(background(side, rng) + 0.5, 0, 255).astype(np.uint8)
        n = objects if objects is not None else int(rng.integers(6, 10))
        self.objects = []
        for k in range(n):
            diameter = math.exp(rng.uniform(math.log(0.08 * short), math.log(0.4 * short)))
            speed = rng.uniform(0.05, 0.25) * short  # px/s
            heading = rng.uniform(0, 2 * math.pi)
            self.objects.append({
                "category_id": k % len(CLASSES) + 1 if k < len(CLASSES) else int(rng.integers(len(CLASSES))) + 1,
                "diameter": diameter, "x": rng.uniform(0, self.width), "y": rng.uniform(0, self.height),
                "vx": speed * math.cos(heading), "vy": speed * math.sin(heading),
                "angle": rng.uniform(0, 2 * math.pi), "spin": rng.uniform(-1.2, 1.2),  # rad/s
                "seed": int(rng.integers(2**31)),
            })
        self.objects.sort(key=lambda o: -o["diameter"])  # back to front: larger further back
        # each object's fill, made once for its upright silhouette and cut by the rotated one every frame
        mean_bg = self._bg.reshape(-1, 3)[::997].mean(axis=0)
        self._fills = []
        for o in self.objects:
            sil = silhouette(o["category_id"], o["diameter"], 0.0, 0.0, 0.0, np.random.default_rng(o["seed"]))
            colour = pick_colour([mean_bg], np.random.default_rng(o["seed"] + 1))
            self._fills.append(cv2.convertScaleAbs(fill_silhouette(sil, colour, np.random.default_rng(o["seed"] + 2))))

    @staticmethod
    def _bounce(x0: float, v: float, t: float, lo: float, hi: float) -> float:
        """Position at time t of a point moving at v from x0 and reflecting between lo and hi."""
        span = hi - lo
        if span <= 0:
            return lo
        u = (x0 - lo + v * t) % (2 * span)
        return lo + (u if u <= span else 2 * span - u)

    def render(self, t: float) -> np.ndarray:
        w, h, m = self.width, self.height, self._margin
        ox = int(round(m + (m - 1) * math.sin(PAN_SPEED * t)))
        oy = int(round(m + (m - 1) * math.cos(0.7 * PAN_SPEED * t)))
        frame = self._bg[oy:oy + h, ox:ox + w].copy()
        side = max(w, h)
        sils = []
        for o in self.objects:
            r = o["diameter"] / 2
            cx = self._bounce(o["x"], o["vx"], t, r * 0.2, w - r * 0.2)
            cy = self._bounce(o["y"], o["vy"], t, r * 0.2, h - r * 0.2)
            sils.append(silhouette(o["category_id"], o["diameter"], o["angle"] + o["spin"] * t, cx, cy,
                                   np.random.default_rng(o["seed"])))
        id_map, keep = compose(sils, side, min_fraction=0.0, min_pixels=1)
        id_map = id_map[:h, :w]
        for k, i in enumerate(keep):
            sil = sils[i]
            (ys, xs), _ = sil.clip(h, w)
            if ys.start == ys.stop or xs.start == xs.stop:
                continue
            fill = self._fills[i]
            if fill.shape[:2] != sil.mask.shape:  # the patch size can differ by a pixel with the sub-pixel centre
                fill = cv2.resize(fill, sil.mask.shape[::-1], interpolation=cv2.INTER_NEAREST)
            ly, lx = slice(ys.start - sil.y0, ys.stop - sil.y0), slice(xs.start - sil.x0, xs.stop - sil.x0)
            visible = id_map[ys, xs] == k + 1
            np.copyto(frame[ys, xs], fill[ly, lx], where=visible[:, :, None])
        return frame


def write_clip(path, frames: int, fps: float = 30.0, seed: int = 7, width: int = 640, height: int = 480):
    """The moving scene as a Motion JPEG clip (demo, tests, benchmarks), written under a hidden name and then
    renamed, so a half-written clip never has the name. -> the path."""
    from pathlib import Path

    path = Path(path)
    scene = MovingScene(width, height, seed=seed)
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    try:
        for i in range(frames):
            writer.write(scene.render(i / fps))
    finally:
        writer.release()
    tmp.replace(path)
    return path


def clip_once(path, frames: int, seed: int = 7):
    """write_clip's clip, made only when `path` does not already hold one of `frames` frames (its frames depend
    only on the seed: the demo's and pick's clip is made once). -> the path."""
    from pathlib import Path

    path = Path(path)
    if path.is_file() and int(cv2.VideoCapture(str(path)).get(cv2.CAP_PROP_FRAME_COUNT)) == frames:
        return path
    return write_clip(path, frames, seed=seed)
