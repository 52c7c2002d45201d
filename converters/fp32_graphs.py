"""The FP32 graphs one `convert` run makes every target's folder from, each exported once and only when a target
asks for it: ONNX (ONNX Runtime, OpenVINO's IR and TensorRT start from it) and TFLite per input size."""
from __future__ import annotations

from pathlib import Path

from cmlite.lite.model import CenterMaskLite
from cmlite.runtimes.config import PipelineConfig
from cmlite.runtimes.target_table import Target


def default_fixed_hw(cfg: PipelineConfig) -> tuple[int, int]:
    """Fixed-shape targets default to a 4:3 landscape frame at the test size, padded."""
    d = cfg.size_divisibility
    short = cfg.min_size
    long = min(int(short * 4 / 3 + 0.5), cfg.max_size)
    return -(-short // d) * d, -(-long // d) * d


def input_hw(target: Target, cfg: PipelineConfig, fixed_hw) -> tuple[int, int] | None:
    """The graph input a target's folder gets: --input-size, else dynamic; a fixed-input target (TFLite) always
    has one (the default frame when none was asked)."""
    return tuple(fixed_hw) if fixed_hw else (default_fixed_hw(cfg) if target.fixed_input else None)


class Fp32Graphs:
    def __init__(self, model: CenterMaskLite, work: Path, fixed_hw: tuple[int, int] | None, mask_batch: int,
                 log=print):
        self.model, self.work, self.fixed_hw, self.mask_batch, self.log = model, Path(work), fixed_hw, mask_batch, log
        self._onnx: dict[str, Path] = {}
        self._tflite: dict[tuple[int, int], dict[str, Path]] = {}

    def input_hw(self, target: Target) -> tuple[int, int] | None:
        return input_hw(target, self.model.config, self.fixed_hw)

    def onnx(self, kind: str) -> Path:
        """Graph 1 ("dense", at --input-size or dynamic) or graph 2 ("masks") as FP32 ONNX."""
        if kind not in self._onnx:
            from . import onnx_export

            self.log(f"  exporting graph {1 if kind == 'dense' else 2} ({kind}) to ONNX ...")
            path = self.work / f"{kind}.onnx"
            (onnx_export.export_dense(self.model, path, self.fixed_hw) if kind == "dense"
             else onnx_export.export_masks(self.model, path))
            self._onnx[kind] = path
        return self._onnx[kind]

    def tflite(self, hw: tuple[int, int]) -> dict[str, Path]:
        """Both graphs (and graph 2 without the MaskIoU head) as FP32 .tflite at input hw."""
        if hw not in self._tflite:
            from . import tflite_export

            self._tflite[hw] = tflite_export.convert_fp32(self.model, self.work, hw, self.mask_batch, self.log)
        return self._tflite[hw]
