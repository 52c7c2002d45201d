"""A COCO-format instance segmentation dataset for training (any dataset: the synthetic one or the user's)."""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from cmlite.runtimes.errors import CmliteError
from cmlite.runtimes.preprocess import resize_bilinear_pil, resized_size


@dataclass
class Sample:
    image: np.ndarray  # resized BGR uint8
    boxes: np.ndarray  # (G, 4) xyxy in the resized frame
    classes: np.ndarray  # (G,) contiguous 0..K-1
    masks: np.ndarray  # (G, h, w) bool in the resized frame


class CocoSegmentation:
    def __init__(self, ann_file: str | Path, images_dir: str | Path):
        from pycocotools.coco import COCO

        ann_file, self.images_dir = Path(ann_file), Path(images_dir)
        if not ann_file.is_file():
            raise CmliteError(f"annotations not found: {ann_file}")
        if not self.images_dir.is_dir():
            raise CmliteError(f"images folder not found: {self.images_dir}")
        with contextlib.redirect_stdout(io.StringIO()):
            self.coco = COCO(str(ann_file))
        self.category_ids = tuple(sorted(self.coco.getCatIds()))
        if not self.category_ids:
            raise CmliteError(f"{ann_file} defines no categories")
        self.class_names = tuple(self.coco.cats[c]["name"] for c in self.category_ids)
        self._contiguous = {c: i for i, c in enumerate(self.category_ids)}
        self.ids = sorted(self.coco.getImgIds())
        if not self.ids:
            raise CmliteError(f"{ann_file} lists no images")

    def __len__(self) -> int:
        return len(self.ids)

    def load(self, index: int, min_size: int, max_size: int, flip: bool = False) -> Sample:
        image_id = self.ids[index]
        info = self.coco.imgs[image_id]
        img = cv2.imread(str(self.images_dir / info["file_name"]), cv2.IMREAD_COLOR)
        if img is None:
            raise CmliteError(f"cannot read {self.images_dir / info['file_name']}")
        anns = [a for a in self.coco.imgToAnns[image_id] if not a.get("iscrowd", 0)]
        h, w = img.shape[:2]
        rh, rw = resized_size(h, w, min_size, max_size)
        img = resize_bilinear_pil(img, rh, rw)
        masks = np.zeros((len(anns), rh, rw), bool)
        for i, a in enumerate(anns):
            m = self.coco.annToMask(a)
            masks[i] = cv2.resize(m, (rw, rh), interpolation=cv2.INTER_NEAREST) > 0 if (rh, rw) != (h, w) else m > 0
        if flip:
            img, masks = img[:, ::-1].copy(), masks[:, :, ::-1].copy()
        keep = masks.reshape(len(anns), -1).any(axis=1)
        masks = masks[keep]
        classes = np.array([self._contiguous[a["category_id"]] for a, k in zip(anns, keep) if k], np.int64)
        boxes = np.zeros((len(masks), 4), np.float32)
        for i, m in enumerate(masks):
            ys, xs = np.nonzero(m)
            boxes[i] = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        return Sample(img, boxes, classes, masks)
