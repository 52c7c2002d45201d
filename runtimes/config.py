"""Pre/post-processing settings: the official Lite test settings by default; a manifest can override them."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace


@dataclass(frozen=True)
class PipelineConfig:
    min_size: int = 600
    max_size: int = 1000
    size_divisibility: int = 32
    pixel_mean: tuple[float, float, float] = (103.530, 116.280, 123.675)  # BGR
    pixel_std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    score_thresh: float = 0.05
    pre_nms_topk: int = 1000
    nms_thresh: float = 0.6
    post_nms_topk: int = 50
    mask_thresh: float = 0.5
    fpn_strides: tuple[int, ...] = (8, 16, 32, 64, 128)
    pooler_strides: tuple[int, ...] = (8, 16, 32)
    pooler_resolution: int = 14

    def with_(self, **changes) -> "PipelineConfig":
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> "PipelineConfig":
        known = {f.name for f in fields(PipelineConfig)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown pipeline settings: {sorted(unknown)}")
        return PipelineConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})
