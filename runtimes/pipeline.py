"""The one pre/post-processing path. A backend supplies only its two graphs, by output name:

  graph 1 (`infer_dense`):  image, raw padded BGR (1, 3, H, W) -> logits_i (1, K, h, w), bbox_reg_i (1, 4, h, w)
                            in stride units, ctrness_i (1, 1, h, w) for the 5 FCOS levels, and p3..p5
  graph 2 (`infer_masks`):  rois (N, C, 14, 14) + classes_onehot (N, K) -> mask_prob (N, 1, 28, 28) of the
                            given class, and maskiou (N, K) when the model has that head

Everything between (decode, NMS, level assignment, RoIAlign) and around (resize, paste) is here.
"""
from __future__ import annotations

import functools
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from .config import PipelineConfig
from .decode import decode
from .instances import Instances
from .paste import paste_masks, scale_clip_boxes
from .preprocess import Preprocessed, preprocess
from .roi_align import assign_levels, roi_align

NUM_LEVELS = 5
DENSE_INPUTS = ("image",)
MASK_INPUTS = ("rois", "classes_onehot")


@functools.lru_cache(maxsize=1)
def _blas_controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def dense_output_names(num_feature_levels: int = 3) -> tuple[str, ...]:
    return (tuple(f"logits_{i}" for i in range(NUM_LEVELS)) + tuple(f"bbox_reg_{i}" for i in range(NUM_LEVELS))
            + tuple(f"ctrness_{i}" for i in range(NUM_LEVELS)) + tuple(f"p{i + 3}" for i in range(num_feature_levels)))


def mask_output_names(maskiou: bool) -> tuple[str, ...]:
    return ("mask_prob", "maskiou") if maskiou else ("mask_prob",)


@dataclass
class DenseOutputs:
    levels: list[tuple[np.ndarray, np.ndarray, np.ndarray]]  # per level: logits (K,H,W), reg (4,H,W), ctr (1,H,W)
    features: list[np.ndarray]  # P3..P5, each (C, H, W)

    @staticmethod
    def from_named(out: dict[str, np.ndarray], num_feature_levels: int = 3) -> "DenseOutputs":
        levels = [(out[f"logits_{i}"][0], out[f"bbox_reg_{i}"][0], out[f"ctrness_{i}"][0]) for i in range(NUM_LEVELS)]
        return DenseOutputs(levels, [out[f"p{i + 3}"][0] for i in range(num_feature_levels)])


@dataclass
class Front:
    """What graph 1 made of one image: the input to Segmenter.back()."""
    pre: Preprocessed
    dense: DenseOutputs
    timings: dict[str, float]  # ms: preprocess, graph1


class Segmenter(ABC):
    """Runs CenterMask-Lite on a BGR image; subclasses are the backends."""

    config: PipelineConfig
    class_names: tuple[str, ...] = ()
    category_ids: tuple[int, ...] = ()  # dataset ids of the classes (COCO results files)
    fixed_hw: tuple[int, int] | None = None  # fixed-shape backends: the graph's input size
    mask_batch: int | None = None  # fixed-shape backends: the mask graph's RoI count (padded and chunked)
    timings: dict[str, float] = {}  # ms per stage of the last predict(): STAGES

    STAGES = ("preprocess", "graph1", "host", "graph2", "paste")

    @property
    def device(self) -> str:
        """Where the graphs run, in words (reports, the camera overlay)."""
        return type(self).__name__

    @abstractmethod
    def infer_dense(self, image: np.ndarray) -> dict[str, np.ndarray]: ...

    @abstractmethod
    def infer_masks(self, rois: np.ndarray, onehot: np.ndarray) -> dict[str, np.ndarray]: ...

    def run_dense(self, tensor: np.ndarray) -> DenseOutputs:
        return DenseOutputs.from_named(self.infer_dense(tensor), len(self.config.pooler_strides))

    def run_masks(self, pooled: np.ndarray, onehot: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        n, b = len(pooled), self.mask_batch
        if b is None:
            out = self.infer_masks(pooled, onehot)
        else:  # pad to a multiple of the fixed batch, run in chunks, drop the padding
            pad = -n % b
            rois = np.concatenate([pooled, np.zeros((pad, *pooled.shape[1:]), pooled.dtype)])
            hot = np.concatenate([onehot, np.zeros((pad, onehot.shape[1]), onehot.dtype)])
            chunks = [self.infer_masks(rois[i:i + b], hot[i:i + b]) for i in range(0, n + pad, b)]
            out = {k: np.concatenate([c[k] for c in chunks])[:n] for k in chunks[0]}
        return out["mask_prob"], out.get("maskiou")

    def predict(self, image: np.ndarray, trace: dict | None = None) -> Instances:
        """image: HxWx3 uint8 BGR. `trace`, if given, receives every intermediate stage."""
        return self.back(self.front(image), trace)

    def front(self, image: np.ndarray) -> Front:
        """The first half of predict(): preprocessing and graph 1. Apps may run it for the next frame in another
        thread while back() finishes the current one (`cmlite camera --pipeline`)."""
        t0 = time.perf_counter()
        cfg = self.config
        pre = preprocess(image, cfg.min_size, cfg.max_size, cfg.pixel_mean, cfg.size_divisibility, self.fixed_hw)
        t1 = time.perf_counter()
        dense = self.run_dense(pre.tensor)
        t2 = time.perf_counter()
        return Front(pre, dense, {"preprocess": (t1 - t0) * 1e3, "graph1": (t2 - t1) * 1e3})

    def back(self, front: Front, trace: dict | None = None) -> Instances:
        """The second half of predict(): decode, RoIAlign, graph 2 and paste. Sets `timings` (all stages)."""
        # The host work is many tiny matrix products; a threaded BLAS spends 10-30x longer on them than
        # one thread does (measured: paste 400 ms vs 11 ms on 2 cores). The graphs use their own pools.
        with _blas_controller().limit(limits=1, user_api="blas"):
            return self._back(front, trace)

    def _back(self, front: Front, trace: dict | None) -> Instances:
        cfg, pre, dense = self.config, front.pre, front.dense
        clock = [time.perf_counter()]

        def lap():
            clock.append(time.perf_counter())

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
        self.timings = {**front.timings, **{k: (b - a) * 1e3 for k, a, b in zip(self.STAGES[2:], clock, clock[1:])}}
        return Instances(boxes[order], props.scores[order], props.classes[order], masks,
                         mask_scores[order].astype(np.float32), pre.original_hw, tuple(self.class_names))
