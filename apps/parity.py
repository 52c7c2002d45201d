"""Parity of a converted model with the PyTorch model: a verdict on what the user sees (the instances: found, where,
their masks and scores), pooled over the images, against criteria per precision that are printed with it; and,
as diagnostics, each stage's error and the first that exceeds its tolerance.

What PASS promises, per precision (CRITERIA): FP32 reproduces every instance and every stage; FP16, BF16 and INT8
find the instances that matter (those scoring at least `min_score`: lower ones sit at the detection threshold and
come and go), with masks, boxes and scores as close as the precision allows. The INT8 criteria were set on the
demo's INT8 models over the whole validation set (README, "Parity"; not on a trained V-19-eSE, none is here); a
broken conversion (a wrong scale, a swapped graph, a skipped layer) fails them (tests/test_parity.py)."""
from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from cmlite.runtimes.decode import box_iou_matrix
from cmlite.runtimes.errors import CmliteError
from cmlite.runtimes.instances import Instances
from cmlite.runtimes.pipeline import Segmenter

from .atomic import check_file_path, write_json_atomic
from .model_args import add_runtime_args, config_overrides, load_model, need_torch

# relative error beyond which a float stage counts as diverged, per precision (diagnostics; FP32's verdict needs them)
TOLERANCE = {"fp32": 1e-3, "fp16": 3e-2, "bf16": 5e-2, "int8": 0.15}
# graph 2's mask probabilities under INT8: a boundary pixel moves by up to ~0.4 (measured on the default model,
# where mask AP stays within 0.3); other precisions use TOLERANCE
GRAPH2_TOLERANCE = {"int8": 0.5}


@dataclass(frozen=True)
class Criteria:
    """What PASS promises for a precision, judged on the instances, pooled over every image compared."""
    min_score: float  # reference instances scoring below this may come and go (they sit at the detection threshold)
    matched: float  # share of those the model finds: same class, box IoU >= 0.5 (at least; one miss is allowed
    #                 whenever any is, so that an image of 16 may swap its 16th detection at the cap for the 17th)
    extra: float  # instances of the model scoring >= min_score that the reference lacks, per reference one (at most;
    #               one is allowed whenever any is)
    median_mask_iou: float  # of the found instances (at least)
    low_mask_iou: float  # their `low`-th percentile (at least): a few bad masks fail, one jagged edge does not
    low_box_iou: float  # the same percentile of their box IoU (at least)
    score_diff: float  # the (100 - low)-th percentile of |score difference| (at most)
    low: float = 10.0  # the percentile that stands for "the worst instances"; 0: the worst one
    stages: bool = False  # every stage within TOLERANCE too (FP32: the graphs are the same model)

    def describe(self) -> str:
        worst = "the worst" if self.low == 0 else f"the {self.low:g}% worst"
        one = " (one always allowed)" if self.matched < 1 else ""
        return (f"{self.matched:.0%} of the reference's instances scoring >= {self.min_score:g} found (same class, box "
                f"IoU >= 0.5){one}, at most {self.extra:.0%} new ones{one}"
                + ("" if self.matched == 1 else f" (where an image fills the detection cap, those within "
                   f"{self.score_diff:g} of its lowest score may come and go)")
                + f"; mask IoU median >= "
                f"{self.median_mask_iou:g} and "
                f"{worst} >= {self.low_mask_iou:g}; box IoU of {worst} >= {self.low_box_iou:g}; score change of "
                f"{worst} <= {self.score_diff:g}" + ("; every stage within its tolerance" if self.stages else ""))


