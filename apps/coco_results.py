"""Instances -> the standard COCO results format (bbox xywh, category_id, score, RLE segmentation)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from pycocotools import mask as mask_util

from runtimes.instances import Instances


def image_ids(paths: list[Path]) -> list[int]:
    """The file name's stem when it is a number (COCO style), else the 0-based order."""
    return [int(p.stem) if p.stem.isdigit() else i for i, p in enumerate(paths)]


def to_coco_results(inst: Instances, image_id: int, category_ids) -> list[dict]:
    results = []
    for i in range(len(inst)):
        x1, y1, x2, y2 = (float(v) for v in inst.boxes[i])
        rle = mask_util.encode(np.asfortranarray(inst.masks[i].astype(np.uint8)))
        rle["counts"] = rle["counts"].decode("ascii")
        results.append({
            "image_id": int(image_id),
            "category_id": int(category_ids[int(inst.classes[i])]),
            "bbox": [x1, y1, x2 - x1, y2 - y1],
            "score": float(inst.scores[i]),
            "segmentation": rle,
            "mask_score": float(inst.mask_scores[i]),
        })
    return results
