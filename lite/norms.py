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


def _copy_norm(src: nn.Module, dst: nn.Module) -> nn.Module:
    with torch.no_grad():
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(dst, name).copy_(getattr(src, name))
    return dst.to(src.weight.device)


def unfreeze_norms(model: nn.Module) -> nn.Module:
    """FrozenBatchNorm2d -> BatchNorm2d with the same statistics and affine terms (in place)."""
    return _swap(model, lambda m: _copy_norm(m, nn.BatchNorm2d(m.weight.numel(), eps=m.eps))
                 if isinstance(m, FrozenBatchNorm2d) else None)


def freeze_norms(model: nn.Module) -> nn.Module:
    """BatchNorm2d -> FrozenBatchNorm2d with the learned statistics (in place); keys become the official ones."""
    return _swap(model, lambda m: _copy_norm(m, FrozenBatchNorm2d(m.num_features, eps=m.eps))
                 if isinstance(m, nn.BatchNorm2d) else None)
