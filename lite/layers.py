"""Building blocks shared by the backbone and heads: FrozenBN, conv units, eSE."""
from __future__ import annotations

from collections import OrderedDict
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm with fixed statistics and affine terms, stored as buffers (no num_batches_tracked)."""

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features) - eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        bias = self.bias - self.running_mean * scale
        return x * scale.view(1, -1, 1, 1) + bias.view(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


def conv_unit(cin: int, cout: int, name: str, stride: int = 1, k: int = 3) -> list[tuple[str, nn.Module]]:
    """Conv(bias=False) -> FrozenBN -> ReLU, named as the official VoVNet names it ("<name>/conv")."""
    return [
        (f"{name}/conv", nn.Conv2d(cin, cout, k, stride, k // 2, bias=False)),
        (f"{name}/norm", FrozenBatchNorm2d(cout)),
        (f"{name}/relu", nn.ReLU(inplace=True)),
    ]


def dw_sep_unit(cin: int, cout: int, name: str, stride: int = 1) -> list[tuple[str, nn.Module]]:
    """Depthwise 3x3 (stride here) -> pointwise 1x1, one FrozenBN and ReLU after both."""
    return [
        (f"{name}/dw_conv3x3", nn.Conv2d(cin, cout, 3, stride, 1, groups=cout, bias=False)),
        (f"{name}/pw_conv1x1", nn.Conv2d(cin, cout, 1, 1, 0, bias=False)),
        (f"{name}/pw_norm", FrozenBatchNorm2d(cout)),
        (f"{name}/pw_relu", nn.ReLU(inplace=True)),
    ]


def seq(units: list[tuple[str, nn.Module]]) -> nn.Sequential:
    return nn.Sequential(OrderedDict(units))


class ESE(nn.Module):
    """Effective squeeze-excitation: x * hsigmoid(fc(avgpool(x)))."""

    def __init__(self, channels: int):
        super().__init__()
        self.fc = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.fc(x.mean(dim=(2, 3), keepdim=True))
        return x * (F.relu6(w + 3.0) / 6.0)


@contextmanager
def skip_init():
    """Build modules without random initialisation (their weights are about to be overwritten)."""
    classes = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.GroupNorm)
    saved = [c.reset_parameters for c in classes]
    try:
        for c in classes:
            c.reset_parameters = lambda self: None
        yield
    finally:
        for c, f in zip(classes, saved):
            c.reset_parameters = f