CRITERIA = {
    "fp32": Criteria(min_score=0.0, matched=1.0, extra=0.0, median_mask_iou=0.99, low_mask_iou=0.98, low_box_iou=0.99,
                     score_diff=1e-3, low=0.0, stages=True),
    "fp16": Criteria(min_score=0.1, matched=0.98, extra=0.02, median_mask_iou=0.98, low_mask_iou=0.9,
                     low_box_iou=0.95, score_diff=0.02),
    "bf16": Criteria(min_score=0.1, matched=0.95, extra=0.05, median_mask_iou=0.97, low_mask_iou=0.85,
                     low_box_iou=0.9, score_diff=0.04),
    "int8": Criteria(min_score=0.3, matched=0.95, extra=0.05, median_mask_iou=0.95, low_mask_iou=0.75,
                     low_box_iou=0.85, score_diff=0.08),
}


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
    ref_score: float = float("nan")


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
    matches = [Match(i, j, ref.label(i), ref_score=float(ref.scores[i])) if j < 0 else
               Match(i, j, ref.label(i), iou, mask_iou(ref.masks[i], got.masks[j]), float(got.scores[j] - ref.scores[i]),
                     float(ref.scores[i]))
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
    extra_scores: list[float] = field(default_factory=list)  # the scores of the model's unmatched instances
    cap_score: float = float("-inf")  # where either side filled the detection cap (post_nms_topk): the higher of the
    #                                   full sides' lowest kept scores; instances scoring near it may come and go

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
                "first_divergence": self.first_divergence or "none"}


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
    return compare_instances(ref, got, converted.config.post_nms_topk, stages, details,
                             tuple(ct["preprocessed"].tensor.shape[2:]))


def compare_instances(ref: Instances, got: Instances, cap: int, stages: list | None = None, details: dict | None = None,
                      input_hw: tuple[int, int] = (0, 0)) -> ParityResult:
    """Two runs' instances of one image matched (and `stages` so far, from `compare`); cap: the detection cap
    (post_nms_topk) both ran with. Also what compares two runs' saved results (ARM against x86: `predict --json`
    read back by calibration.coco_results.from_coco_results)."""
    stages = list(stages or [])
    matches, extra = match_instances(ref, got)
    ok = all(m.got >= 0 for m in matches) and not extra  # every instance, none new (a diagnostic: judge() decides)
    worst = min((m.mask_iou for m in matches if m.got >= 0), default=0.0)
    stages.append(("instances", worst, ok))
    cuts = [float(x.scores.min()) for x in (ref, got) if len(x) >= cap]
    return ParityResult(stages, matches, extra, len(ref), len(got), details or {}, input_hw,
                        [float(got.scores[j]) for j in extra], max(cuts, default=float("-inf")))


@dataclass
class Verdict:
    precision: str
    criteria: Criteria
    figures: dict  # pooled over the images
    failed: list[str]  # each criterion missed, with the figure

    @property
    def passed(self) -> bool:
        return not self.failed

    @property
    def judged(self) -> bool:
        return self.figures["instances"] > 0

    @property
    def word(self) -> str:
        return "PASS" if self.passed else "FAIL" if self.judged else "NO VERDICT"


