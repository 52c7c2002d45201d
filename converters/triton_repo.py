"""`cmlite triton export`: converted folders -> a Triton model repository.

    REPO/
      NAME_dense/config.pbtxt      graph 1; its parameters carry the folder's manifest (cmlite_manifest), which
      NAME_dense/manifest.json     a `triton://HOST:PORT/NAME` client reads for the pre/post settings
      NAME_dense/1/model.onnx      the server's own backend (ONNX Runtime, OpenVINO: model.xml/.bin, TensorRT:
                                   model.plan), or with --backend python: 1/model.py and 1/model/ (the manifest
                                   and this graph's files, run by cmlite's runtime: runtimes/triton_python.py)
      NAME_masks/...               graph 2, with Triton's batch dimension over the RoIs and dynamic batching where
                                   the backend batches (so RoIs of several clients' frames run as one batch)

Every config.pbtxt is written from Triton's ModelConfig protobuf (tritonclient's model_config_pb2) by protobuf's
own text format. What varies by target (the backend, its file name, whether it batches) is the targets table's.
The model folders are written as convert writes its own (converters/folders.py): an interrupted export leaves no
half model.
"""
from __future__ import annotations

import json
import os
import shutil
import site
from pathlib import Path

from cmlite.runtimes import target_table
from cmlite.runtimes.errors import CmliteError
from cmlite.runtimes.manifest import GRAPH_KINDS, MANIFEST, Manifest, graph_kind, read_manifest

BACKENDS = ("native", "python")  # the target's own Triton backend, or cmlite's runtime in Triton's Python backend
MANIFEST_PARAM = "cmlite_manifest"
DTYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "int8": "TYPE_INT8", "uint8": "TYPE_UINT8",
          "int32": "TYPE_INT32", "int64": "TYPE_INT64"}

PYTHON_MODEL = '''"""Written by `cmlite triton export`: one graph of a converted model, run by cmlite's own runtime
inside Triton's Python backend (cmlite.runtimes.triton_python). The backend's stub does not read PYTHONPATH: cmlite's
site-packages come from CMLITE_SITE (set by `cmlite triton serve`) or the folders the export recorded."""
import json
import os
import site


class TritonPythonModel:
    def initialize(self, args):
        params = json.loads(args["model_config"]).get("parameters", {})
        paths = os.environ.get("CMLITE_SITE") or params.get("cmlite_site", {}).get("string_value", "")
        for path in filter(None, paths.split(os.pathsep)):
            site.addsitedir(path)
        import triton_python_backend_utils as pb_utils
        from cmlite.runtimes.triton_python import GraphModel

        self.model = GraphModel(args, pb_utils)

    def execute(self, requests):
        return self.model.execute(requests)
'''


def model_config_pb2():
    try:
        from tritonclient.grpc import model_config_pb2
    except ImportError:
        raise CmliteError("writing a Triton repository needs tritonclient (its ModelConfig protobuf): "
                          "pip install \"cmlite[serve]\"") from None
    return model_config_pb2


def site_dirs() -> str:
    """This interpreter's site-packages (where cmlite and its runtimes are installed), for the Python backend."""
    dirs = [*site.getsitepackages(), site.getusersitepackages()]
    return os.pathsep.join(d for d in dict.fromkeys(dirs) if Path(d).is_dir())


def _dims(shape: list) -> list[int]:
    return [d if isinstance(d, int) and d > 0 else -1 for d in shape]


def _max_rois(manifest: Manifest) -> int:
    """Graph 2's default batch limit: four frames' RoIs at the detection cap (so the server can batch the RoIs of
    several clients' frames), or a TensorRT engine's profile maximum."""
    profile = ((manifest.tensorrt or {}).get("profiles") or {}).get("masks", {}).get("rois", {}).get("max")
    return int(profile[0]) if profile else 4 * manifest.pipeline.post_nms_topk


def _tensors(message, specs: list[dict], batched: bool) -> None:
    for s in specs:
        t = message.add()
        t.name = s["name"]
        dtype = s.get("dtype", "float32")
        if dtype not in DTYPES:
            raise CmliteError(f"tensor {s['name']}: Triton export has no type for {dtype}")
        t.data_type = getattr(model_config_pb2().DataType, DTYPES[dtype])
        t.dims.extend(_dims(s["shape"][1:] if batched else s["shape"]))


