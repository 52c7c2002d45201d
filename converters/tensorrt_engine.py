"""`cmlite build-engine`: TensorRT engines from a `tensorrt-<precision>/` folder, built on the device that runs them.

TensorRT's own Python API: Builder, OnnxParser, a strongly typed network (the precision is the graphs'), one
optimization profile per graph from the manifest, the workspace limit, an optional timing cache shared between
builds, and DLA with GPU fallback on Xavier / Orin. The engines are written beside the ONNX files; the manifest
records their hashes, the TensorRT version, the GPU / Jetson model and compute capability, the settings, and the
layer precisions TensorRT chose. Nothing is replaced until both engines are built.
"""
from __future__ import annotations

import datetime as _dt
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

from cmlite.runtimes.errors import CmliteError
from cmlite.runtimes.manifest import Manifest, read_manifest, sha256

from . import node_module  # runs on the device: numpy, TensorRT and CUDA's bindings only (no torch, no onnx)


@dataclass(frozen=True)
class BuildSettings:
    workspace_mb: int = 1024
    dla_core: int | None = None
    timing_cache: Path | None = None


def check_settings(manifest: Manifest, folder: Path, s: BuildSettings) -> None:
    """What can be refused before TensorRT is touched, one line each."""
    if manifest.target != "tensorrt" or not manifest.tensorrt:
        raise CmliteError(f"{folder} is not a TensorRT folder (its target is {manifest.target}); engines are built "
                          f"from one: cmlite convert --targets tensorrt (or quantize --targets tensorrt) first")
    if s.workspace_mb <= 0:
        raise CmliteError(f"--workspace {s.workspace_mb}: give the builder's scratch memory in MB, e.g. 1024")
    if s.dla_core is not None:
        if s.dla_core < 0:
            raise CmliteError(f"--dla {s.dla_core}: DLA cores are numbered from 0")
        if manifest.precision == "fp32":
            raise CmliteError("--dla: the DLA runs FP16 and INT8 only, and this folder is FP32; use the "
                              "tensorrt-fp16 or tensorrt-int8 folder")
    if s.timing_cache is not None and Path(s.timing_cache).is_dir():
        raise CmliteError(f"--timing-cache {s.timing_cache} is a folder; give a file (created when missing)")


def engine_shapes(manifest: Manifest, dla: bool) -> dict:
    """The profiles to build and the shapes the runtime then feeds.

    On the GPU, the manifest's ranges. The DLA takes static shapes only, so with --dla each profile collapses
    to its opt shape: graph 1 gets the camera frame (the pipeline fits other images into it, aspect kept)
    and graph 2 a fixed RoI batch (the pipeline pads and chunks)."""
    profiles = manifest.tensorrt["profiles"]
    if not dla:
        return {"profiles": profiles, "fixed_hw": None, "mask_batch": None}
    fixed = {g: {n: {k: p["opt"] for k in ("min", "opt", "max")} for n, p in prof.items()}
             for g, prof in profiles.items()}
    return {"profiles": fixed, "fixed_hw": list(profiles["dense"]["image"]["opt"][2:]),
            "mask_batch": profiles["masks"]["rois"]["opt"][0]}


def profile(shapes: dict, kind: str) -> dict:
    """A graph's optimization profile: masks_noiou takes graph 2's inputs, so graph 2's profile."""
    return shapes["profiles"]["masks" if kind.startswith("masks") else kind]


def parse_failure(file: str, errors: list[tuple[str, str, str]], trt_version: str) -> str:
    """One line for a graph TensorRT's parser refused: the node, its PyTorch module and what to do."""
    if not errors:
        return f"TensorRT {trt_version} could not parse {file} (no detail given); convert the model again"
    name, op, desc = errors[0]
    module = node_module(name)
    where = f"node {name or '?'} ({op or '?'}{', module ' + module if module else ''})"
    more = f" and {len(errors) - 1} more" if len(errors) > 1 else ""
    return (f"TensorRT {trt_version} cannot parse {file}: {where}: {desc}{more}. The folder's graphs are made for "
            f"TensorRT 10 or later: update TensorRT (JetPack 6.1+), or convert again with this cmlite "
            f"(cmlite convert --targets tensorrt)")


