"""Files written whole or not at all."""
from __future__ import annotations

import json
import os
from pathlib import Path


def write_text_atomic(path: Path, text: str) -> None:
    """Write to a hidden temporary beside `path`, then rename it over: readers see the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json_atomic(path: Path, obj, indent: int | None = None) -> None:
    write_text_atomic(path, json.dumps(obj, indent=indent))


def check_file_path(text: str | None, flag: str, example: str = "out.json") -> Path | None:
    """An output file named on the command line, checked before the work starts (not when it is written): not a
    folder, and its folder (or the nearest one that exists) takes a new file."""
    if not text:
        return None
    from cmlite.runtimes.errors import CmliteError
    from cmlite.runtimes.writable import check_writable

    path = Path(text)
    if path.is_dir():
        raise CmliteError(f"{flag} {path} is a folder: give a file name in it, e.g. {path / example}")
    check_writable(path.parent, f"{flag} {path}")
    return path
