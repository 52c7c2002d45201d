"""Pre/post-processing settings: the official Lite test settings by default; a manifest can override them."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from .errors import SettingsError


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

    def __post_init__(self):
        """Settings that make no sense are refused here, wherever they come from (a manifest, overrides)."""
        wrong = []
        for f in fields(self):
            v = getattr(self, f.name)
            if f.type == "int" and (isinstance(v, bool) or not isinstance(v, int)):
                wrong.append(f"{f.name} {v!r} (a whole number)")
            elif f.type == "float" and (isinstance(v, bool) or not isinstance(v, (int, float))):
                wrong.append(f"{f.name} {v!r} (a number)")
            elif f.type.startswith("tuple") and (not isinstance(v, (tuple, list)) or
                                                 any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in v)):
                wrong.append(f"{f.name} {v!r} (a list of numbers)")
        if wrong:
            raise SettingsError("pipeline settings of the wrong type: " + "; ".join(wrong))
        problems = []
        if not isinstance(self.min_size, int) or self.min_size < 32:
            problems.append(f"min_size {self.min_size!r} (a short side of at least 32 pixels)")
        if not isinstance(self.max_size, int) or (isinstance(self.min_size, int) and self.max_size < self.min_size):
            problems.append(f"max_size {self.max_size!r} (at least min_size {self.min_size!r})")
        if not isinstance(self.size_divisibility, int) or self.size_divisibility < 1:
            problems.append(f"size_divisibility {self.size_divisibility!r} (at least 1)")
        if len(self.pixel_mean) != 3 or len(self.pixel_std) != 3 or min(self.pixel_std) <= 0:
            problems.append(f"pixel_mean {self.pixel_mean!r} / pixel_std {self.pixel_std!r} (3 values each, std > 0)")
        if not 0 <= self.score_thresh < 1:
            problems.append(f"score_thresh {self.score_thresh!r} (in [0, 1))")
        if not 0 < self.nms_thresh <= 1:
            problems.append(f"nms_thresh {self.nms_thresh!r} (in (0, 1])")
        if not 0 < self.mask_thresh < 1:
            problems.append(f"mask_thresh {self.mask_thresh!r} (in (0, 1))")
        if self.pre_nms_topk < 1 or self.post_nms_topk < 1:
            problems.append(f"pre_nms_topk {self.pre_nms_topk!r} / post_nms_topk {self.post_nms_topk!r} (at least 1)")
        if len(self.fpn_strides) != 5 or not self.pooler_strides or min((*self.fpn_strides, *self.pooler_strides)) < 1:
            problems.append(f"fpn_strides {self.fpn_strides!r} / pooler_strides {self.pooler_strides!r}")
        if self.pooler_resolution < 1:
            problems.append(f"pooler_resolution {self.pooler_resolution!r} (at least 1)")
        if problems:
            raise SettingsError("pipeline settings out of range: " + "; ".join(problems))

    def with_(self, **changes) -> "PipelineConfig":
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> "PipelineConfig":
        known = {f.name for f in fields(PipelineConfig)}
        unknown = set(d) - known
        if unknown:
            raise SettingsError(f"unknown pipeline settings: {sorted(unknown)}")
        return PipelineConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})
