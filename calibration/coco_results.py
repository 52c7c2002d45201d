"""Instances -> the standard COCO results format (bbox xywh, category_id, score, RLE segmentation).

Masks are encoded from each instance's box region (Instances.box_masks): the run lengths of the columns the box
spans, with the zeros before and after it added, compressed by pycocotools. The same RLE as encoding the
full-frame mask, without making one.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from pycocotools import mask as mask_util

from cmlite.runtimes.instances import BoxMasks, Instances


def image_ids(paths: list[Path]) -> list[int]:
    """COCO style, the file name's stem (000123.png -> 123) when every stem is a number and no two are equal;
    otherwise 1..N in the given order. Never two images with one id."""
    stems = [p.stem for p in paths]
    if all(s.isdigit() for s in stems) and len({int(s) for s in stems}) == len(stems):
        return [int(s) for s in stems]
    return list(range(1, len(paths) + 1))


def box_mask_rle(masks: BoxMasks, i: int) -> dict:
    """The compressed COCO RLE of mask i in the whole frame (column-major runs, starting with a run of zeros)."""
    h, w = masks.image_hw
    crop = masks.crops[i]
    y0, x0 = (int(v) for v in masks.origins[i])
    ch, cw = crop.shape
    if not crop.any():
        counts = [h * w]
    else:
        band = np.zeros((cw, h), np.uint8)  # the box's columns, each a row here: column-major order
        band[:, y0:y0 + ch] = crop.T
        flat = band.reshape(-1)
        edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
        runs = np.diff(np.concatenate([[0], edges, [flat.size]])).tolist()
        if flat[0]:
            runs.insert(0, 0)  # RLE starts with the zeros
        runs[0] += x0 * h  # the columns before the box
        tail = (w - x0 - cw) * h  # and after it
        if not flat[-1]:
            runs[-1] += tail
        elif tail:
            runs.append(tail)
        counts = runs
    rle = mask_util.frPyObjects({"counts": counts, "size": [h, w]}, h, w)
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def to_coco_results(inst: Instances, image_id: int, category_ids, file_name: str | None = None,
                    frame: int | None = None) -> list[dict]:
    """file_name: recorded in each result (an extra field, as mask_score) to tell the images apart; frame: a
    video frame's index, also recorded."""
    results = []
    for i in range(len(inst)):
        x1, y1, x2, y2 = (float(v) for v in inst.boxes[i])
        results.append({
            "image_id": int(image_id),
            "category_id": int(category_ids[int(inst.classes[i])]),
            "bbox": [x1, y1, x2 - x1, y2 - y1],
            "score": float(inst.scores[i]),
            "segmentation": box_mask_rle(inst.box_masks, i),
            "mask_score": float(inst.mask_scores[i]),
            **({"file_name": file_name} if file_name is not None else {}),
            **({"frame": frame} if frame is not None else {}),
        })
    return results


def from_coco_results(results: list[dict], image_hw: tuple[int, int], category_ids, class_names=()) -> Instances:
    """The inverse of `to_coco_results` for one image's results: Instances again (masks decoded from the RLE, each a
    full-frame crop), e.g. to compare a run's `predict --json` with another's by the parity tool's matching."""
    index = {int(c): i for i, c in enumerate(category_ids)}
    order = sorted(range(len(results)), key=lambda k: -results[k]["score"])
    rs = [results[k] for k in order]
    if not rs:
        return Instances.empty(image_hw, class_names)
    boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in (r["bbox"] for r in rs)], np.float32)
    masks = [mask_util.decode(r["segmentation"]).astype(bool) for r in rs]
    return Instances(boxes, np.array([r["score"] for r in rs], np.float32),
                     np.array([index[int(r["category_id"])] for r in rs], np.int64),
                     BoxMasks(masks, np.zeros((len(rs), 2), np.int64), tuple(image_hw)),
                     np.array([r.get("mask_score", r["score"]) for r in rs], np.float32), tuple(image_hw),
                     tuple(class_names))
