"""Eager PyTorch backend: the same `Segmenter` pipeline as every converted model, graphs run in torch."""
from __future__ import annotations

import numpy as np
import torch

from cmlite.runtimes.host_setup import prepare_process
from cmlite.runtimes.pipeline import Segmenter, dense_output_names, mask_output_names

from .model import CenterMaskLite


class TorchSegmenter(Segmenter):
    def __init__(self, model: CenterMaskLite, threads: int | None = None, maskiou: bool = True, **overrides):
        """overrides: PipelineConfig fields, e.g. min_size=320, max_size=533, score_thresh=0.3. maskiou=False skips
        the MaskIoU head (mask score = score)."""
        self.model = model.eval()
        self.config = model.config.with_(**overrides)
        self.class_names = model.class_names
        self.category_ids = model.category_ids
        self._dense_names = dense_output_names(len(self.config.pooler_strides))
        self.maskiou = maskiou and model.variant.maskiou
        self._mask_names = mask_output_names(self.maskiou)
        self.threads = threads
        prepare_process()

    def _threads(self) -> None:
        # torch's pool is process-wide: re-apply ours in case another segmenter changed it
        if self.threads and torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)

    @property
    def device(self) -> str:
        return "pytorch fp32 eager on CPU"

    @torch.inference_mode()
    def infer_dense(self, image: np.ndarray) -> dict[str, np.ndarray]:
        self._threads()
        logits, reg, ctr, feats = self.model.dense(torch.from_numpy(image))
        return {k: v.numpy() for k, v in zip(self._dense_names, (*logits, *reg, *ctr, *feats))}

    @torch.inference_mode()
    def infer_masks(self, rois: np.ndarray, onehot: np.ndarray) -> dict[str, np.ndarray]:
        self._threads()
        outs = self.model.mask_branch(torch.from_numpy(rois), torch.from_numpy(onehot), self.maskiou)
        return {k: v.numpy() for k, v in zip(self._mask_names, outs) if v is not None}
