"""System programs some tests need (chromium, xvfb-run): `.ci/run` installs them; elsewhere a test without them
is skipped, saying what to install, except under CI (CMLITE_CI=1), where it fails."""
from __future__ import annotations

import os
import shutil

import pytest


def need(program: str, package: str) -> str:
    path = shutil.which(program)
    if path:
        return path
    message = f"{program} is not installed: apt-get install -y {package} (.ci/run does)"
    if os.environ.get("CMLITE_CI"):
        pytest.fail(message)
    pytest.skip(message)


GSTREAMER_PACKAGES = ("python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 gstreamer1.0-plugins-base "
                      "gstreamer1.0-plugins-good")


def need_gstreamer() -> None:
    """GStreamer and its Python bindings (Debian's packages), as `gst:` sources run them here."""
    from cmlite.runtimes.errors import CmliteError
    from cmlite.runtimes.gst_capture import gst_module

    try:
        gst_module()
    except CmliteError as e:
        message = f"{e} (.ci/run installs {GSTREAMER_PACKAGES})"
        if os.environ.get("CMLITE_CI"):
            pytest.fail(message)
        pytest.skip(message)

