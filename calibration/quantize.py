"""`cmlite quantize`: calibrated INT8 folders for every target, with one mixed-precision plan chosen by mask AP.

    FP32 twins (converters.convert)  ->  calibration inputs from the frames, made by each twin's own runtime
    -> ONNX Runtime ranges (once)     ->  plan: given, searched on the validation set, or the default
    -> <target>-int8/ per target      ->  FP32 and INT8 mask/box AP of each (with a validation set)

Each target's row in runtimes/target_table.py names its quantizer (calibration/<quantizer>.py, whose build_int8()
writes the INT8 graphs) and the FP32 twin it starts from. The folders are written as `convert` writes them
(converters/folders.py): in a staging folder, renamed into place only when all are complete, so a failed or
interrupted run leaves nothing half-written.
"""
from __future__ import annotations

import importlib
import shutil
from dataclasses import dataclass
from pathlib import Path

from cmlite.runtimes.errors import CmliteError
from cmlite.runtimes.manifest import GraphSpec, read_manifest
from cmlite.runtimes.target_table import NAMES, Target
from cmlite.runtimes.target_table import get as target_row

from . import ort_quant
from . import plan as plans
from .frames import CalibFrames
from .samples import GraphSamples, collect


@dataclass
class Validation:
    annotations: Path
    images: Path
    limit: int | None = None


def check_targets(targets: list[str]) -> list[Target]:
    """The rows of --targets' names (one line for an unknown one): what the rest of quantize works with."""
    if not targets:
        raise CmliteError(f"no targets given: --targets {','.join(NAMES)}")
    return [target_row(t, "target for quantize") for t in targets]


def _check_val_classes(model, val: Validation) -> None:
    from .coco_eval import load_coco

    coco = load_coco(val.annotations)
    names = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
    if set(names) != set(model.category_ids) or any(names[i] != n for i, n in zip(model.category_ids,
                                                                                 model.class_names)):
        raise CmliteError(f"the validation set's classes {sorted(names.values())[:8]} do not match the model's "
                          f"{list(model.class_names)[:8]}: give the model's own validation set (--val)")


class _Int8Folder:
    """An INT8 folder being made from its FP32 twin: graph files replaced, manifest rewritten."""

    def __init__(self, twin: Path, folder: Path, target: Target):
        self.twin, self.folder, self.target = twin, folder, target
        self.manifest = read_manifest(twin)
        folder.mkdir(parents=True)

    def finish(self, graphs: dict[str, GraphSpec], quantization: dict) -> Path:
        from cmlite.converters.convert import add_target_section
        from cmlite.converters.folders import command_line

        m = self.manifest
        m.target, m.precision, m.graphs, m.quantization = self.target.name, "int8", graphs, quantization
        command = command_line()
        if command:  # the command that made this folder (the twin's may be a convert)
            m.provenance = {**m.provenance, "command": command}
        add_target_section(m)
        m.write(self.folder)
        return self.folder


def _evaluate(folder: Path, val: Validation, threads: int | None, backend: str | None = None) -> dict:
    from cmlite import runtimes
    from .coco_eval import evaluate

    m, _ = evaluate(runtimes.load(folder, threads=threads, backend=backend), val.annotations, val.images,
                    limit=val.limit, progress=False)
    return {k: round(m[k], 2) for k in ("mask_ap", "box_ap", "mask_ap50", "box_ap50")} | {"images": m["images"]}


SEARCH_TARGET = "onnx"  # the plan search runs on ONNX Runtime, the fastest target to rebuild


