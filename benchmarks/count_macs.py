"""Multiply-accumulates of a variant per part, to set beside the spec's compute figures.

    python benchmarks/count_macs.py [--variant V-19-eSE] [--hw 608x800]
"""
from __future__ import annotations

import argparse

import torch
from torch.utils.flop_counter import FlopCounterMode

import lite


def gmacs(fn, *args) -> float:
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        fn(*args)
    return counter.get_total_flops() / 2e9


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", default="V-19-eSE")
    ap.add_argument("--hw", default="608x800")
    args = ap.parse_args()
    h, w = (int(v) for v in args.hw.split("x"))
    m = lite.build_model(args.variant)
    x = torch.zeros(1, 3, h, w)
    bu = m.backbone.bottom_up
    stage2 = gmacs(lambda t: bu.stage2(bu.stem(t)), x) - gmacs(bu.stem, x)
    backbone = gmacs(bu, x)
    fpn = gmacs(m.backbone, x) - backbone
    with torch.inference_mode():
        feats = m.backbone(x)
    head = gmacs(m.proposal_generator.fcos_head, feats)
    pooled, onehot = torch.zeros(1, m.variant.fpn_ch, 14, 14), torch.eye(m.variant.num_classes)[:1]
    mask = gmacs(m.roi_heads.mask_head, pooled)
    both = gmacs(m.mask_branch, pooled, onehot)
    print(f"{args.variant} at {h}x{w}: dense {backbone + fpn + head:.1f} GMACs = backbone {backbone:.1f} "
          f"(stage 2 {stage2:.1f}) + FPN {fpn:.1f} + FCOS head {head:.1f}; per RoI: mask {mask:.3f}"
          + (f" + MaskIoU {both - mask:.3f}" if m.variant.maskiou else "")
          + f"; parameters {sum(p.numel() for p in m.parameters()) / 1e6:.1f}M")


if __name__ == "__main__":
    main()
