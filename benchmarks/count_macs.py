"""Multiply-accumulates of a variant per part, to set beside the spec's compute figures.

    python benchmarks/count_macs.py [--variant V-19-eSE] [--hw 608x800]
"""
from __future__ import annotations

import argparse

import torch
from torch.utils.flop_counter import FlopCounterMode

from cmlite import lite


def gmacs(fn, *args) -> float:
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        fn(*args)
    return counter.get_total_flops() / 2e9


def count(variant: str = "V-19-eSE", hw: tuple[int, int] = (608, 800)) -> dict[str, float]:
    """GMACs per part (dense: backbone, its stage 2, FPN, FCOS head; per RoI: mask, MaskIoU) and parameters (M)."""
    m = lite.build_model(variant)
    x = torch.zeros(1, 3, *hw)
    bu = m.backbone.bottom_up
    out = {"stage2": gmacs(lambda t: bu.stage2(bu.stem(t)), x) - gmacs(bu.stem, x), "backbone": gmacs(bu, x)}
    out["fpn"] = gmacs(m.backbone, x) - out["backbone"]
    with torch.inference_mode():
        feats = m.backbone(x)
    out["head"] = gmacs(m.proposal_generator.fcos_head, feats)
    out["dense"] = out["backbone"] + out["fpn"] + out["head"]
    pooled, onehot = torch.zeros(1, m.variant.fpn_ch, 14, 14), torch.eye(m.variant.num_classes)[:1]
    out["mask"] = gmacs(m.roi_heads.mask_head, pooled)
    out["maskiou"] = gmacs(m.mask_branch, pooled, onehot) - out["mask"] if m.variant.maskiou else 0.0
    out["params_m"] = sum(p.numel() for p in m.parameters()) / 1e6
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", default="V-19-eSE")
    ap.add_argument("--hw", default="608x800")
    args = ap.parse_args()
    h, w = (int(v) for v in args.hw.split("x"))
    c = count(args.variant, (h, w))
    print(f"{args.variant} at {h}x{w}: dense {c['dense']:.1f} GMACs = backbone {c['backbone']:.1f} "
          f"(stage 2 {c['stage2']:.1f}) + FPN {c['fpn']:.1f} + FCOS head {c['head']:.1f}; per RoI: mask "
          f"{c['mask']:.3f}" + (f" + MaskIoU {c['maskiou']:.3f}" if c["maskiou"] else "")
          + f"; parameters {c['params_m']:.1f}M")


if __name__ == "__main__":
    main()
