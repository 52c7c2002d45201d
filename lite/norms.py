"""Trainable norms for training, folded back into FrozenBN so a trained model is the official inference graph."""
from __future__ import annotations

import torch
from torch import nn

from .layers import FrozenBatchNorm2d


def _swap(model: nn.Module, make) -> nn.Module:
    for name, child in model.named_children():
        new = make(child)
        if new is not None:
            setattr(model, name, new)
        else:
            _swap(child, make)
    return model


def unfreeze_norms(model: nn.Module) -> nn.Module:
    """FrozenBatchNorm2d -> BatchNorm2d with the same statistics and affine terms (in place)."""

    def make(m):
        if not isinstance(m, FrozenBatchNorm2d):
            return None
        bn = nn.BatchNorm2d(m.weight.numel(), eps=m.eps)
        with torch.no_grad():
            bn.weight.copy_(m.weight)
            bn.bias.copy_(m.bias)
            bn.running_mean.copy_(m.running_mean)
            bn.running_var.copy_(m.running_var)
        return bn.to(m.weight.device)

    return _swap(model, make)


def freeze_norms(model: nn.Module) -> nn.Module:
    """BatchNorm2d -> FrozenBatchNorm2d with the learned statistics (in place); keys become the official ones."""

    def make(m):
        if not isinstance(m, nn.BatchNorm2d):
            return None
        fbn = FrozenBatchNorm2d(m.num_features, eps=m.eps)
        with torch.no_grad():
            fbn.weight.copy_(m.weight)
            fbn.bias.copy_(m.bias)
            fbn.running_mean.copy_(m.running_mean)
            fbn.running_var.copy_(m.running_var)
        return fbn.to(m.weight.device)

    return _swap(model, make)
