"""The two exported graphs as plain modules with flat, named inputs and outputs (shared by every exporter).

Names and order are the manifest's contract (runtimes/pipeline.py)."""
from __future__ import annotations

import torch
from torch import nn

from cmlite.lite.model import CenterMaskLite
from cmlite.runtimes.pipeline import DENSE_INPUTS, MASK_INPUTS, dense_output_names, mask_output_names  # noqa: F401


class DenseGraph(nn.Module):
    """image (1, 3, H, W) raw BGR padded with the mean -> 15 FCOS outputs + P3..P5, all NCHW.

    as_dict=True returns {name: tensor} (named signature outputs for TFLite) instead of a tuple.
    """

    def __init__(self, model: CenterMaskLite, as_dict: bool = False):
        super().__init__()
        self.model = model
        self.as_dict = as_dict
        self.names = dense_output_names(len(model.config.pooler_strides))

    def forward(self, image: torch.Tensor):
        logits, reg, ctr, feats = self.model.dense(image)
        out = (*logits, *reg, *ctr, *feats)
        return dict(zip(self.names, out)) if self.as_dict else out


class MaskGraph(nn.Module):
    """rois (N, C, 14, 14), classes_onehot (N, K) -> mask_prob (N, 1, 28, 28)[, maskiou (N, K)].

    maskiou=False: without the MaskIoU head (the "masks_noiou" graph of a model that has one)."""

    def __init__(self, model: CenterMaskLite, as_dict: bool = False, maskiou: bool = True):
        super().__init__()
        self.model = model
        self.as_dict = as_dict
        self.maskiou = maskiou and model.variant.maskiou
        self.names = mask_output_names(self.maskiou)

    def forward(self, rois: torch.Tensor, classes_onehot: torch.Tensor):
        prob, iou = self.model.mask_branch(rois, classes_onehot, self.maskiou)
        out = (prob,) if iou is None else (prob, iou)
        return dict(zip(self.names, out)) if self.as_dict else out


def sample_inputs(model: CenterMaskLite, hw: tuple[int, int], num_rois: int):
    """Deterministic example inputs: an image-like tensor, RoI features and one-hot classes."""
    g = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, *hw, generator=g) * 255
    rois = torch.randn(num_rois, model.variant.fpn_ch, 14, 14, generator=g)
    onehot = torch.eye(model.variant.num_classes)[torch.arange(num_rois) % model.variant.num_classes]
    return image, rois, onehot
