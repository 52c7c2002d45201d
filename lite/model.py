"""CenterMask-Lite as two graphs: `dense` (image -> FCOS outputs + P3..P5) and `mask_branch` (RoIs -> masks).

The module tree and parameter names equal the official CenterMask2 checkpoints. The host work between
the graphs (decode, NMS, level assignment, RoIAlign, paste) is the shared numpy code in runtimes/.
"""
from __future__ import annotations

from dataclasses import asdict

import torch
from torch import nn

from cmlite.runtimes.config import PipelineConfig
from cmlite.runtimes.errors import SettingsError

from .classes import COCO_CATEGORY_IDS, COCO_CLASSES
from .fcos import FCOSHead, ProposalGenerator
from .fpn import FPN
from .sag_mask import MaskIoUHead, ROIHeads, SAGMaskHead
from .variants import Variant, get_variant
from .vovnet import VoVNet


class CenterMaskLite(nn.Module):
    def __init__(self, variant: Variant | str, class_names: tuple[str, ...] | None = None,
                 category_ids: tuple[int, ...] | None = None, config: PipelineConfig | None = None):
        super().__init__()
        v = get_variant(variant) if isinstance(variant, str) else variant
        self.variant = v
        self.backbone = FPN(VoVNet(v), v.fpn_ch)
        self.proposal_generator = ProposalGenerator(FCOSHead(v.fpn_ch, v.num_classes, v.tower_convs))
        self.roi_heads = ROIHeads(SAGMaskHead(v.fpn_ch, v.num_classes, v.mask_convs),
                                  MaskIoUHead(v.fpn_ch, v.num_classes) if v.maskiou else None)
        self.config = config or PipelineConfig(min_size=v.test_size[0], max_size=v.test_size[1])
        if class_names is None:
            class_names = COCO_CLASSES if v.num_classes == 80 else tuple(f"class{i}" for i in range(v.num_classes))
        if len(class_names) != v.num_classes:
            raise SettingsError(f"{len(class_names)} class names for {v.num_classes} classes")
        self.class_names = tuple(class_names)
        if category_ids is None:
            category_ids = COCO_CATEGORY_IDS if v.num_classes == 80 else tuple(range(1, v.num_classes + 1))
        self.category_ids = tuple(category_ids)
        self.register_buffer("pixel_mean", torch.tensor(self.config.pixel_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(self.config.pixel_std).view(1, 3, 1, 1), persistent=False)

    @property
    def metadata(self) -> dict:
        return {"variant": self.variant.name, "variant_spec": asdict(self.variant),
                "class_names": list(self.class_names), "category_ids": list(self.category_ids),
                "pipeline": self.config.to_dict()}

    def dense(self, x: torch.Tensor, trace: dict | None = None):
        """Graph 1. x: raw BGR (N, 3, H, W), padded with the mean; H, W multiples of 32.

        Returns (logits[5], bbox_reg[5] in stride units, ctrness[5], [p3, p4, p5]).
        """
        x = (x - self.pixel_mean) / self.pixel_std
        feats, stages = self.backbone(x, return_stages=True)
        logits, reg, ctr = self.proposal_generator.fcos_head(feats)
        if trace is not None:
            trace.update(model_input=x, stages=stages, fpn=feats, logits=logits, bbox_reg=reg, ctrness=ctr)
        return logits, reg, ctr, feats[: len(self.config.pooler_strides)]

    def mask_branch(self, pooled: torch.Tensor, onehot: torch.Tensor, maskiou: bool = True):
        """Graph 2. pooled (N, C, 14, 14), onehot (N, K) -> (mask prob (N, 1, 28, 28), MaskIoU (N, K) or None).

        maskiou=False skips the MaskIoU head (None), as a model without one."""
        logits = self.roi_heads.mask_head(pooled)
        prob = torch.sigmoid((logits * onehot[:, :, None, None]).sum(dim=1, keepdim=True))
        if not (self.variant.maskiou and maskiou):
            return prob, None
        return prob, self.roi_heads.maskiou_head(pooled, prob)
