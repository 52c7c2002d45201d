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
