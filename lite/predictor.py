"""Eager PyTorch backend: the same `Segmenter` pipeline as every converted model, graphs run in torch."""
from __future__ import annotations

import numpy as np
import torch

from runtimes.pipeline import DenseOutputs, Segmenter

from .model import CenterMaskLite


class TorchSegmenter(Segmenter):
    def __init__(self, model: CenterMaskLite, threads: int | None = None, **overrides):
        """overrides: PipelineConfig fields, e.g. min_size=320, max_size=533, score_thresh=0.3."""
        self.model = model.eval()
        self.config = model.config.with_(**overrides)
        self.class_names = model.class_names
        if threads:
            torch.set_num_threads(threads)

    @torch.inference_mode()
    def run_dense(self, tensor: np.ndarray) -> DenseOutputs:
        logits, reg, ctr, feats = self.model.dense(torch.from_numpy(tensor))
        levels = [(lg[0].numpy(), rg[0].numpy(), ct[0].numpy()) for lg, rg, ct in zip(logits, reg, ctr)]
        return DenseOutputs(levels, [f[0].numpy() for f in feats])

    @torch.inference_mode()
    def run_masks(self, pooled: np.ndarray, onehot: np.ndarray):
        prob, iou = self.model.mask_branch(torch.from_numpy(pooled), torch.from_numpy(onehot))
        return prob.numpy(), None if iou is None else iou.numpy()
