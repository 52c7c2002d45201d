"""Instances -> the standard COCO results format (bbox xywh, category_id, score, RLE segmentation)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from pycocotools import mask as mask_util

from runtimes.instances import Instances


def image_ids(paths: list[Path]) -> list[int]:
    """COCO style, the file name's stem (000123.png -> 123) when every stem is a number and no two are equal;
    otherwise 1..N in the given order. Never two images with one id."""
    stems = [p.stem for p in paths]
    if all(s.isdigit() for s in stems) and len({int(s) for s in stems}) == len(stems):
        return [int(s) for s in stems]
    return list(range(1, len(paths) + 1))


def to_coco_results(inst: Instances, image_id: int, category_ids, file_name: str | None = None) -> list[dict]:
    """file_name: recorded in each result (an extra field, as mask_score) to tell the images apart."""
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
            **({"file_name": file_name} if file_name is not None else {}),
        })
    return results