def config(manifest: Manifest, name: str, graph: str, backend: str, instances: int = 1, threads: int | None = None,
           max_batch: int | None = None) -> object:
    """The ModelConfig of one graph (graph: "dense" or "masks") of a converted folder."""
    pb = model_config_pb2()
    row = target_table.get(manifest.target)
    spec = manifest.graphs[graph]
    cfg = pb.ModelConfig(name=f"{name}_{graph}")
    python = backend == "python"
    if python:
        cfg.backend = "python"
    elif row.triton is None:
        raise CmliteError(f"Triton has no backend for {row.name} graphs ({row.runtime}): export this folder with "
                          f"--backend python, which runs them through cmlite's runtime inside the server")
    else:
        setattr(cfg, row.triton[0], row.triton[1])
    # graph 2's RoI dimension is the batch dimension where the server may batch it (the Python model batches the
    # requests it is given itself; a fixed RoI count, as LiteRT's, is padded and chunked there)
    batched = graph == "masks" and (python or row.triton_batches)
    if batched:
        cfg.max_batch_size = max_batch or _max_rois(manifest)
        cfg.dynamic_batching.max_queue_delay_microseconds = 0  # batch what queued while the instance was busy
    _tensors(cfg.input, spec.inputs, batched)
    _tensors(cfg.output, spec.outputs, batched)
    group = cfg.instance_group.add()
    group.count = instances
    group.kind = pb.ModelInstanceGroup.KIND_GPU if row.device != "cpu" and not python else \
        pb.ModelInstanceGroup.KIND_CPU
    params = {"cmlite_graph": graph, "cmlite_name": name}
    if graph == "dense":
        params[MANIFEST_PARAM] = json.dumps(manifest.to_dict(), separators=(",", ":"))
    if python:
        params["cmlite_site"] = site_dirs()
        params |= {"cmlite_threads": str(threads)} if threads else {}
    else:  # the server's backend's own parameters, from the targets table
        params |= dict(row.triton_params)
        params |= {row.triton_threads: str(threads)} if threads and row.triton_threads else {}
        params |= {row.triton_bf16: "YES"} if manifest.precision == "bf16" and row.triton_bf16 else {}
    for k, v in params.items():
        cfg.parameters[k].string_value = v
    return cfg


def config_text(cfg) -> str:
    from google.protobuf import text_format

    return text_format.MessageToString(cfg)


def _graph_files(manifest: Manifest, folder: Path, graph: str) -> dict[str, Path]:
    """The files serving `graph` needs natively: {name in the version folder: source}."""
    row = target_table.get(manifest.target)
    spec = manifest.graphs[graph]
    if row.engines:
        engine = ((manifest.engines or {}).get("files") or {}).get(graph)
        if not engine:
            raise CmliteError(f"{folder}: no TensorRT engine yet (Triton serves engines, not ONNX graphs): build them "
                              f"on the server's GPU first: cmlite build-engine {folder}")
        return {row.triton_file: folder / engine["file"]}
    stem = Path(row.triton_file).stem
    return {row.triton_file: folder / spec.file,
            **{f"{stem}{Path(a).suffix}": folder / a for a in spec.aux_files}}


def _python_files(manifest: Manifest, folder: Path, graph: str) -> dict[str, Path]:
    """The Python model's copy of the folder: the manifest and this graph's files (graph 2 with masks_noiou)."""
    files = {f"model/{MANIFEST}": folder / MANIFEST}
    for kind, spec in manifest.graphs.items():
        if graph_kind(kind) == graph:
            files |= {f"model/{f}": folder / f for f in (spec.file, *spec.aux_files)}
    return files


def _write_model(folder: Path, cfg, files: dict[str, Path], source: Path, backend: str) -> None:
    """One model's folder: its config, the source folder's manifest beside it, and version 1's files."""
    (folder / "1").mkdir()
    (folder / "config.pbtxt").write_text(config_text(cfg))
    shutil.copy2(source / MANIFEST, folder / MANIFEST)
    for dst, src in files.items():
        (folder / "1" / dst).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, folder / "1" / dst)
    if backend == "python":
        (folder / "1" / "model.py").write_text(PYTHON_MODEL)


