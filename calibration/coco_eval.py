"""COCO box and mask AP of any Segmenter (PyTorch or converted) with pycocotools.

Box AP ranks detections by score; mask AP by mask_score when the model has a MaskIoU head, as the
official CenterMask evaluation does. Metrics are on a 0-100 scale.
"""
from __future__ import annotations

import contextlib
import io
import statistics
import sys
import time
from pathlib import Path

from cmlite.runtimes.errors import CmliteError
from cmlite.runtimes.pipeline import Segmenter
from cmlite.runtimes.progress import progress_bar

from .coco_results import to_coco_results
from cmlite.runtimes.images import read_bgr

STATS = ("ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large")


def load_coco(ann_file: str | Path):
    from pycocotools.coco import COCO

    ann_file = Path(ann_file)
    if not ann_file.is_file():
        raise CmliteError(f"annotations not found: {ann_file} (a COCO instances_*.json)")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return COCO(str(ann_file))
    except Exception as e:  # json errors, missing keys
        raise CmliteError(f"{ann_file} is not a COCO instances file ({type(e).__name__}: {e})") from None


def coco_metrics(coco_gt, results: list[dict], image_ids: list[int] | None = None) -> dict[str, float]:
    """{box_ap, box_ap50, ..., mask_ap, mask_ap50, ...} for COCO results (as `to_coco_results` writes).

    Mask AP ranks by `mask_score` (equal to `score` for models without a MaskIoU head). `image_ids`: score only
    the ground truth of these images (those evaluated), not of the whole file."""
    from pycocotools.cocoeval import COCOeval

    out = {}
    for iou_type, prefix in (("bbox", "box"), ("segm", "mask")):
        dets = []
        for r in results:
            d = dict(r)
            if iou_type == "bbox":
                d.pop("segmentation", None)
            else:
                d["score"] = d.get("mask_score", d["score"])
            dets.append(d)
        if not dets:
            out.update({f"{prefix}_{s}": 0.0 for s in STATS})
            continue
        with contextlib.redirect_stdout(io.StringIO()):
            coco_dt = coco_gt.loadRes(dets)
            ev = COCOeval(coco_gt, coco_dt, iou_type)
            if image_ids is not None:
                ev.params.imgIds = list(image_ids)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        # COCOeval reports -1 where a size range has no ground truth; keep that as nan
        out.update({f"{prefix}_{s}": (float(v) * 100 if v >= 0 else float("nan"))
                    for s, v in zip(STATS, ev.stats[:6])})
    return out


def _check_names(seg: Segmenter, coco_gt, shared: set[int]) -> None:
    """Shared ids must mean the same classes: a COCO model (1 = person, ...) scored on a dataset whose 1..8 are
    other things gives an AP near 0 that means nothing. Names are compared where the model has them."""
    if not seg.class_names:
        return
    model_names = {c: n.lower() for c, n in zip(seg.category_ids, seg.class_names)}
    data_names = {c: coco_gt.cats[c].get("name", "").lower() for c in shared}
    if not any(model_names.get(c) == data_names[c] for c in shared):
        pairs = ", ".join(f"{c}: {model_names.get(c)!r} vs {data_names[c]!r}" for c in sorted(shared)[:3])
        raise CmliteError(f"the model's classes are not the dataset's: the same ids name other classes ({pairs}, "
                          f"...): evaluate a model trained on this dataset")


def evaluate(seg: Segmenter, ann_file: str | Path, images_dir: str | Path, limit: int | None = None,
             progress: bool = True, on_image=None, mode: str = "auto") -> tuple[dict, list[dict]]:
    """Predict every image of a COCO file and score it. Returns (metrics, COCO results).

    The images go through runtimes/modes/ in `mode` (reading and RLE encoding beside the graphs); the metrics
    add `images_per_s`, the rate of the whole pass. on_image: called after each image (progress shown elsewhere,
    e.g. by `cmlite bench`'s parent process)."""
    from cmlite.runtimes.modes import stream

    coco_gt = load_coco(ann_file)
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise CmliteError(f"images folder not found: {images_dir}")
    ids = sorted(coco_gt.getImgIds())[:limit] if limit else sorted(coco_gt.getImgIds())
    if not ids:
        raise CmliteError(f"{ann_file} lists no images")
    missing = [coco_gt.imgs[i]["file_name"] for i in ids if not (images_dir / coco_gt.imgs[i]["file_name"]).is_file()]
    if missing:  # found before hours of work, not at the first missing file
        raise CmliteError(f"{len(missing)} of the {len(ids)} images {Path(ann_file).name} names are not in "
                          f"{images_dir} (e.g. {missing[0]}): give the folder that holds them (--images)")
    dataset_cats = set(coco_gt.getCatIds())
    model_cats = set(seg.category_ids)
    if not dataset_cats & model_cats:
        raise CmliteError(f"the model's categories {sorted(model_cats)[:8]}... share nothing with the dataset's "
                          f"{sorted(dataset_cats)[:8]}...: evaluate a model trained on this dataset")
    _check_names(seg, coco_gt, dataset_cats & model_cats)

    def finish(image_id, job) -> None:
        job.extras["results"] = [r for r in to_coco_results(job.instances, image_id, seg.category_ids)
                                 if r["category_id"] in dataset_cats]

    def reader(image_id):
        path = images_dir / coco_gt.imgs[image_id]["file_name"]
        return lambda: read_bgr(path)

    results, times = [], []
    t0 = time.perf_counter()
    for image_id, job in progress_bar(stream(seg, ((i, reader(i)) for i in ids), mode, finish), total=len(ids), desc="eval",
                              unit="img", disable=not progress, file=sys.stderr):
        if job.error is not None:
            raise job.error
        times.append(sum(job.timings[s] for s in seg.STAGES))
        results += job.extras["results"]
        if on_image:
            on_image()
    seconds = time.perf_counter() - t0
    metrics = coco_metrics(coco_gt, results, ids)
    metrics.update(images=len(ids), detections=len(results), median_ms=statistics.median(times),
                   images_per_s=len(ids) / seconds if seconds > 0 else float("nan"))
    return metrics, results