def judge(results: list[ParityResult], precision: str, min_score: float | None = None) -> Verdict:
    """One model's verdict over every image it was compared on (CRITERIA of its precision; min_score: another
    floor for the instances that count, for models whose scores are low)."""
    c = CRITERIA.get(precision, CRITERIA["fp32"])
    if min_score is not None:
        c = replace(c, min_score=min_score)

    def at_cap(score: float, r: ParityResult) -> bool:  # near a full image's lowest kept score: which of such
        return score < r.cap_score + c.score_diff        # near-ties the cap keeps is the precision's rounding

    counted = [(m, r) for r in results for m in r.matches if m.ref_score >= c.min_score]
    considered = [m for m, r in counted if not at_cap(m.ref_score, r)]  # must be found
    compared = [m for m, _ in counted if m.got >= 0]  # every pair found, at the cap or not
    extra = [s for r in results for s in r.extra_scores if s >= c.min_score and not at_cap(s, r)]
    at_cap_n = sum(at_cap(m.ref_score, r) for m, r in counted) + \
        sum(at_cap(s, r) for r in results for s in r.extra_scores if s >= c.min_score)
    low = c.low

    def pct(values, q):
        return float(np.percentile(values, q)) if values else float("nan")

    found_n = sum(m.got >= 0 for m in considered)
    f = {"images": len(results), "instances": len(considered), "found": found_n, "at_cap": at_cap_n,
         "compared": len(compared), "found_share": found_n / len(considered) if considered else float("nan"),
         "new": len(extra), "new_share": len(extra) / max(len(considered), 1),
         "median_mask_iou": pct([m.mask_iou for m in compared], 50),
         "low_mask_iou": pct([m.mask_iou for m in compared], low),
         "low_box_iou": pct([m.box_iou for m in compared], low),
         "score_diff": pct([abs(m.score_diff) for m in compared], 100 - low),
         "stages_ok": all(ok for r in results for name, _err, ok in r.stages if name != "instances")}
    failed = []
    if not counted:
        failed.append(f"no reference instance scores >= {c.min_score:g}: nothing to judge (give images with objects, "
                      f"or a lower floor with --min-score)")
    elif not considered:
        failed.append(f"every reference instance scoring >= {c.min_score:g} is within {c.score_diff:g} of a full "
                      f"image's lowest kept score (the detection cap), where near-ties come and go: nothing to judge "
                      f"(give images with fewer detections)")
    else:
        def allowed(share: float) -> int:  # instances that may be missed or new: one at least, where any may
            return 0 if share <= 0 else max(1, int(share * len(considered)))

        checks = [("found", len(considered) - f["found"] <= allowed(1 - c.matched),
                   f"{f['found']} of {f['instances']} found"),
                  ("new", len(extra) <= allowed(c.extra), f"{f['new']} new"),
                  ("median mask IoU", f["median_mask_iou"] >= c.median_mask_iou, f"{f['median_mask_iou']:.3f}"),
                  ("low mask IoU", f["low_mask_iou"] >= c.low_mask_iou, f"{f['low_mask_iou']:.3f}"),
                  ("low box IoU", f["low_box_iou"] >= c.low_box_iou, f"{f['low_box_iou']:.3f}"),
                  ("score change", f["score_diff"] <= c.score_diff, f"{f['score_diff']:.4f}")]
        if c.stages:
            checks.append(("stages", f["stages_ok"], "a stage beyond its tolerance"))
        failed = [f"{name}: {figure}" for name, ok, figure in checks if not ok]
    return Verdict(precision, c, f, failed)


# -- the `cmlite parity` command ---------------------------------------------------------------------------

