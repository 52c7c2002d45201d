"""FCOS head (dense part). Decoding of its outputs lives in runtimes/decode.py, shared by every backend."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Scale(nn.Module):
    def __init__(self, init: float = 1.0):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor([init]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def _tower(ch: int, n: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(n):
        layers += [nn.Conv2d(ch, ch, 3, 1, 1), nn.GroupNorm(32, ch), nn.ReLU()]
    return nn.Sequential(*layers)


class FCOSHead(nn.Module):
    """Per level: class logits, box regression ReLU(scale * pred) (in stride units), centerness logits."""

    def __init__(self, ch: int, num_classes: int, num_convs: int, num_levels: int = 5):
        super().__init__()
        self.cls_tower = _tower(ch, num_convs)
        self.bbox_tower = _tower(ch, num_convs)
        self.cls_logits = nn.Conv2d(ch, num_classes, 3, 1, 1)
        self.bbox_pred = nn.Conv2d(ch, 4, 3, 1, 1)
        self.ctrness = nn.Conv2d(ch, 1, 3, 1, 1)
        self.scales = nn.ModuleList([Scale() for _ in range(num_levels)])

    def forward(self, features: list[torch.Tensor]):
        logits, bbox_reg, ctrness = [], [], []
        for level, feature in enumerate(features):
            cls_t = self.cls_tower(feature)
            box_t = self.bbox_tower(feature)
            logits.append(self.cls_logits(cls_t))
            ctrness.append(self.ctrness(box_t))  # centerness on the box tower
            bbox_reg.append(F.relu(self.scales[level](self.bbox_pred(box_t))))
        return logits, bbox_reg, ctrness


class ProposalGenerator(nn.Module):
    """Holds the head under the official key prefix `proposal_generator.fcos_head`."""

    def __init__(self, head: FCOSHead):
        super().__init__()
        self.fcos_head = head
