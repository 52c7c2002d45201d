"""The `cmlite` command: parses the arguments and hands them to the command's own module."""
from __future__ import annotations

import argparse
import os
import sys

from cmlite.runtimes.errors import CmliteError

from . import build_engine, convert, data, demo, evaluate, parity, predict, quantize, train
from .camera import camera
from .reports import bench, pick, report
from .serve import triton

COMMANDS = (predict, convert, evaluate, quantize, camera, bench, report, demo, data, train, parity, build_engine,
            triton, pick)


def build_parser() -> argparse.ArgumentParser:
    from cmlite.runtimes import __version__

    parser = argparse.ArgumentParser(prog="cmlite", description="CenterMask-Lite on the edge: convert, run, measure.")
    parser.add_argument("--version", action="version", version=f"cmlite {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="also show the libraries' own log lines (TensorFlow Lite, absl, oneDNN), which are kept "
                             "out otherwise (cmlite -v COMMAND ...)")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    verbose = os.environ.get("CMLITE_VERBOSE")
    if args.verbose or (args.command == "parity" and getattr(args, "stages", False)):
        os.environ["CMLITE_VERBOSE"] = "1"  # runtimes/quiet.py lets every library line through
    try:
        return args.func(args) or 0  # a command may return its exit code (bench: 1 when a row failed)
    except CmliteError as e:
        print(f"cmlite: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cmlite: interrupted", file=sys.stderr)
        return 130
    finally:  # main() called from Python (tests, scripts) leaves the setting as it found it
        if verbose is None:
            os.environ.pop("CMLITE_VERBOSE", None)
        else:
            os.environ["CMLITE_VERBOSE"] = verbose


if __name__ == "__main__":
    sys.exit(main())
