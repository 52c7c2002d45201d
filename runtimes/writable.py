"""Whether a place takes new files, asked before the work starts rather than learnt when it is written."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import CmliteError


def check_writable(folder: str | Path, what: str) -> None:
    """`folder`, or the nearest of its parents that exists (it will be made), must take a new file: a read-only
    file system, a folder without write permission or a full disk is refused in one line naming `what`. A probe
    file is made and removed, since permission bits say nothing for root and nothing of a read-only mount."""
    asked = folder = Path(folder).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise CmliteError(f"{what}: {folder} is a file, not a folder; give a path in a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".cmlite-probe-", dir=folder)
    except OSError as e:
        if asked != folder:  # the folder named does not exist, and cannot be made where it would go
            raise CmliteError(f"{what}: folder {asked} does not exist and cannot be made: cannot write in {folder} "
                              f"({e.strerror or e}); give a writable place (e.g. under {Path.home()})") from None
        raise CmliteError(f"{what}: cannot write in {folder} ({e.strerror or e}); give a writable place "
                          f"(e.g. under {Path.home()})") from None
    os.close(fd)
    os.unlink(probe)
