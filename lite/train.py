"""Training CenterMask-Lite on a COCO-format dataset (`cmlite train`).

FCOS with centre sampling and sizes of interest, focal / GIoU / centerness losses; the SAG-Mask head on
FCOS's own (detached) proposals matched to the ground truth, as CenterMask trains it; the MaskIoU head
regressed to the IoU of the predicted mask. Norms train as BatchNorm and fold into FrozenBN at the end,
so the result is the official inference graph in the official checkpoint layout, plus the metadata
(variant, class names, category ids, test size) that official files lack.
"""
from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from cmlite.runtimes.decode import decode
from cmlite.runtimes.errors import CmliteError
from cmlite.runtimes.roi_align import assign_levels

from .checkpoint import detect_variant, read_checkpoint, save_checkpoint
from .data import CocoSegmentation
from .losses import fcos_losses, mask_losses
from .model import CenterMaskLite
from .norms import freeze_norms, unfreeze_norms
from .roi_align import roi_align
from .training_targets import fcos_targets, mask_targets, match_proposals
from .variants import get_variant


@dataclass
class TrainConfig:
    variant: str = "V-19-slim-dw-eSE"
    min_size: int = 320
    max_size: int = 533
    iters: int = 3000
    batch: int = 8
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup: int = 200
    seed: int = 0
    maskiou: bool = True
    mask_rois_per_image: int = 24
    ckpt_every: int = 250
    init: str | None = None  # weights to start from (fine-tuning) instead of FCOS's initialisation


def init_heads(model: CenterMaskLite) -> None:
    """FCOS's initialisation: N(0, 0.01) head convs, a 1% class prior."""
    head = model.proposal_generator.fcos_head
    for m in [*head.cls_tower, *head.bbox_tower, head.cls_logits, head.bbox_pred, head.ctrness]:
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.normal_(m.weight, std=0.01)
            torch.nn.init.zeros_(m.bias)
    torch.nn.init.constant_(head.cls_logits.bias, -math.log((1 - 0.01) / 0.01))


def init_from(model: CenterMaskLite, path: str | Path, log=print) -> None:
    """Start from a checkpoint (official or cmlite's) of the same variant. Layers whose shape depends on
    the classes are kept at their fresh initialisation when the checkpoint has other classes (fine-tuning
    COCO weights on a dataset of its own); anything else that does not fit is an error."""
    sd, meta = read_checkpoint(path)
    found = detect_variant(sd, source=str(path))
    if found.name != model.variant.name:
        raise CmliteError(f"--init {path} holds a {found.name} model, but training builds {model.variant.name}; "
                          f"pass --variant {found.name}")
    own = model.state_dict()
    skipped = sorted(k for k, v in sd.items() if k in own and tuple(v.shape) != tuple(own[k].shape))
    if any(not _class_dependent(k) for k in skipped):
        bad = [k for k in skipped if not _class_dependent(k)]
        raise CmliteError(f"--init {path} does not fit: {bad[0]} has shape {tuple(sd[bad[0]].shape)}, "
                          f"the model wants {tuple(own[bad[0]].shape)}")
    keep = {k: v for k, v in sd.items() if k in own and k not in skipped}
    model.load_state_dict(keep, strict=False)
    names = meta.get("class_names")
    same = not skipped and (names is None or tuple(names) == tuple(model.class_names))
    log(f"initialised from {path} ({len(keep)} of {len(own)} tensors"
        + (f"; {len(skipped)} class-dependent tensors fresh for {len(model.class_names)} classes)" if skipped
           else ")")
        + ("" if same or skipped else "; note: its class names differ from the dataset's, same count"))


def _class_dependent(key: str) -> bool:
    return key.startswith(("proposal_generator.fcos_head.cls_logits.", "roi_heads.mask_head.predictor.",
                           "roi_heads.maskiou_head.maskiou."))


