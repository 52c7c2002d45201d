"""The mixed-precision plan: which parts of the model stay float in an INT8 model, chosen by mask AP.

A plan is one list of PyTorch module names, the same for every backend. Exported graphs name every node
"<module path>/<OpType>_<i>" (converters/onnx_export.py), so an entry selects:

    "backbone.bottom_up.stage2"   the module and everything below it
    "backbone/"                   only the module's own ops (here the FPN's top-down upsample and adds)

ONNX Runtime and TensorRT leave those nodes without Q/DQ, NNCF gets them as an ignored scope, and the TFLite
recipe keeps their ops float. `search` finds the fewest blocks to keep float so that the mask AP drop stays
within the budget.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

_HEAD = "proposal_generator.fcos_head"
# Blocks measured one by one; every variant has them (official module names).
BLOCKS: dict[str, tuple[str, ...]] = {
    "stem": ("backbone.bottom_up.stem",),
    "stage2": ("backbone.bottom_up.stage2",),
    "stage3": ("backbone.bottom_up.stage3",),
    "stage4": ("backbone.bottom_up.stage4",),
    "stage5": ("backbone.bottom_up.stage5",),
    "fpn": tuple(f"backbone.fpn_{k}{i}" for k in ("lateral", "output") for i in (3, 4, 5)) + ("backbone.top_block",
                                                                                                "backbone/"),
    "cls_tower": (f"{_HEAD}.cls_tower",),
    "bbox_tower": (f"{_HEAD}.bbox_tower",),
    "predictors": (f"{_HEAD}.cls_logits", f"{_HEAD}.bbox_pred", f"{_HEAD}.ctrness", f"{_HEAD}.scales", f"{_HEAD}/"),
    "mask_head": ("roi_heads.mask_head",),
    "maskiou_head": ("roi_heads.maskiou_head",),
}

# Used when no validation set is given. Measured on the embedded default (200 val images, seeds 0 and 1; the
# README's INT8 section): with everything quantized every target stays within 0.3 mask AP of its FP32 twin, and
# no block regains more than that when kept float, so nothing stays float (TFLite adds its GroupNorm rule).
DEFAULT_PLAN: tuple[str, ...] = ()


def matches(node_name: str, entry: str) -> bool:
    """Does a plan entry select this node (named "<module path>/<OpType>_<i>")?"""
    if entry.endswith("/"):
        return node_name.startswith(entry) and "/" not in node_name[len(entry):]
    return node_name.startswith(entry + ".") or node_name.startswith(entry + "/")


def selected(node_names, plan) -> list[str]:
    return [n for n in node_names if any(matches(n, e) for e in plan)]


def regex(plan) -> list[str]:
    """The plan as regular expressions over node names (NNCF's ignored-scope patterns)."""
    return [f"^{re.escape(e)}[^/]*$" if e.endswith("/") else f"^{re.escape(e)}[./].*" for e in plan]


def expand(names) -> list[str]:
    """Block names (`BLOCKS`) to module entries; module names pass through."""
    out: list[str] = []
    for n in names:
        out += BLOCKS.get(n, (n,))
    return list(dict.fromkeys(out))


@dataclass
class SearchResult:
    plan: list[str]  # module entries kept float
    blocks: list[str]  # the block names chosen
    fp32_ap: float
    int8_ap: float  # with the plan
    all_int8_ap: float  # nothing kept float
    sensitivity: dict[str, float] = field(default_factory=dict)  # block -> mask AP gained by keeping it float
    steps: list[dict] = field(default_factory=list)  # every evaluation: {"float": [...], "mask_ap": ...}


def search(evaluate: Callable[[list[str]], float], fp32_ap: float, max_drop: float, blocks=None,
           log=print) -> SearchResult:
    """Greedy: quantize everything; if the drop exceeds `max_drop`, measure per block the AP regained by keeping
    only that block float, then keep float the most sensitive blocks, one at a time, until the drop is within
    budget. `evaluate(entries)` returns mask AP with those module entries kept float."""
    blocks = dict(blocks or BLOCKS)
    steps: list[dict] = []
    seen: dict[tuple[str, ...], float] = {}

    def run(names: list[str]) -> float:
        if tuple(names) in seen:
            return seen[tuple(names)]
        ap = seen[tuple(names)] = evaluate(expand(names))
        steps.append({"float": list(names), "mask_ap": ap})
        log(f"  float {', '.join(names) or 'nothing'}: mask AP {ap:.2f} (fp32 {fp32_ap:.2f})")
        return ap

    base = run([])
    if fp32_ap - base <= max_drop:
        return SearchResult([], [], fp32_ap, base, base, {}, steps)
    sensitivity = {b: run([b]) - base for b in blocks}
    chosen: list[str] = []
    ap = base
    for b in sorted(blocks, key=lambda b: -sensitivity[b]):
        chosen.append(b)
        ap = run(chosen)
        if fp32_ap - ap <= max_drop:
            break
    return SearchResult(expand(chosen), chosen, fp32_ap, ap, base, sensitivity, steps)
