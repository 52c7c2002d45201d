"""`cmlite build-engine`: TensorRT engines for a tensorrt-<precision>/ folder, on the device that runs them."""
from __future__ import annotations

from pathlib import Path


def cmd_build_engine(args) -> None:
    from cmlite.converters.tensorrt_engine import BuildSettings, build_engines, check_settings, engine_shapes
    from cmlite.runtimes.manifest import read_manifest

    settings = BuildSettings(workspace_mb=args.workspace, dla_core=args.dla,
                             timing_cache=Path(args.timing_cache) if args.timing_cache else None)
    folder = Path(args.folder)
    if args.trtexec:  # no TensorRT needed: print the equivalent command lines
        from cmlite.converters.tensorrt_export import trtexec_commands

        manifest = read_manifest(folder)
        check_settings(manifest, folder, settings)
        profiles = engine_shapes(manifest, args.dla is not None)["profiles"]
        for line in trtexec_commands(folder, manifest, profiles, args.workspace, args.dla, args.timing_cache):
            print(line)
        print(f"# then record them in the manifest: cmlite build-engine {folder} --adopt"
              + (f" --dla {args.dla}" if args.dla is not None else ""))
        return
    build_engines(folder, settings, adopt=args.adopt)


def add_parser(sub) -> None:
    p = sub.add_parser("build-engine", help="build the TensorRT engines of a tensorrt-* folder on this device",
                       description="Run on the Jetson / GPU machine: builds FOLDER/dense.engine and masks.engine "
                                   "with TensorRT's Python API from the folder's ONNX graphs and profiles, and "
                                   "records them in its manifest. The precision is the folder's (strongly typed "
                                   "graphs).")
    p.add_argument("folder", help="a folder from `cmlite convert/quantize --targets tensorrt`")
    p.add_argument("--workspace", type=int, default=1024, metavar="MB",
                   help="the builder's scratch memory limit in MB (default 1024)")
    p.add_argument("--dla", type=int, metavar="CORE", help="build for this DLA core (Xavier, Orin NX/AGX), GPU "
                   "fallback for what the DLA cannot run; FP16/INT8 folders only, fixed shapes (default: the GPU)")
    p.add_argument("--timing-cache", metavar="FILE", help="TensorRT timing cache to read and update: later builds "
                   "on the same device skip the kernel timing (default: none)")
    p.add_argument("--trtexec", action="store_true", help="print the equivalent trtexec command lines instead "
                   "of building (no TensorRT needed)")
    p.add_argument("--adopt", action="store_true", help="do not build: check and record dense.engine and "
                   "masks.engine already in the folder (built with trtexec) in its manifest")
    p.set_defaults(func=cmd_build_engine)
