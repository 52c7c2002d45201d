"""The targets: one row per runtime cmlite converts for and runs on. Torch-free, so a device reads it too.

Everything that varies by target is a field here, and the code reads the field, never the name: the loader finds
the backend class, `convert` the exporter, `quantize` the quantizer and the FP32 twin, the CLI its choices, the
manifest reader what it accepts, `bench` and `demo` what runs on this CPU. Adding a target is one backend module,
its exporter and quantizer, and one row. Modules are named, not imported: each is imported only when used
(a device without the converters never loads them).
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import CmliteError

PRECISIONS = ("fp32", "fp16", "bf16", "int8")  # every precision a manifest may say


@dataclass(frozen=True)
class Target:
    name: str  # the manifest's `target`, the folder prefix (onnx-fp32) and the --targets / --backend value
    runtime: str  # what runs it, in words
    package: str  # the Python package of that runtime (versions, manifests)
    backend: str  # runtimes/<backend>.py: one file per backend (which says what to install when its package is
    segmenter: str  # missing), holding this ConvertedSegmenter subclass
    exporter: str  # converters/<exporter>.py: build(fp32, precision, folder, target) -> {graph: GraphSpec}
    quantizer: str  # calibration/<quantizer>.py: build_int8(q, target, twin, folder, keep_float) -> (graphs, settings)
    precisions: tuple[str, ...]  # what `cmlite convert` makes (int8 is `cmlite quantize`'s)
    files: tuple[str, ...]  # the graph files' suffixes (an IR is its .xml and its weights' .bin)
    fixed_input: bool = False  # graph 1 always has a fixed input (the default frame when none is asked)
    drops_maskiou_at_load: bool = False  # the runtime cuts the MaskIoU head at load; else a masks_noiou graph beside
    twin: str = ""  # the FP32 folder (`<twin>-fp32`) its INT8 folder is quantized from; "" = its own
    onnx_graphs: bool = False  # its graphs are ONNX files ...
    runs_onnx_graphs: bool = False  # ... which this target's runtime runs for any target (--backend onnx)
    rules: str | None = None  # converters/<rules>.py: write(src, dst) checks each ONNX graph against the target's
    #                           parser and section(manifest) its manifest section
    device: str = "cpu"  # where it runs: "cpu" targets are built, run and measured on this machine
    measured_here_with: str | None = None  # off its device, the backend that runs its graphs instead (AP checks)
    engines: bool = False  # its graphs are built into engines on the device (cmlite build-engine), which Triton serves
    qdq_in_float: bool = False  # its INT8 graphs, run in ONNX Runtime as their reference, compute Q/DQ in float (the
    #                            target accumulates in int32; ORT's int8 kernels saturate on CPUs without VNNI)
    modules: tuple[str, ...] = ()  # the import names its runtime may have (the first found runs); default: package
    # Triton (converters/triton_repo.py): the config field and value that name the server's own backend for these
    # graphs (None: Triton has none; `--backend python` serves them through this runtime), the file name that
    # backend looks for in a version folder, and whether graph 2's RoI dimension is Triton's batch dimension
    # (dynamic batching across requests; OpenVINO's backend fixes a batched model's batch at max_batch_size)
    triton: tuple[str, str] | None = None
    triton_library: str = ""  # the folder of that backend's library in the server's backends/ (what it must have)
    triton_file: str = ""
    triton_batches: bool = False
    triton_params: tuple[tuple[str, str], ...] = ()  # that backend's fixed config parameters
    triton_threads: str = ""  # its parameter for the threads per instance (--threads)
    triton_bf16: str = ""  # its parameter set to YES for a BF16 folder

    @property
    def twin_target(self) -> str:
        return self.twin or self.name

    def folder(self, precision: str) -> str:
        """The name of its folder of `precision` (onnx-int8): what convert, quantize, pick and the demo write."""
        return folder_name(self.name, precision)

    def installed(self) -> bool:
        """Whether its runtime can be imported here (found, not imported)."""
        import importlib.util

        return any(importlib.util.find_spec(m) is not None for m in self.modules or (self.package,))

    @property
    def runs_here(self) -> bool:
        return self.device == "cpu"


_ROWS = (
    Target("onnx", "ONNX Runtime", "onnxruntime", "ort_backend", "OrtSegmenter", exporter="onnx_export",
           quantizer="ort_quant",
           precisions=("fp32", "fp16"), files=(".onnx",), onnx_graphs=True, runs_onnx_graphs=True,
           triton=("platform", "onnxruntime_onnx"), triton_library="onnxruntime", triton_file="model.onnx",
           triton_batches=True,
           triton_params=(("inter_op_thread_count", "1"),), triton_threads="intra_op_thread_count"),
    Target("openvino", "OpenVINO", "openvino", "openvino_backend", "OpenVinoSegmenter", exporter="openvino_export",
           quantizer="nncf_quant", precisions=("fp32", "fp16", "bf16"), files=(".xml", ".bin"),
           drops_maskiou_at_load=True, triton=("backend", "openvino"), triton_library="openvino",
           triton_file="model.xml",
           triton_params=(("PERFORMANCE_HINT", "LATENCY"),), triton_threads="INFERENCE_NUM_THREADS",
           triton_bf16="HINT_BF16"),
    Target("tflite", "LiteRT", "ai-edge-litert", "litert_backend", "LiteRtSegmenter", exporter="tflite_export",
           quantizer="tflite_quant", precisions=("fp32", "fp16"), files=(".tflite",), fixed_input=True,
           modules=("ai_edge_litert", "tflite_runtime")),  # or tflite-runtime, the backend's fallback
    Target("tensorrt", "TensorRT", "tensorrt", "tensorrt_backend", "TensorRtSegmenter", exporter="onnx_export",
           quantizer="ort_quant", precisions=("fp32", "fp16"), files=(".onnx", ".engine", ".plan"), twin="onnx",
           onnx_graphs=True, rules="tensorrt_export", device="nvidia-gpu", measured_here_with="onnx", engines=True,
           qdq_in_float=True,
           triton=("platform", "tensorrt_plan"), triton_library="tensorrt", triton_file="model.plan",
           triton_batches=True),
)
TARGETS: dict[str, Target] = {t.name: t for t in _ROWS}
NAMES = tuple(TARGETS)
CPU_TARGETS = tuple(t.name for t in _ROWS if t.runs_here)  # what the demo and bench run on this machine


def folder_name(target: str, precision: str) -> str:
    """A model folder's name: the target and the precision (openvino-fp16)."""
    return f"{target}-{precision}"


def get(name: str, what: str = "target") -> Target:
    """The row of `name`, or one line listing the targets."""
    try:
        return TARGETS[name]
    except (KeyError, TypeError):
        raise CmliteError(f"unknown {what} {name!r}; choose from {', '.join(NAMES)}") from None


def convert_precisions() -> tuple[str, ...]:
    """Every precision some target converts to (int8 excluded: quantize)."""
    return tuple(p for p in PRECISIONS if any(p in t.precisions for t in _ROWS))


def describe() -> str:
    """'onnx fp32/fp16, openvino fp32/fp16/bf16, ...' for help texts and error lines."""
    return ", ".join(f"{t.name} {'/'.join(t.precisions)}" for t in _ROWS)