def _batch(data: CocoSegmentation, indices, cfg: TrainConfig, rng: np.random.Generator, mean):
    samples = [data.load(int(i), cfg.min_size, cfg.max_size, flip=bool(rng.random() < 0.5)) for i in indices]
    ph = -(-max(s.image.shape[0] for s in samples) // 32) * 32
    pw = -(-max(s.image.shape[1] for s in samples) // 32) * 32
    x = np.empty((len(samples), 3, ph, pw), np.float32)
    x[:] = np.asarray(mean, np.float32)[None, :, None, None]
    for i, s in enumerate(samples):
        x[i, :, : s.image.shape[0], : s.image.shape[1]] = s.image.transpose(2, 0, 1)
    return torch.from_numpy(x), samples


def _flat(levels: list[torch.Tensor], i: int) -> torch.Tensor:
    """Image i's outputs of all levels as (L, C), ordered level, row, column (as the targets)."""
    return torch.cat([lv[i].permute(1, 2, 0).reshape(-1, lv.shape[1]) for lv in levels])


def step_losses(model: CenterMaskLite, x: torch.Tensor, samples, cfg: TrainConfig,
                rng: np.random.Generator) -> dict[str, torch.Tensor]:
    pc = model.config
    k = model.variant.num_classes
    logits, reg, ctr, feats = model.dense(x)
    shapes = [tuple(lv.shape[-2:]) for lv in logits]
    tgt = [fcos_targets(shapes, pc.fpn_strides, torch.from_numpy(s.boxes), torch.from_numpy(s.classes), k)
           for s in samples]
    losses = fcos_losses(torch.cat([_flat(logits, i) for i in range(len(samples))]),
                         torch.cat([_flat(reg, i) for i in range(len(samples))]),
                         torch.cat([_flat(ctr, i) for i in range(len(samples))])[:, 0],
                         torch.cat([t[0] for t in tgt]), torch.cat([t[1] for t in tgt]),
                         torch.cat([t[2] for t in tgt]), k)
    # the mask branch learns on FCOS's own proposals (detached), matched to the ground truth
    boxes, levels, bidx, classes, targets = [], [], [], [], []
    for i, s in enumerate(samples):
        lv = [(lg[i].detach().numpy(), rg[i].detach().numpy(), ct[i].detach().numpy())
              for lg, rg, ct in zip(logits, reg, ctr)]
        props = decode(lv, pc.fpn_strides, pc.score_thresh, pc.pre_nms_topk, pc.nms_thresh, 100)
        b, gi = match_proposals(props.boxes, s.boxes, cfg.mask_rois_per_image, rng)
        boxes.append(b)
        levels.append(assign_levels(b, s.image.shape[:2], 3, 2 + len(pc.pooler_strides)))
        bidx.append(np.full(len(b), i))
        classes.append(s.classes[gi])
        targets.append(mask_targets(s.masks, b, gi))
    boxes_np = np.concatenate(boxes)
    pooled = roi_align(feats[: len(pc.pooler_strides)], boxes_np, np.concatenate(levels), np.concatenate(bidx),
                       pc.pooler_strides, pc.pooler_resolution)
    mask_logits = model.roi_heads.mask_head(pooled)
    cls_t = torch.from_numpy(np.concatenate(classes))
    maskiou = None
    if model.variant.maskiou and len(cls_t):
        prob = torch.sigmoid(mask_logits[torch.arange(len(cls_t)), cls_t].detach())[:, None]
        maskiou = model.roi_heads.maskiou_head(pooled, prob)
    losses.update(mask_losses(mask_logits, cls_t, torch.from_numpy(np.concatenate(targets)),
                              maskiou if model.variant.maskiou else None))
    return losses


def train(cfg: TrainConfig, ann_file: str | Path, images_dir: str | Path, out_dir: str | Path,
          resume: bool = False, progress: bool = True, log=print) -> Path:
    """Train and write out_dir/model_final.pth (official layout + metadata). out_dir/last.pth is the
    resumable state; out_dir/train_log.jsonl has the losses of every iteration."""
    from cmlite.runtimes.progress import progress_bar

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = CocoSegmentation(ann_file, images_dir)
    torch.manual_seed(cfg.seed)
    variant = get_variant(cfg.variant).with_(num_classes=len(data.class_names), maskiou=cfg.maskiou)
    model = CenterMaskLite(variant, class_names=data.class_names, category_ids=data.category_ids)
    model.config = model.config.with_(min_size=cfg.min_size, max_size=cfg.max_size)
    init_heads(model)
    if cfg.init:
        init_from(model, cfg.init, log)
    unfreeze_norms(model)
    model.to(memory_format=torch.channels_last)  # oneDNN's faster layout for (depthwise) convs on CPU: ~20% here
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start, rng, order = 0, np.random.default_rng(cfg.seed), []
    last = out_dir / "last.pth"
    if resume:
        if not last.is_file():
            raise CmliteError(f"nothing to resume: {last} not found")
        state = torch.load(last, map_location="cpu", weights_only=True)
        if state["train_config"] != asdict(cfg):
            raise CmliteError(f"{last} was written with other settings {state['train_config']}; "
                              "resume with the same ones")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start = int(state["iteration"])
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        order = list(state["order"])
        log(f"resumed from {last} at iteration {start}")

    def lr_at(it: int) -> float:
        warm = min(1.0, (it + 1) / max(cfg.warmup, 1))
        return cfg.lr * warm * 0.5 * (1 + math.cos(math.pi * it / max(cfg.iters, 1)))

    model.train()
    t0 = time.time()
    bar = progress_bar(range(start, cfg.iters), initial=start, total=cfg.iters, desc="train", disable=not progress,
               file=sys.stderr, dynamic_ncols=True)
    log_file = (out_dir / "train_log.jsonl").open("a" if resume else "w")
    for it in bar:
        while len(order) < cfg.batch:
            order += rng.permutation(len(data)).tolist()
        idx, order = order[: cfg.batch], order[cfg.batch:]
        x, samples = _batch(data, idx, cfg, rng, model.config.pixel_mean)
        x = x.contiguous(memory_format=torch.channels_last)
        for g in opt.param_groups:
            g["lr"] = lr_at(it)
        losses = step_losses(model, x, samples, cfg, rng)
        total = sum(losses.values())
        opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        row = {k: v.item() for k, v in losses.items()}
        log_file.write(json.dumps({"iter": it + 1, "lr": lr_at(it), "loss": total.item(), **row}) + "\n")
        bar.set_postfix({k.replace("loss_", ""): f"{v:.3f}" for k, v in row.items()}, refresh=False)
        if (it + 1) % cfg.ckpt_every == 0 or it + 1 == cfg.iters:
            tmp = last.with_suffix(".partial")
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "iteration": it + 1,
                        "train_config": asdict(cfg), "rng": rng.bit_generator.state,
                        "torch_rng": torch.get_rng_state(), "order": order}, tmp)
            tmp.replace(last)
            log_file.flush()
    bar.close()
    log_file.close()
    model.eval()
    model.to(memory_format=torch.contiguous_format)
    freeze_norms(model)
    final = save_checkpoint(model, out_dir / "model_final.pth",
                            train={"config": asdict(cfg), "iterations": cfg.iters, "seconds": round(time.time() - t0),
                                   "dataset": str(ann_file)})
    log(f"wrote {final} after {cfg.iters} iterations ({time.time() - t0:.0f} s this run)")
    return final
