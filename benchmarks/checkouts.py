"""Running another checkout of cmlite beside this one (`--before` of the benchmarks).

A checkout's folders become the `cmlite` namespace through a shim folder of links (shim/cmlite/runtimes ->
CHECKOUT/runtimes, ...), put first on PYTHONPATH, so `from cmlite import runtimes` and `python -m
cmlite.apps.cli` run that checkout's code; the checkout itself follows on PYTHONPATH for checkouts from before
the namespace, whose modules import each other by their bare names.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

PACKAGES = ("lite", "runtimes", "converters", "calibration", "apps")


def checkout_env(checkout: Path) -> dict:
    """The environment that imports `cmlite` from `checkout`."""
    checkout = Path(checkout).resolve()
    shim = Path(tempfile.mkdtemp(prefix="cmlite_checkout_")) / "cmlite"
    shim.mkdir()
    for name in PACKAGES:
        if (checkout / name).is_dir():
            (shim / name).symlink_to(checkout / name, target_is_directory=True)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(shim.parent), str(checkout)])}
