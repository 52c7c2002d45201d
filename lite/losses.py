"""Training losses: FCOS (focal, GIoU, centerness), SAG-Mask (BCE) and MaskIoU (L2)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def sigmoid_focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0):
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    return (alpha * targets + (1 - alpha) * (1 - targets)) * loss


def giou_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """pred, target: (N, 4) distances l, t, r, b from the location (FCOS's IOULoss, 'giou')."""
    pl, pt, pr, pb = pred.unbind(1)
    tl, tt, tr, tb = target.unbind(1)
    target_area = (tl + tr) * (tt + tb)
    pred_area = (pl + pr) * (pt + pb)
    w_inter = torch.min(pl, tl) + torch.min(pr, tr)
    h_inter = torch.min(pb, tb) + torch.min(pt, tt)
    g_w = torch.max(pl, tl) + torch.max(pr, tr)
    g_h = torch.max(pb, tb) + torch.max(pt, tt)
    inter = w_inter * h_inter
    union = target_area + pred_area - inter
    ious = (inter + 1.0) / (union + 1.0)
    enclose = g_w * g_h + 1e-7
    return 1 - (ious - (enclose - union) / enclose)


def fcos_losses(logits, reg, ctr, labels, reg_t, ctr_t, num_classes: int) -> dict[str, torch.Tensor]:
    """All tensors flattened over images and levels: logits (L, K), reg (L, 4), ctr (L,), targets alike."""
    pos = labels < num_classes
    n_pos = max(float(pos.sum()), 1.0)
    onehot = torch.zeros_like(logits)
    onehot[pos, labels[pos]] = 1.0
    loss_cls = sigmoid_focal_loss(logits, onehot).sum() / n_pos
    if pos.any():
        w = ctr_t[pos]
        loss_box = (giou_loss(reg[pos], reg_t[pos]) * w).sum() / w.sum().clamp(min=1e-6)
        loss_ctr = F.binary_cross_entropy_with_logits(ctr[pos], ctr_t[pos], reduction="sum") / n_pos
    else:
        loss_box = reg.sum() * 0
        loss_ctr = ctr.sum() * 0
    return {"loss_cls": loss_cls, "loss_box": loss_box, "loss_ctr": loss_ctr}


def mask_losses(mask_logits: torch.Tensor, classes: torch.Tensor, targets: torch.Tensor,
                maskiou: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """mask_logits (R, K, 28, 28) -> BCE on the gt class; MaskIoU regressed (L2) to the IoU of the
    predicted binary mask with its target."""
    if len(classes) == 0:
        zero = mask_logits.sum() * 0
        return {"loss_mask": zero, **({"loss_maskiou": zero} if maskiou is not None else {})}
    sel = mask_logits[torch.arange(len(classes)), classes]
    out = {"loss_mask": F.binary_cross_entropy_with_logits(sel, targets)}
    if maskiou is not None:
        with torch.no_grad():
            pred = sel > 0
            inter = (pred & (targets > 0.5)).sum((1, 2)).float()
            union = (pred | (targets > 0.5)).sum((1, 2)).float()
            iou_t = inter / union.clamp(min=1.0)
        out["loss_maskiou"] = F.mse_loss(maskiou[torch.arange(len(classes)), classes], iou_t)
    return out
