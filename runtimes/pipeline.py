"""The one pre/post-processing path. A backend supplies only its two graphs:

  graph 1 (`run_dense`):  raw padded BGR (1, 3, H, W) -> per-level FCOS outputs and features P3..P5
  graph 2 (`run_masks`):  RoI features (N, C, 14, 14) + one-hot classes (N, K) -> mask probabilities
                          (N, 1, 28, 28) of the given class, and MaskIoU (N, K) or None

Everything between (decode, NMS, level assignment, RoIAlign) and around (resize, paste) is here.
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from .config import PipelineConfig
from .decode import decode
from .instances import Instances
from .paste import paste_masks, scale_clip_boxes
from .preprocess import preprocess
from .roi_align import assign_levels, roi_align


@dataclass
class DenseOutputs:
    levels: list[tuple[np.ndarray, np.ndarray, np.ndarray]]  # per level: logits (K,H,W), reg (4,H,W), ctr (1,H,W)
    features: list[np.ndarray]  # P3..P5, each (C, H, W)


class Segmenter(ABC):
    """Runs CenterMask-Lite on a BGR image; subclasses are the backends."""

    config: PipelineConfig
    class_names: tuple[str, ...] = ()
    fixed_hw: tuple[int, int] | None = None  # set by fixed-shape backends
    timings: dict[str, float] = {}  # ms per stage of the last predict(): STAGES

    STAGES = ("preprocess", "graph1", "host", "graph2", "paste")

    @abstractmethod
    def run_dense(self, tensor: np.ndarray) -> DenseOutputs: ...

    @abstractmethod
    def run_masks(self, pooled: np.ndarray, onehot: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]: ...

    def predict(self, image: np.ndarray, trace: dict | None = None) -> Instances:
        """image: HxWx3 uint8 BGR. `trace`, if given, receives every intermediate stage."""
        cfg = self.config
        clock = [time.perf_counter()]

        def lap():
            clock.append(time.perf_counter())

        pre = preprocess(image, cfg.min_size, cfg.max_size, cfg.pixel_mean, cfg.size_divisibility, self.fixed_hw)
        lap()
        dense = self.run_dense(pre.tensor)
        lap()
        props = decode(dense.levels, cfg.fpn_strides, cfg.score_thresh, cfg.pre_nms_topk, cfg.nms_thresh,
                       cfg.post_nms_topk)
        levels = assign_levels(props.boxes, pre.resized_hw, 3, 2 + len(cfg.pooler_strides))
        pooled = roi_align(dense.features, props.boxes, levels, cfg.pooler_strides, cfg.pooler_resolution)
        lap()
        if len(props):
            num_classes = dense.levels[0][0].shape[0]
            onehot = np.eye(num_classes, dtype=np.float32)[props.classes]
            mask_probs, maskiou = self.run_masks(pooled, onehot)
        else:
            mask_probs, maskiou = np.zeros((0, 1, 28, 28), np.float32), None
        lap()
        mask_scores = props.scores if maskiou is None else \
            props.scores * maskiou[np.arange(len(props)), props.classes]
        if trace is not None:
            trace.update(preprocessed=pre, dense=dense, proposals=props, level_assignment=levels,
                         pooled=pooled, mask_probs=mask_probs, maskiou=maskiou, mask_scores=mask_scores)
        boxes, keep = scale_clip_boxes(props.boxes, pre.resized_hw, pre.original_hw)
        order = np.nonzero(keep)[0]
        order = order[np.argsort(-props.scores[order], kind="stable")]
        masks = paste_masks(mask_probs[order, 0], boxes[order], pre.original_hw, cfg.mask_thresh)
        lap()
        self.timings = {k: (b - a) * 1e3 for k, a, b in zip(self.STAGES, clock, clock[1:])}
        return Instances(boxes[order], props.scores[order], props.classes[order], masks,
                         mask_scores[order].astype(np.float32), pre.original_hw, tuple(self.class_names))
