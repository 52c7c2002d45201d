"""SAG-Mask head (spatial attention-guided mask) and the MaskIoU head."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SpatialAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, 3, 1, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stats = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(stats))


class SAGMaskHead(nn.Module):
    """RoI features (N, C, 14, 14) -> all-class mask logits (N, K, 28, 28)."""

    def __init__(self, ch: int, num_classes: int, num_convs: int):
        super().__init__()
        for i in range(num_convs):
            self.add_module(f"mask_fcn{i + 1}", nn.Conv2d(ch, ch, 3, 1, 1))
        self.num_convs = num_convs
        self.spatialAtt = SpatialAttention()
        self.deconv = nn.ConvTranspose2d(ch, ch, 2, 2)
        self.predictor = nn.Conv2d(ch, num_classes, 1)

    def forward(self, x: torch.Tensor, return_sam: bool = False):
        for i in range(self.num_convs):
            x = F.relu(getattr(self, f"mask_fcn{i + 1}")(x))
        sam = self.spatialAtt(x)
        logits = self.predictor(F.relu(self.deconv(sam)))
        return (logits, sam) if return_sam else logits


class MaskIoUHead(nn.Module):
    """concat(RoI features, maxpool2x2(mask prob)) -> predicted mask IoU per class (N, K)."""

    def __init__(self, ch: int, num_classes: int, resolution: int = 14):
        super().__init__()
        self.maskiou_fcn1 = nn.Conv2d(ch + 1, ch, 3, 1, 1)
        self.maskiou_fcn2 = nn.Conv2d(ch, ch, 3, 2, 1)
        self.maskiou_fc1 = nn.Linear(ch * (resolution // 2) ** 2, 1024)
        self.maskiou_fc2 = nn.Linear(1024, 1024)
        self.maskiou = nn.Linear(1024, num_classes)

    def forward(self, features: torch.Tensor, mask_prob: torch.Tensor) -> torch.Tensor:
        x = torch.cat([features, F.max_pool2d(mask_prob, 2, 2)], dim=1)
        x = F.relu(self.maskiou_fcn2(F.relu(self.maskiou_fcn1(x))))
        x = F.relu(self.maskiou_fc2(F.relu(self.maskiou_fc1(x.flatten(1)))))
        return self.maskiou(x)


class ROIHeads(nn.Module):
    """Holds the heads under the official key prefix `roi_heads`."""

    def __init__(self, mask_head: SAGMaskHead, maskiou_head: MaskIoUHead | None):
        super().__init__()
        self.mask_head = mask_head
        if maskiou_head is not None:
            self.maskiou_head = maskiou_head
