"""Parity of a converted model with the PyTorch model: per-instance agreement and the first stage that diverges."""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cmlite.runtimes.decode import box_iou_matrix
from cmlite.runtimes.errors import CmliteError
from cmlite.runtimes.instances import Instances
from cmlite.runtimes.pipeline import Segmenter

from .atomic import check_file_path, write_json_atomic
from .model_args import add_runtime_args, config_overrides, load_model, need_torch

# relative error beyond which a float stage counts as diverged, per precision
TOLERANCE = {"fp32": 1e-3, "fp16": 3e-2, "bf16": 5e-2, "int8": 0.15}
# graph 2's mask probabilities under INT8: a boundary pixel moves by up to ~0.4 (measured on the default model,
# where mask AP stays within 0.3); other precisions use TOLERANCE
GRAPH2_TOLERANCE = {"int8": 0.5}
# the smallest mask IoU of a matched instance that still counts as the same result
MIN_MASK_IOU = {"int8": 0.85}


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        return float("inf")
    scale = float(np.abs(b).max()) if b.size else 0.0
    return float(np.abs(a.astype(np.float64) - b).max() / max(scale, 1e-12)) if b.size else 0.0


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


@dataclass
class Match:
    ref: int
    got: int  # -1 when unmatched
    label: str
    box_iou: float = 0.0
    mask_iou: float = 0.0
    score_diff: float = float("nan")


def greedy_pairs(ref_boxes, ref_classes, ref_scores, boxes, classes, min_iou: float = 0.5):
    """Greedy by reference score: each reference item takes the same-class item with the highest box IoU
    (>= min_iou). Returns [(ref index, index or -1, IoU)] in reference score order, and the unmatched items."""
    ious = box_iou_matrix(ref_boxes, boxes) if len(ref_boxes) and len(boxes) else np.zeros((len(ref_boxes), len(boxes)))
    free = np.ones(len(boxes), bool)
    pairs = []
    for i in np.argsort(-ref_scores, kind="stable"):
        cand = np.nonzero(free & (classes == ref_classes[i]) & (ious[i] >= min_iou))[0]
        if not len(cand):
            pairs.append((int(i), -1, 0.0))
            continue
        j = int(cand[np.argmax(ious[i, cand])])
        free[j] = False
        pairs.append((int(i), j, float(ious[i, j])))
    return pairs, np.nonzero(free)[0].tolist()


def match_instances(ref: Instances, got: Instances, min_iou: float = 0.5) -> tuple[list[Match], list[int]]:
    pairs, extra = greedy_pairs(ref.boxes, ref.classes, ref.scores, got.boxes, got.classes, min_iou)
    matches = [Match(i, j, ref.label(i)) if j < 0 else
               Match(i, j, ref.label(i), iou, mask_iou(ref.masks[i], got.masks[j]), float(got.scores[j] - ref.scores[i]))
               for i, j, iou in pairs]
    return matches, extra


@dataclass
class ParityResult:
    stages: list[tuple[str, float, bool]]  # (stage, error measure, within tolerance)
    matches: list[Match]
    extra: list[int]
    n_ref: int
    n_got: int
    details: dict = field(default_factory=dict)
    input_hw: tuple[int, int] = (0, 0)  # the graph input both ran at

    @property
    def first_divergence(self) -> str | None:
        return next((s for s, _, ok in self.stages if not ok), None)

    def summary(self) -> dict:
        m = [x for x in self.matches if x.got >= 0]
        return {"ref_instances": self.n_ref, "instances": self.n_got, "matched": len(m),
                "min_box_iou": min((x.box_iou for x in m), default=float("nan")),
                "min_mask_iou": min((x.mask_iou for x in m), default=float("nan")),
                "median_mask_iou": float(np.median([x.mask_iou for x in m])) if m else float("nan"),
                "max_abs_score_diff": max((abs(x.score_diff) for x in m), default=float("nan")),
                "first_divergence": self.first_divergence or "none",
                "verdict": "PASS" if self.first_divergence is None else "FAIL"}