_TYPE = re.compile(r"\b(FP32|FP16|BF16|FP8|FP4|INT8|INT4|INT32|INT64|BOOL|UINT8)\b", re.I)


def layer_precisions(info_json: str) -> dict[str, int]:
    """Layers per output type, from IEngineInspector's JSON (built with detailed profiling verbosity).
    TensorRT 10 writes "Format/Datatype" strings ("Row major linear FP16 format"), 11 a separate data type."""
    try:
        layers = json.loads(info_json).get("Layers", [])
    except (json.JSONDecodeError, AttributeError):
        return {}
    counts: dict[str, int] = {}
    for layer in layers:
        if not isinstance(layer, dict):
            continue
        outs = layer.get("Outputs") or []
        text = " ".join(str(v) for o in outs[:1] if isinstance(o, dict) for k, v in o.items()
                        if "type" in k.lower())
        found = _TYPE.search(text)
        key = found.group(1).upper() if found else "other"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def _monitor(trt, log):
    """TensorRT's progress callbacks as log lines (top phases) ; Ctrl-C cancels the build."""

    class Monitor(trt.IProgressMonitor):
        def __init__(self):
            trt.IProgressMonitor.__init__(self)
            self.depth: dict[str, int] = {}
            self.cancelled = False

        def phase_start(self, phase_name, parent_phase, num_steps):
            try:
                self.depth[phase_name] = 0 if parent_phase is None else self.depth.get(parent_phase, 0) + 1
                if self.depth[phase_name] <= 1:
                    log(f"    {'  ' * self.depth[phase_name]}{phase_name} ({num_steps} steps)")
            except KeyboardInterrupt:
                self.cancelled = True

        def step_complete(self, phase_name, step):
            return not self.cancelled

        def phase_finish(self, phase_name):
            self.depth.pop(phase_name, None)

    return Monitor()