class Quantizer:
    """The FP32 twins, their calibration inputs and the ORT ranges, held while the INT8 folders are built."""

    def __init__(self, work: Path, twins: dict[str, Path], frames: CalibFrames, method: str, threads: int | None,
                 reduce_range: bool, log):
        from cmlite import runtimes

        self.work, self.twins, self.frames, self.method = work, twins, frames, method
        self.threads, self.reduce_range, self.log = threads, reduce_range, log
        self.samples: dict[str, GraphSamples] = {}
        self._fp32_metrics: dict[str, dict] = {}
        for target, twin in twins.items():
            log(f"calibration inputs for {target} ({len(frames.frames)} frames through its FP32 runtime)")
            self.samples[target] = collect(runtimes.load(twin, threads=threads), frames.frames)
        self.pre, self.cache = {}, {}

    def ort_ranges(self, kind: str) -> tuple[Path, Path]:
        """ONNX Runtime's calibration of a graph (for the onnx and tensorrt targets and the plan search), once."""
        if kind not in self.cache:
            self.log(f"calibrating {kind} ({self.method}) ...")
            twin, samples = self.twins[SEARCH_TARGET], self.samples[SEARCH_TARGET]
            self.pre[kind] = ort_quant.preprocess(twin / f"{kind}.onnx", self.work / f"{kind}.pre.onnx")
            self.cache[kind] = ort_quant.calibrate(self.pre[kind], getattr(samples, kind), self.method,
                                                   self.work / f"{kind}.{self.method}.ranges.json")
        return self.pre[kind], self.cache[kind]

    def calibration_record(self) -> dict:
        s = self.samples.get(SEARCH_TARGET) or next(iter(self.samples.values()))
        return {**self.frames.summary(), "dense_samples": len(s.dense), "mask_samples": len(s.masks),
                "mask_rois": s.num_rois, "frame_ids": self.frames.ids}

    def build(self, row: Target, keep_float: list[str], folder: Path, record: dict) -> Path:
        """`folder` as the INT8 model of `row` with `keep_float` kept float; `record` goes to the manifest."""
        f = _Int8Folder(self.twins[row.twin_target], folder, row)
        quantizer = importlib.import_module(f"cmlite.calibration.{row.quantizer}")
        graphs, settings = quantizer.build_int8(self, row, f.twin, f.manifest.graphs, folder, keep_float)
        return f.finish(graphs, {**record, "backend": settings})

    def fp32_metrics(self, row: Target, val: Validation) -> dict:
        """AP of a target's FP32 twin (evaluated once: onnx and tensorrt share theirs, and the search uses it)."""
        twin = row.twin_target
        if twin not in self._fp32_metrics:
            self._fp32_metrics[twin] = _evaluate(self.twins[twin], val, self.threads)
        return self._fp32_metrics[twin]

    def search(self, val: Validation, max_drop: float) -> plans.SearchResult:
        """The plan search runs on ONNX Runtime (the fastest to rebuild); the plan then applies to every target."""
        fp32 = self.fp32_metrics(target_row(SEARCH_TARGET), val)["mask_ap"]
        count = iter(range(10**6))

        def evaluate(keep_float: list[str]) -> float:
            folder = self.build(target_row(SEARCH_TARGET), keep_float, self.work / f"search-{next(count)}", {})
            ap = _evaluate(folder, val, self.threads)["mask_ap"]
            shutil.rmtree(folder)
            return ap

        return plans.search(evaluate, fp32, max_drop, log=self.log)


def int8_up_to_date(folder: Path, model, source: Path | None, fixed_hw, frames: CalibFrames, method: str,
                    keep_float: list[str]) -> str | None:
    """Why `folder` is not what quantizing `model` now would write, or None when it is (see up_to_date)."""
    from cmlite.converters.convert import target_hw, up_to_date

    if not (folder / "manifest.json").is_file():
        return "no such folder"
    m = read_manifest(folder)
    why = up_to_date(folder, model, source, target_hw(m.target, model.config, fixed_hw))
    if why:
        return why
    q = m.quantization or {}
    if m.precision != "int8" or (q.get("calibration") or {}).get("digest") != frames.digest:
        return "other calibration frames"
    if q.get("method") != method or (q.get("plan") or {}).get("keep_float") != keep_float:
        return "another method or plan"
    return None


def find_twins(model, targets: list[Target], folders: list[Path], source: Path | None,
               fixed_hw) -> dict[str, Path]:
    """target name -> an up-to-date `<target>-fp32` folder of this model in one of `folders` (the first found)."""
    from cmlite.converters.fp32_graphs import input_hw
    from cmlite.converters.convert import up_to_date

    found = {}
    for row in targets:
        hw = input_hw(row, model.config, fixed_hw)
        for d in folders:
            twin = d / row.folder("fp32")
            if twin.is_dir() and up_to_date(twin, model, source, hw) is None:
                found[row.name] = twin
                break
    return found


def _reused(out_dir: Path, targets: list[Target], model, source, fixed_hw, frames, method, keep_float, reuse,
            log) -> list[Target]:
    """The targets whose INT8 folder in out_dir is already what this run would write (with reuse and a given plan)."""
    if not reuse or keep_float is None:
        return []
    kept = [row for row in targets if int8_up_to_date(out_dir / row.folder("int8"), model, source, fixed_hw, frames,
                                                      method, plans.expand(keep_float)) is None]
    if kept:
        log(f"reusing {', '.join(row.folder('int8') for row in kept)} (quantized from this model with these frames, "
            f"method and plan by this cmlite)")
    return kept


def _twins(model, targets: list[Target], searching: bool, dirs: list[Path], work: Path, source, fixed_hw,
           log) -> dict[str, Path]:
    """target name -> its FP32 twin folder: up-to-date ones reused from `dirs`, the others converted into `work`."""
    from cmlite.converters.convert import convert

    wanted = sorted({row.twin_target for row in targets} | ({SEARCH_TARGET} if searching else set()))
    twins = find_twins(model, [target_row(t) for t in wanted], dirs, source, fixed_hw)
    missing = [t for t in wanted if t not in twins]
    log("FP32 twins: " + "; ".join([f"reusing {twins[t]} (up to date)" for t in twins]
                                   + ([f"converting {', '.join(missing)}"] if missing else [])))
    if missing:
        twins |= {read_manifest(f).target: f for f in convert(model, work / "fp32", missing, ["fp32"],
                                                              fixed_hw=fixed_hw, source=source, log=log)}
    return twins


