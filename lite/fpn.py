"""FPN over stage3..5 with P6/P7 (detectron2 layout and key names)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .vovnet import VoVNet


class LastLevelP6P7(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.p6 = nn.Conv2d(ch, ch, 3, 2, 1)
        self.p7 = nn.Conv2d(ch, ch, 3, 2, 1)

    def forward(self, p5: torch.Tensor) -> list[torch.Tensor]:
        p6 = self.p6(p5)
        return [p6, self.p7(F.relu(p6))]


class FPN(nn.Module):
    """Returns [p3, p4, p5, p6, p7]; `bottom_up` is the VoVNet (its outputs are kept in `last_stages`)."""

    def __init__(self, bottom_up: VoVNet, out_ch: int):
        super().__init__()
        self.in_features = bottom_up.out_features
        for name in self.in_features:  # registration order = official key order
            level = int(name[-1])
            self.add_module(f"fpn_lateral{level}", nn.Conv2d(bottom_up.out_channels[name], out_ch, 1))
            self.add_module(f"fpn_output{level}", nn.Conv2d(out_ch, out_ch, 3, 1, 1))
        self.top_block = LastLevelP6P7(out_ch)
        self.bottom_up = bottom_up

    def forward(self, x: torch.Tensor, return_stages: bool = False):
        stages = self.bottom_up(x)
        levels = [int(n[-1]) for n in self.in_features]
        prev = getattr(self, f"fpn_lateral{levels[-1]}")(stages[self.in_features[-1]])
        results = [getattr(self, f"fpn_output{levels[-1]}")(prev)]
        for name, level in zip(self.in_features[-2::-1], levels[-2::-1]):
            top_down = F.interpolate(prev, scale_factor=2.0, mode="nearest")
            prev = getattr(self, f"fpn_lateral{level}")(stages[name]) + top_down
            results.insert(0, getattr(self, f"fpn_output{level}")(prev))
        results.extend(self.top_block(results[-1]))
        return (results, stages) if return_stages else results
