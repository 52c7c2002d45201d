"""Export and conversion of CenterMask-Lite to edge targets (ONNX Runtime, OpenVINO, TFLite/LiteRT, TensorRT)."""


def spawn_helper_processes() -> None:
    """Make libraries that start helper processes spawn them instead of forking. OpenVINO's converter sends its
    telemetry from a forked process; a fork while JAX (litert-torch, ai-edge-quantizer) or ONNX Runtime run
    threads can deadlock the child ("os.fork() ... will likely lead to a deadlock"). Called by convert/quantize."""
    import multiprocessing as mp

    if mp.get_start_method(allow_none=True) != "spawn":
        mp.set_start_method("spawn", force=True)


def node_module(node_name: str) -> str:
    """The PyTorch module path a node was named after (`onnx_export._name_by_module`), "" for wrapper ops."""
    return node_name.rsplit("/", 1)[0] if "/" in node_name else ""
