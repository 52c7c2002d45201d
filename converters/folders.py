"""Output folders that a failed or interrupted run does not leave behind."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from runtimes.errors import CmliteError


def check_dir_path(path: str | Path, flag: str = "--out") -> Path:
    """A path that is or may become a folder; a file there is refused with one line."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise CmliteError(f"{flag} {path} is a file, not a folder: give a folder path (or remove the file)")
    return path


@contextmanager
def output_dir(path: str | Path, flag: str = "--out"):
    """Create the folder (and missing parents) for the block; if the block fails, remove the folders it created
    that are still empty, so a failed run leaves no empty folders behind."""
    path = check_dir_path(path, flag)
    created, p = [], path
    while not p.exists():
        created.append(p)  # deepest first
        p = p.parent
    path.mkdir(parents=True, exist_ok=True)
    try:
        yield path
    except BaseException:
        for d in created:
            try:
                d.rmdir()  # only an empty folder
            except OSError:
                break
        raise


def refuse_to_replace(out_dir: Path, names: list[str], overwrite: bool, command: str) -> list[Path]:
    """The model folders of `names` already in out_dir: refused with one line naming --overwrite (as `data synth`
    refuses an existing dataset), or, with overwrite, returned to be replaced once the new ones are complete."""
    existing = [Path(out_dir) / n for n in names if (Path(out_dir) / n).exists()]
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise CmliteError(f"{existing[0]} exists{more}: give --overwrite to replace it ({command} writes the new "
                          f"folders first and replaces the old ones only when all are complete), or another --out")
    return existing
