"""The one pre/post-processing path. A backend supplies only its two graphs, by output name:

  graph 1 (`infer_dense`):  image, raw padded BGR (1, 3, H, W) -> logits_i (1, K, h, w), bbox_reg_i (1, 4, h, w)
                            in stride units, ctrness_i (1, 1, h, w) for the 5 FCOS levels, and p3..p5
  graph 2 (`infer_masks`):  rois (N, C, 14, 14) + classes_onehot (N, K) -> mask_prob (N, 1, 28, 28) of the
                            given class, and maskiou (N, K) when the model has that head

Everything between (decode, NMS, level assignment, RoIAlign) and around (resize, paste) is here.
"""
from __future__ import annotations

import contextlib
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from .config import PipelineConfig
from .decode import Proposals, decode
from .errors import CmliteError, InferenceError, SettingsError, error_line
from .instances import Instances
from .paste import paste_masks, scale_clip_boxes
from .preprocess import Preprocessed, preprocess
from .roi_align import assign_levels, roi_align

NUM_LEVELS = 5
STAGES = ("preprocess", "graph1", "host", "graph2", "paste")  # a Segmenter's stages, in order (Job.timings' keys)
GRAPH_STAGES = ("graph1", "graph2")  # the runtime's own work; the rest is cmlite's (its CPU is what cmlite costs)
DENSE_INPUTS = ("image",)
MASK_INPUTS = ("rois", "classes_onehot")


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
class Job:
    """One image on its way through the pipeline: each stage method of Segmenter fills in its part, so stages of
    different images can run in different threads (runtimes/modes/) and still give what predict() gives."""
    image: np.ndarray | None
    trace: dict | None = None  # receives every intermediate stage when given
    error: BaseException | None = None  # the image could not be read: no stage runs
    t_taken: float = field(default_factory=time.perf_counter)  # when the image was taken from its source
    extras: dict = field(default_factory=dict)  # what the caller adds (e.g. in an overlap runner's finish)
    pre: Preprocessed | None = None
    dense: DenseOutputs | None = None
    props: Proposals | None = None
    levels: np.ndarray | None = None
    pooled: np.ndarray | None = None
    mask_probs: np.ndarray | None = None
    maskiou: np.ndarray | None = None
    instances: Instances | None = None
    timings: dict[str, float] = field(default_factory=dict)  # ms per stage: STAGES
    cpu: dict[str, float] = field(default_factory=dict)  # CPU ms of the thread that ran each stage (the graphs'
    #                                                       own threads not counted: the runtime's work)


def host_cpu_ms(cpu: dict[str, float]) -> float:
    """A frame's CPU ms outside the graphs (cmlite's own work: every stage but GRAPH_STAGES) from its per-stage
    CPU ms (Job.cpu, with the camera's drawing and output where it has them)."""
    return sum(v for stage, v in cpu.items() if stage not in GRAPH_STAGES)


@contextlib.contextmanager
def timed(job: Job, stage: str):
    """A stage's wall ms and the CPU ms of the thread running it, added to job.timings and job.cpu (not on failure):
    a stage timed in parts (the camera's drawing: the instances, then the panel) adds up."""
    t0, c0 = time.perf_counter(), time.thread_time()
    yield
    job.timings[stage] = job.timings.get(stage, 0.0) + (time.perf_counter() - t0) * 1e3
    job.cpu[stage] = job.cpu.get(stage, 0.0) + (time.thread_time() - c0) * 1e3


