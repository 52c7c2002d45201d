"""Python packages a device's system provides (Debian's python3-gi, Raspberry Pi OS's python3-picamera2) but pip
does not: a venv made without --system-site-packages does not see them, so their folder is added last on the path
when they are asked for (nothing of the venv is shadowed)."""
from __future__ import annotations

import importlib
import os
import sys

from .errors import CmliteError

SYSTEM_SITE = "/usr/lib/python3/dist-packages"  # Debian, Ubuntu, Raspberry Pi OS, JetPack


def system_import(name: str, what: str, install: str):
    """`import name`, from this environment or the system's packages; one line naming the install otherwise."""
    try:
        return importlib.import_module(name)
    except ImportError:
        pass
    if not os.path.isdir(os.path.join(SYSTEM_SITE, name)):
        raise CmliteError(f"{what} needs the {name} package: {install}") from None
    if SYSTEM_SITE not in sys.path:
        sys.path.append(SYSTEM_SITE)
    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise CmliteError(f"{what}: {SYSTEM_SITE}/{name} is not for this Python ({e}): make the venv with the "
                          f"system's python3 -m venv --system-site-packages") from None