def export(folders: list[str | Path], repo: str | Path, backend: str = "native", names: list[str] | None = None,
           instances: int = 1, threads: int | None = None, max_batch: int | None = None, overwrite: bool = False,
           log=print) -> list[str]:
    """Write each converted folder's two graphs into the repository; returns the model names (NAME, served as
    NAME_dense and NAME_masks). Every config and file is worked out first (a target Triton cannot serve, or an
    engine not built yet, stops before anything is written); the model folders are then written as `convert`
    writes its own (converters/folders.py): staged in the repository and renamed in together, models of the same
    names refused unless overwrite."""
    from .folders import model_folders

    if backend not in BACKENDS:
        raise CmliteError(f"--backend {backend}: choose {' or '.join(BACKENDS)}")
    if instances < 1 or (threads is not None and threads < 1) or (max_batch is not None and max_batch < 1):
        raise CmliteError("--instances, --threads and --max-batch take positive numbers")
    folders = [Path(f) for f in folders]
    names = names or [f.resolve().name for f in folders]
    if len(names) != len(folders):
        raise CmliteError(f"{len(names)} --name for {len(folders)} folders: give one name per folder, or none")
    bad = [n for n in names if not n or "/" in n or n.startswith(".") or not n.isprintable() or " " in n]
    if bad or len(set(names)) != len(names):
        raise CmliteError(f"model names {names}: give each folder its own name, without '/', spaces or a leading '.' "
                          f"(--name)")
    models = []  # (config, {file in version 1: source}, source folder, what it is)
    for folder, name in zip(folders, names):
        manifest = read_manifest(folder)
        manifest.verify_files(folder, engines=not target_table.get(manifest.target).engines or backend == "native")
        for graph in GRAPH_KINDS:
            cfg = config(manifest, name, graph, backend, instances, threads, max_batch)
            files = _python_files(manifest, folder, graph) if backend == "python" else \
                _graph_files(manifest, folder, graph)
            what = f"{manifest.target} {manifest.precision} graph {'1' if graph == 'dense' else '2'}, {backend} backend"
            models.append((cfg, files, folder, what))
    with model_folders(repo, [cfg.name for cfg, *_ in models], "triton-export", overwrite, log) as out:
        for cfg, files, folder, what in models:
            log(f"  {cfg.name} ({what})")
            model = out.new(cfg.name)
            _write_model(model, cfg, files, folder, backend)
            out.stage(model)
    return names


def _configs(repo: Path) -> list:
    from google.protobuf import text_format

    pb = model_config_pb2()
    out = []
    for path in sorted(Path(repo).glob("*/config.pbtxt")):
        try:
            out.append(text_format.Parse(path.read_text(), pb.ModelConfig()))
        except text_format.ParseError as e:
            raise CmliteError(f"{path}: not a Triton model config ({e}); export the repository again") from None
    return out


def repo_models(repo: Path) -> list[str]:
    """The cmlite models in a repository folder (NAME for each NAME_dense), read from the config files."""
    return [c.parameters["cmlite_name"].string_value for c in _configs(repo)
            if c.parameters["cmlite_graph"].string_value == "dense"]


def backend_library(cfg) -> str:
    """The backend library a model config needs the server to have (its folder under the server's backends/)."""
    if cfg.backend == "python" or not (cfg.backend or cfg.platform):
        return cfg.backend or "python"
    for row in target_table.TARGETS.values():
        if row.triton in (("backend", cfg.backend), ("platform", cfg.platform)):
            return row.triton_library
    return cfg.backend or cfg.platform


def needed_libraries(repo: Path) -> dict[str, list[str]]:
    """backend library -> the cmlite models of the repository that need it."""
    out: dict[str, list[str]] = {}
    for c in _configs(repo):
        if c.parameters["cmlite_graph"].string_value == "dense":
            out.setdefault(backend_library(c), []).append(c.parameters["cmlite_name"].string_value)
    return out