def compare(reference: Segmenter | tuple, converted: Segmenter, image: np.ndarray,
            precision: str = "fp32") -> ParityResult:
    """Run both on `image` and compare stage by stage; tolerance from the converted model's precision.
    reference: a Segmenter, or its (instances, trace) already computed for this image (run once, compare many).
    A Segmenter reference runs at the converted model's input: a fixed-size graph (TFLite, or --input-size) gets
    the image fitted into its fixed frame, and so does the reference, so that equal models compare equal."""
    tol = TOLERANCE.get(precision, 1e-3)
    ct: dict = {}
    if isinstance(reference, tuple):
        ref, rt = reference
    else:
        rt = {}
        reference.fixed_hw = converted.fixed_hw
        ref = reference.predict(image, rt)
    got = converted.predict(image, ct)
    stages: list[tuple[str, float, bool]] = []
    details: dict = {}
    e = rel_err(ct["preprocessed"].tensor, rt["preprocessed"].tensor)
    stages.append(("input", e, e == 0.0))
    per_output = {}
    for lvl, (a, b) in enumerate(zip(ct["dense"].levels, rt["dense"].levels)):
        for name, x, y in zip(("logits", "bbox_reg", "ctrness"), a, b):
            per_output[f"{name}_{lvl}"] = rel_err(x, y)
    for i, (x, y) in enumerate(zip(ct["dense"].features, rt["dense"].features)):
        per_output[f"p{i + 3}"] = rel_err(x, y)
    details["graph1"] = per_output
    e = max(per_output.values())
    stages.append(("graph1", e, e <= tol))
    rp, cp = rt["proposals"], ct["proposals"]
    # the same proposals, possibly reordered by near-tied scores: pair them up, then compare in pairs
    pairs, unpaired = greedy_pairs(rp.boxes, rp.classes, rp.scores, cp.boxes, cp.classes, min_iou=0.9)
    same = not unpaired and all(j >= 0 for _, j, _ in pairs)
    details["proposals"] = {"ref": len(rp), "converted": len(cp), "paired": sum(j >= 0 for _, j, _ in pairs)}
    if same:
        ri = np.array([i for i, _, _ in pairs], np.int64)
        ci = np.array([j for _, j, _ in pairs], np.int64)
        e = rel_err(cp.boxes[ci], rp.boxes[ri])
        stages.append(("proposals", e, e <= tol))
        lv = float(np.mean(rt["level_assignment"][ri] != ct["level_assignment"][ci])) if len(ri) else 0.0
        stages.append(("levels", lv, lv == 0.0))
        e = rel_err(ct["pooled"][ci], rt["pooled"][ri])
        stages.append(("roi_align", e, e <= tol))
        e = rel_err(ct["mask_probs"][ci], rt["mask_probs"][ri])
        if rt["maskiou"] is not None and ct["maskiou"] is not None:
            e = max(e, rel_err(ct["maskiou"][ci], rt["maskiou"][ri]))
        stages.append(("graph2", e, e <= GRAPH2_TOLERANCE.get(precision, tol)))
    else:
        stages.append(("proposals", float("inf"), False))
    matches, extra = match_instances(ref, got)
    min_iou = MIN_MASK_IOU.get(precision, 0.99)
    ok = all(m.got >= 0 for m in matches) and not extra and all(m.mask_iou >= min_iou for m in matches)
    worst = min((m.mask_iou for m in matches if m.got >= 0), default=0.0)
    stages.append(("instances", worst, ok))
    return ParityResult(stages, matches, extra, len(ref), len(got), details,
                        tuple(ct["preprocessed"].tensor.shape[2:]))


# -- the `cmlite parity` command ---------------------------------------------------------------------------