def _choose_plan(q: Quantizer, keep_float: list[str] | None, val: Validation | None, max_ap_drop: float) -> dict:
    """The plan record: the modules kept float and how they were chosen (given, searched or the default)."""
    if keep_float is not None:
        chosen, how, search = plans.expand(keep_float), "given (--keep-float)", None
    elif val is not None:
        q.log(f"searching the plan on {val.annotations} (max mask AP drop {max_ap_drop}) ...")
        result = q.search(val, max_ap_drop)
        chosen, how = result.plan, f"searched on {val.annotations} (max mask AP drop {max_ap_drop})"
        search = {"fp32_mask_ap": result.fp32_ap, "all_int8_mask_ap": result.all_int8_ap,
                  "plan_mask_ap": result.int8_ap, "blocks": result.blocks, "sensitivity": result.sensitivity,
                  "steps": result.steps}
    else:
        chosen, how, search = list(plans.DEFAULT_PLAN), "default (measured on the embedded default model)", None
    q.log(f"plan: keep float {', '.join(chosen) or 'nothing'}")
    return {"keep_float": chosen, "chosen": how, **({"search": search} if search else {})}


def _record_accuracy(q: Quantizer, row: Target, folder: Path, val: Validation, max_ap_drop: float) -> None:
    """FP32 and INT8 mask/box AP of a target's folder, in its manifest (off its device through the backend that
    stands in for it: TensorRT's graphs in ONNX Runtime)."""
    stand_in = row.measured_here_with
    fp32 = q.fp32_metrics(row, val)
    int8 = _evaluate(folder, val, q.threads, stand_in)
    drop = round(fp32["mask_ap"] - int8["mask_ap"], 2)
    m = read_manifest(folder)
    m.quantization["accuracy"] = {"val": str(val.annotations), "fp32": fp32, "int8": int8, "mask_ap_drop": drop,
                                  "within_budget": drop <= max_ap_drop,
                                  **({"measured_with": target_row(stand_in).package} if stand_in else {})}
    m.write(folder)
    q.log(f"  {row.name}: mask AP {fp32['mask_ap']:.2f} -> {int8['mask_ap']:.2f} (drop {drop:.2f}), "
          f"box AP {fp32['box_ap']:.2f} -> {int8['box_ap']:.2f}")


def quantize(model, out_dir: str | Path, targets: list[str], frames: CalibFrames, method: str = "minmax",
             val: Validation | None = None, max_ap_drop: float = 1.0, keep_float: list[str] | None = None,
             fixed_hw: tuple[int, int] | None = None, source: Path | None = None, threads: int | None = None,
             reduce_range: bool = True, log=print, overwrite: bool = False,
             fp32_dirs: list[Path] = (), reuse: bool = False) -> list[Path]:
    """Write out_dir/<target>-int8/ for every target; returns the folders.

    keep_float: an explicit plan (module names or block names) instead of the search / the default. Existing
    INT8 folders are refused unless overwrite. The FP32 twins are taken from out_dir or fp32_dirs where an
    up-to-date conversion of this model is there (converters.convert.up_to_date), else converted. reuse (with an
    explicit keep_float): INT8 folders in out_dir quantized from this model with these frames, method and plan are
    kept as they are (`cmlite demo`'s second run)."""
    from cmlite.converters import spawn_helper_processes
    from cmlite.converters.folders import check_dir_path, model_folders

    spawn_helper_processes()
    rows = check_targets(targets)
    if method not in ort_quant.METHODS:
        raise CmliteError(f"unknown --method {method!r}; choose from {', '.join(ort_quant.METHODS)}")
    if val is not None:
        _check_val_classes(model, val)
    out_dir = check_dir_path(out_dir)
    kept = _reused(out_dir, rows, model, source, fixed_hw, frames, method, keep_float, reuse, log)
    rows = [row for row in rows if row not in kept]
    if not rows:
        return [out_dir / row.folder("int8") for row in kept]
    with model_folders(out_dir, [row.folder("int8") for row in rows], "quantize", overwrite, log) as folders:
        searching = keep_float is None and val is not None
        twins = _twins(model, rows, searching, [out_dir, *map(Path, fp32_dirs)], folders.work, source, fixed_hw, log)
        q = Quantizer(folders.work, twins, frames, method, threads, reduce_range, log)
        record = {"calibration": q.calibration_record(), "method": method,
                  "plan": _choose_plan(q, keep_float, val, max_ap_drop)}
        for row in rows:
            log(f"quantizing {row.name} ...")
            folder = q.build(row, record["plan"]["keep_float"], folders.work / row.folder("int8"), record)
            if val is not None:
                _record_accuracy(q, row, folder, val, max_ap_drop)
            folders.stage(folder)
    return [out_dir / row.folder("int8") for row in kept] + folders.written