class Segmenter(ABC):
    """Runs CenterMask-Lite on a BGR image; subclasses are the backends."""

    config: PipelineConfig
    class_names: tuple[str, ...] = ()
    category_ids: tuple[int, ...] = ()  # dataset ids of the classes (COCO results files)
    fixed_hw: tuple[int, int] | None = None  # fixed-shape backends: the graph's input size
    mask_batch: int | None = None  # fixed-shape backends: the mask graph's RoI count (padded and chunked)
    resize: str = "exact"  # preprocess.RESIZES: the official filter, or the live camera's fast one
    timings: dict[str, float] = {}  # ms per stage of the last predict(): STAGES
    cpu_timings: dict[str, float] = {}  # CPU ms per stage of the last predict() (the calling thread's)

    STAGES = STAGES

    @property
    def device(self) -> str:
        """Where the graphs run, in words (reports, the camera overlay)."""
        return type(self).__name__

    @abstractmethod
    def infer_dense(self, image: np.ndarray) -> dict[str, np.ndarray]: ...

    @abstractmethod
    def infer_masks(self, rois: np.ndarray, onehot: np.ndarray) -> dict[str, np.ndarray]: ...

    def replicas(self, n: int, threads: int | None) -> list["Segmenter"]:
        """n copies of this model that can run at once from n threads, each with `threads` threads (throughput
        mode: runtimes/modes/throughput.py). Backends that can say how."""
        raise SettingsError(f"{self.device} cannot run in throughput mode (a converted model can: cmlite convert); "
                            "use --mode auto, overlap or sequential")

    def settings_from(self, original: "Segmenter") -> "Segmenter":
        """This replica takes its original's pipeline settings (the config with its overrides, the resize): what
        every backend's replicas() copies. -> self."""
        self.config, self.resize = original.config, original.resize
        return self

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
        job = Job(image, trace)
        for stage in self.stages():
            stage(job)
        self.timings, self.cpu_timings = job.timings, job.cpu
        return job.instances

    def stages(self) -> list:
        """The stage methods in STAGES' order: what every image goes through."""
        return [getattr(self, name) for name in self.STAGES]

    # The five stages, in order. Graph stages run a backend's graph (which uses its own threads); the others are
    # host work on the calling thread.

    def preprocess(self, job: Job) -> None:
        with timed(job, "preprocess"):
            cfg = self.config
            job.pre = preprocess(job.image, cfg.min_size, cfg.max_size, cfg.pixel_mean, cfg.size_divisibility,
                                 self.fixed_hw, self.resize)

    def _failed(self, graph: str, shape, e: Exception) -> InferenceError:
        return InferenceError(f"{graph} failed on a {'x'.join(map(str, shape))} input on {self.device} "
                              f"({type(e).__name__}: {error_line(e, 200)})")

    def graph1(self, job: Job) -> None:
        with timed(job, "graph1"):
            try:
                job.dense = self.run_dense(job.pre.tensor)
            except CmliteError:
                raise
            except Exception as e:  # the runtime refused this input: this image fails, the next may run
                raise self._failed("graph 1", job.pre.tensor.shape, e) from None

    def host(self, job: Job) -> None:
        """Decode, NMS, level assignment and RoIAlign: graph 2's input."""
        with timed(job, "host"):
            cfg, dense = self.config, job.dense
            job.props = decode(dense.levels, cfg.fpn_strides, cfg.score_thresh, cfg.pre_nms_topk, cfg.nms_thresh,
                               cfg.post_nms_topk)
            job.levels = assign_levels(job.props.boxes, job.pre.resized_hw, 3, 2 + len(cfg.pooler_strides))
            job.pooled = roi_align(dense.features, job.props.boxes, job.levels, cfg.pooler_strides,
                                   cfg.pooler_resolution)

    def graph2(self, job: Job) -> None:
        with timed(job, "graph2"):
            props = job.props
            if len(props):
                num_classes = job.dense.levels[0][0].shape[0]
                onehot = np.eye(num_classes, dtype=np.float32)[props.classes]
                try:
                    job.mask_probs, job.maskiou = self.run_masks(job.pooled, onehot)
                except CmliteError:
                    raise
                except Exception as e:
                    raise self._failed("graph 2", job.pooled.shape, e) from None
            else:
                job.mask_probs, job.maskiou = np.zeros((0, 1, 28, 28), np.float32), None

    def paste(self, job: Job) -> None:
        """Boxes and masks back to the original frame: the Instances."""
        with timed(job, "paste"):
            cfg, pre, props, maskiou = self.config, job.pre, job.props, job.maskiou
            mask_scores = props.scores if maskiou is None else \
                props.scores * maskiou[np.arange(len(props)), props.classes]
            if job.trace is not None:
                job.trace.update(preprocessed=pre, dense=job.dense, proposals=props, level_assignment=job.levels,
                                 pooled=job.pooled, mask_probs=job.mask_probs, maskiou=maskiou,
                                 mask_scores=mask_scores)
            boxes, keep = scale_clip_boxes(props.boxes, pre.resized_hw, pre.original_hw)
            order = np.nonzero(keep)[0]
            order = order[np.argsort(-props.scores[order], kind="stable")]
            masks = paste_masks(job.mask_probs[order, 0], boxes[order], pre.original_hw, cfg.mask_thresh)
            job.instances = Instances(boxes[order], props.scores[order], props.classes[order], masks,
                                      mask_scores[order].astype(np.float32), pre.original_hw, tuple(self.class_names))
            job.dense = job.pooled = None  # the large arrays go as soon as they are used (a trace keeps its own)