def _build_one(trt, onnx_path: Path, profile: dict, s: BuildSettings, cache_bytes: bytes, log):
    """-> (serialized engine bytes, timing cache bytes, layer precisions)."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):  # TensorRT 11: always strongly typed
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = []
        for i in range(parser.num_errors):
            e = parser.get_error(i)
            errors.append((e.node_name(), e.node_operator(), e.desc()))
        raise CmliteError(parse_failure(onnx_path.name, errors, trt.__version__))
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, s.workspace_mb << 20)
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    opt = builder.create_optimization_profile()
    for name, p in profile.items():
        opt.set_shape(name, p["min"], p["opt"], p["max"])
    config.add_optimization_profile(opt)
    if s.dla_core is not None:
        if builder.num_DLA_cores <= s.dla_core:
            raise CmliteError(f"--dla {s.dla_core}: this device has {builder.num_DLA_cores} DLA cores "
                              f"(Orin NX/AGX and Xavier have 2, Orin Nano none); leave --dla out for the GPU")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = s.dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    cache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(cache, ignore_mismatch=False)
    monitor = None
    if hasattr(trt, "IProgressMonitor"):
        monitor = _monitor(trt, log)
        config.progress_monitor = monitor
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        if monitor is not None and monitor.cancelled:
            raise KeyboardInterrupt
        raise CmliteError(f"TensorRT could not build {onnx_path.name} (its messages above say why); try a larger "
                          f"--workspace{', or leave --dla out' if s.dla_core is not None else ''}")
    engine_bytes = bytes(plan)
    runtime = trt.Runtime(logger)
    engine = runtime.deserialize_cuda_engine(engine_bytes)
    info = engine.create_engine_inspector().get_engine_information(trt.LayerInformationFormat.JSON)
    return engine_bytes, bytes(config.get_timing_cache().serialize()), layer_precisions(info)


def _write_atomic(path: Path, data: bytes) -> Path:
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_bytes(data)
    return tmp


def _adopt_one(trt, path: Path):
    """An engine built elsewhere (trtexec) on this device: loaded to check it, its layer precisions read."""
    if not path.is_file():
        raise CmliteError(f"--adopt: {path} not found; build it first (cmlite build-engine {path.parent} "
                          f"--trtexec prints the commands)")
    data = path.read_bytes()
    engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(data)
    if engine is None:
        raise CmliteError(f"--adopt: TensorRT {trt.__version__} cannot load {path} (another TensorRT version or "
                          f"device, or damaged); build it again on this device")
    info = engine.create_engine_inspector().get_engine_information(trt.LayerInformationFormat.JSON)
    return data, layer_precisions(info)


def record_engines(manifest: Manifest, folder: Path, files: dict[str, Path], trt_version: str, device: dict,
                   s: BuildSettings, shapes: dict, precisions: dict, seconds: float, adopt: bool = False) -> Path:
    """The engines into the manifest (hashes, TensorRT version, device, settings, shapes, layer precisions):
    what the runtime checks before loading them."""
    manifest.tensorrt["engines"] = {
        "files": {k: {"file": p.name, "sha256": sha256(p), "bytes": p.stat().st_size} for k, p in files.items()},
        "tensorrt_version": trt_version, "device": device,
        "settings": {"workspace_mb": s.workspace_mb, "dla_core": s.dla_core,
                     "timing_cache": str(s.timing_cache) if s.timing_cache else None, "typing": "strong",
                     "built_by": "trtexec (adopted)" if adopt else "cmlite build-engine"},
        "shapes": {"fixed_hw": shapes["fixed_hw"], "mask_batch": shapes["mask_batch"]},
        "profiles": shapes["profiles"], "layer_precisions": precisions,
        "built": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "seconds": round(seconds, 1)}
    return manifest.write(folder)


def build_engines(folder: str | Path, s: BuildSettings = BuildSettings(), adopt: bool = False,
                  log=print) -> Manifest:
    """Build dense.engine and masks.engine in `folder` on this device and record them in its manifest
    (adopt: record the engines already there instead, e.g. built with trtexec)."""
    from cmlite.runtimes.cuda_device import cuda_api
    from cmlite.runtimes.tensorrt_backend import require_tensorrt

    folder = Path(folder)
    manifest = read_manifest(folder)
    folder = folder if folder.is_dir() else folder.parent
    check_settings(manifest, folder, s)
    manifest.verify_files(folder, engines=False)
    trt = require_tensorrt()
    device = cuda_api().device()
    shapes = engine_shapes(manifest, s.dla_core is not None)
    cache_path = Path(s.timing_cache) if s.timing_cache else None
    cache_bytes = cache_path.read_bytes() if cache_path and cache_path.is_file() else b""
    log(f"{'checking' if adopt else 'building'} TensorRT {trt.__version__} engines for {device.get('jetson_model') or device['gpu']} "
        f"(compute capability {device['compute_capability']}) from {folder}"
        + (f" on DLA core {s.dla_core} with GPU fallback" if s.dla_core is not None else ""))
    staged, files, precisions = {}, {}, {}
    t0 = time.time()
    try:
        for kind in manifest.graphs:  # dense, masks and masks_noiou (graph 2 without the MaskIoU head)
            onnx_path = folder / manifest.graphs[kind].file
            path = folder / f"{kind}.engine"
            if adopt:
                engine, precisions[kind] = _adopt_one(trt, path)
            else:
                log(f"  graph {1 if kind == 'dense' else 2} ({onnx_path.name}) ...")
                engine, cache_bytes, precisions[kind] = _build_one(trt, onnx_path, profile(shapes, kind), s,
                                                                   cache_bytes, log)
                staged[path] = _write_atomic(path, engine)
            files[kind] = path
            log(f"  {path.name}: {len(engine) / 2**20:.1f} MB; layers by output type: "
                + ", ".join(f"{k} {v}" for k, v in precisions[kind].items()))
        for path, tmp in staged.items():
            tmp.replace(path)
        staged = {}
        if cache_path and not adopt:
            _write_atomic(cache_path, cache_bytes).replace(cache_path)
    finally:
        for tmp in staged.values():
            tmp.unlink(missing_ok=True)
    record_engines(manifest, folder, files, str(trt.__version__), device, s, shapes, precisions,
                   time.time() - t0, adopt)
    log(f"{'recorded' if adopt else 'wrote'} {', '.join(p.name for p in files.values())} in "
        f"{time.time() - t0:.0f} s; updated {folder / 'manifest.json'}")
    return manifest
