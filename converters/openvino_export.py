"""ONNX -> OpenVINO IR (.xml + .bin). FP32 keeps float32 weights (save_model would compress them to FP16
unless told not to); FP16 stores FP16 weights. The execution precision hint is the runtime's, from the manifest."""
from __future__ import annotations

from pathlib import Path

from cmlite.runtimes.manifest import GRAPH_KINDS, GraphSpec
from cmlite.runtimes.target_table import Target

from .folders import graph_spec


def onnx_to_ir(onnx_path: Path, xml_path: Path, fp16_weights: bool) -> list[Path]:
    import openvino as ov

    model = ov.convert_model(str(onnx_path))
    ov.save_model(model, str(xml_path), compress_to_fp16=fp16_weights)
    return [xml_path, xml_path.with_suffix(".bin")]


def io_spec(xml_path: Path) -> tuple[list[dict], list[dict]]:
    import openvino as ov

    model = ov.Core().read_model(str(xml_path))

    def shape(p):
        return [d.get_length() if d.is_static else "?" for d in p.get_partial_shape()]

    inputs = [{"name": p.get_any_name(), "shape": shape(p), "dtype": p.get_element_type().to_dtype().name}
              for p in model.inputs]
    outputs = [{"name": p.get_any_name(), "shape": shape(p), "dtype": p.get_element_type().to_dtype().name,
                "layout": "NCHW" if len(p.get_partial_shape()) == 4 else "NC"} for p in model.outputs]
    return inputs, outputs


def build(fp32, precision: str, folder: Path, target: Target) -> dict[str, GraphSpec]:
    """An OpenVINO folder from the run's FP32 ONNX graphs: FP16 weights for fp16, float32 for fp32 and bf16 (whose
    precision is the runtime's hint). No graph 2 without the MaskIoU head: OpenVINO cuts it at load."""
    graphs = {}
    for kind in GRAPH_KINDS:
        xml = folder / f"{kind}.xml"
        onnx_to_ir(fp32.onnx(kind), xml, fp16_weights=precision == "fp16")
        graphs[kind] = graph_spec(folder, xml.name, io_spec, aux=[xml.with_suffix(".bin").name])
    return graphs