def cmd_parity(args) -> int:
    from cmlite import runtimes
    from cmlite.runtimes.images import read_bgr

    from .predict import check_images
    from .table import format_table, plural

    images = check_images(args.images)
    check_file_path(args.json, "--json")
    if args.min_score is not None and not 0 <= args.min_score < 1:
        raise CmliteError(f"--min-score {args.min_score}: give a score in [0, 1), e.g. 0.2")
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
    pairs, rows, verdicts = [], [], []
    for folder in args.model:
        try:
            seg = runtimes.load(folder, threads=args.threads, maskiou=maskiou, backend=args.backend,
                                **config_overrides(args))
        except CmliteError as e:
            problems.append(f"{folder}: skipped: {e}")
            print(f"cmlite: {problems[-1]}", file=sys.stderr)
            continue
        precision, results = seg.manifest.precision, []
        for path, img in loaded:
            res = compare(reference, seg, img, precision)
            results.append(res)
            s = res.summary()
            pairs.append({"model": str(folder), "image": str(path), "precision": precision, **s,
                          "stages": [{"stage": n, "error": e, "ok": ok} for n, e, ok in res.stages],
                          "instances_detail": [vars(m) for m in res.matches]})
            rows.append([Path(folder).name, path.name, f"{s['matched']}/{s['ref_instances']} ({s['instances']})",
                         s["min_box_iou"], s["min_mask_iou"], s["median_mask_iou"], s["max_abs_score_diff"],
                         s["first_divergence"]])
            if args.stages:
                hw = "x".join(map(str, res.input_hw))
                print(f"{Path(folder).name} on {path.name} ({precision} tolerances, input {hw}):")
                print(format_table(["stage", "error", "ok"], [[n, e, "yes" if ok else "NO"] for n, e, ok in res.stages],
                                   floatfmt=".2e"))
        verdicts.append((folder, judge(results, precision, args.min_score)))
    if rows:
        print(format_table(["model", "image", "matched (got)", "min box IoU", "min mask IoU", "median mask IoU",
                            "max |dscore|", "stage beyond tolerance"], rows, floatfmt=".4f"))
        print()
    _print_verdicts(verdicts)
    failed = [Path(f).name for f, v in verdicts if not v.passed]
    if verdicts:
        words = {w: [Path(f).name for f, v in verdicts if v.word == w] for w in ("FAIL", "NO VERDICT")}
        print(f"{len(verdicts) - len(failed)} of {plural(len(verdicts), 'model')} PASS"
              + "".join(f"; {w}: {', '.join(names)}" for w, names in words.items() if names))
    if args.json and verdicts:
        write_json_atomic(Path(args.json), {
            "criteria": {v.precision: asdict(v.criteria) for _, v in verdicts},  # as applied (--min-score)
            "models": [{"model": str(f), "precision": v.precision, "verdict": v.word, "failed": v.failed,
                        **v.figures} for f, v in verdicts],
            "pairs": pairs})
        print(f"wrote {args.json}")
    if problems:
        print(f"cmlite: {len(problems)} input(s) skipped (above); the others were compared", file=sys.stderr)
    return 1 if problems or failed else 0


def _print_verdicts(verdicts: list[tuple[str, Verdict]]) -> None:
    """The verdict per model, with its pooled figures, and what PASS promises for each precision shown."""
    from .table import format_table

    if not verdicts:
        return
    rows = [[Path(f).name, v.precision, v.figures["images"], f"{v.figures['found']}/{v.figures['instances']}",
             v.figures["new"], v.figures["at_cap"], v.figures["median_mask_iou"], v.figures["low_mask_iou"],
             v.figures["low_box_iou"], v.figures["score_diff"],
             v.word + (f" ({'; '.join(v.failed)})" if v.failed else "")]
            for f, v in verdicts]
    print(format_table(["model", "precision", "images", "found", "new", "at the cap", "median mask IoU",
                        "low mask IoU", "low box IoU", "score change", "verdict"], rows, floatfmt=".3f"))
    for precision, c in {v.precision: v.criteria for _, v in verdicts}.items():
        print(f"{precision} PASS: {c.describe()}")


def add_parser(sub) -> None:
    p = sub.add_parser("parity", help="compare converted models with the PyTorch model on images",
                       description="Per-instance box/mask IoU and score difference, and the first stage that "
                                   "diverges beyond the precision's tolerance.")
    p.add_argument("images", nargs="+", help="image files or folders")
    p.add_argument("--weights", help="the checkpoint the models were converted from (default: the embedded default "
                                     "model)")
    p.add_argument("--model", action="append", required=True, help="converted model folder (repeat for more)")
    p.add_argument("--json", metavar="OUT", help="write the full report as JSON")
    p.add_argument("--min-score", type=float, metavar="S",
                   help="judge the reference's instances scoring at least S (default: the precision's floor, printed "
                        "with the verdict: 0 for fp32, 0.1 for fp16/bf16, 0.3 for int8); lower it for a model whose "
                        "scores are low")
    p.add_argument("-v", "--verbose", dest="stages", action="store_true",
                   help="print the stage table per model and image (and the libraries' log lines, as cmlite -v)")
    add_runtime_args(p)
    p.set_defaults(func=cmd_parity)