def cmd_parity(args) -> int:
    from cmlite import runtimes
    from cmlite.runtimes.images import read_bgr

    from .predict import check_images
    from .table import format_table

    images = check_images(args.images)
    check_file_path(args.json, "--json")
    need_torch("cmlite parity (the PyTorch model is its reference)")
    from cmlite import lite

    loaded, problems = [], []
    for path in images:  # a bad image or model is reported and skipped; the others are compared
        try:
            loaded.append((path, read_bgr(path)))
        except CmliteError as e:
            problems.append(f"{path}: skipped: {e}")
            print(f"cmlite: {problems[-1]}", file=sys.stderr)
    if not loaded:
        raise CmliteError(f"none of the {len(images)} images could be read")
    maskiou = args.maskiou == "on"  # both sides alike: off compares graph 2 without the MaskIoU head
    reference = lite.predictor(load_model(args.weights), threads=args.threads, maskiou=maskiou,
                               **config_overrides(args))
    report, rows = [], []
    for folder in args.model:
        try:
            seg = runtimes.load(folder, threads=args.threads, maskiou=maskiou, backend=args.backend,
                                **config_overrides(args))
        except CmliteError as e:
            problems.append(f"{folder}: skipped: {e}")
            print(f"cmlite: {problems[-1]}", file=sys.stderr)
            continue
        for path, img in loaded:
            res = compare(reference, seg, img, seg.manifest.precision)
            s = res.summary()
            report.append({"model": str(folder), "image": str(path), **s,
                           "stages": [{"stage": n, "error": e, "ok": ok} for n, e, ok in res.stages],
                           "instances_detail": [vars(m) for m in res.matches]})
            rows.append([Path(folder).name, path.name, f"{s['matched']}/{s['ref_instances']} ({s['instances']})",
                         s["min_box_iou"], s["min_mask_iou"], s["median_mask_iou"], s["max_abs_score_diff"],
                         s["first_divergence"], s["verdict"]])
            if args.stages:
                hw = "x".join(map(str, res.input_hw))
                print(f"{Path(folder).name} on {path.name} ({seg.manifest.precision} tolerances, input {hw}):")
                print(format_table(["stage", "error", "ok"], [[n, e, "yes" if ok else "NO"] for n, e, ok in res.stages],
                                   floatfmt=".2e"))
    print(format_table(["model", "image", "matched (got)", "min box IoU", "min mask IoU", "median mask IoU",
                        "max |dscore|", "first divergence", "verdict"], rows, floatfmt=".4f"))
    failed = [f"{Path(r['model']).name} on {Path(r['image']).name}" for r in report if r["verdict"] != "PASS"]
    if report:
        print(f"{len(report) - len(failed)} of {len(report)} model-image pairs PASS"
              + (f"; FAIL: {', '.join(failed)}" if failed else ""))
    if args.json and report:
        write_json_atomic(Path(args.json), report)
        print(f"wrote {args.json}")
    if problems:
        print(f"cmlite: {len(problems)} input(s) skipped (above); the others were compared", file=sys.stderr)
    return 1 if problems or failed else 0


def add_parser(sub) -> None:
    p = sub.add_parser("parity", help="compare converted models with the PyTorch model on images",
                       description="Per-instance box/mask IoU and score difference, and the first stage that "
                                   "diverges beyond the precision's tolerance.")
    p.add_argument("images", nargs="+", help="image files or folders")
    p.add_argument("--weights", help="the checkpoint the models were converted from (default: the embedded default "
                                     "model)")
    p.add_argument("--model", action="append", required=True, help="converted model folder (repeat for more)")
    p.add_argument("--json", metavar="OUT", help="write the full report as JSON")
    p.add_argument("-v", "--verbose", dest="stages", action="store_true",
                   help="print the stage table per model and image (and the libraries' log lines, as cmlite -v)")
    add_runtime_args(p)
    p.set_defaults(func=cmd_parity)
