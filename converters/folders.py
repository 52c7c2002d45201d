"""Output folders that a failed or interrupted run does not leave behind: the one way `convert` and `quantize`
write model folders (`ModelFolders`), and the manifest entry of a written graph (`graph_spec`).

A run builds its folders in a hidden staging folder inside --out, `.cmlite-<command>-<pid>-<start>-<random>`, and
renames them into place only when all are complete. An exception or Ctrl-C removes the staging folder at once; a
run killed outright (SIGKILL, power loss) leaves it behind, and the next run in that --out removes it: its owner,
named by pid and process start time, is gone. A folder the killed run had moved aside to replace it (--overwrite)
is put back first when nothing took its place."""
from __future__ import annotations

import os
import secrets
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path

from cmlite.runtimes.errors import CmliteError
from cmlite.runtimes.manifest import GraphSpec, sha256


def check_dir_path(path: str | Path, flag: str = "--out") -> Path:
    """A path that is or may become a folder, where new files can be written; a file there, or a place that
    takes no new files (read-only, no permission), is refused with one line."""
    from cmlite.runtimes.writable import check_writable

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise CmliteError(f"{flag} {path} is a file, not a folder: give a folder path (or remove the file)")
    check_writable(path, f"{flag} {path}")
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


STAGING_PREFIX = ".cmlite-"
OLD_SUFFIX = ".old"  # a folder being replaced waits in the staging folder under this name


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), so a reused pid is not taken for the owner;
    '0' where /proc is not there."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "0"


def _owner_alive(name: str) -> bool:
    """Whether the run that made staging folder `name` is still running."""
    parts = name[len(STAGING_PREFIX):].split("-")
    try:
        pid, start = int(parts[1]), parts[2]
    except (IndexError, ValueError):
        return False  # not one of ours by name: made by a cmlite before owners were recorded
    if start != "0" and Path("/proc").is_dir():
        return _start_time(pid) == start
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _restore_replaced(work: Path, out_dir: Path, log) -> None:
    """Folders a run moved aside to replace go back where nothing took their place."""
    for old in sorted(work.glob(f"*{OLD_SUFFIX}")):
        final = out_dir / old.name[:-len(OLD_SUFFIX)]
        if old.is_dir() and not final.exists():
            old.rename(final)
            log(f"  restored {final} (a run stopped while replacing it)")


def sweep_stale(out_dir: Path, log=print) -> None:
    """Remove the staging folders of runs that were killed (their owner is gone) from out_dir."""
    if not out_dir.is_dir():
        return
    for work in sorted(out_dir.glob(f"{STAGING_PREFIX}*")):
        if not work.is_dir() or work.is_symlink() or _owner_alive(work.name):
            continue
        _restore_replaced(work, out_dir, log)
        shutil.rmtree(work, ignore_errors=True)
        log(f"removed {work.name} in {out_dir}: the staging folder of a run that was killed")


@contextmanager
def staging_dir(out_dir: Path, command: str, log=print):
    """A hidden folder in out_dir (the same file system, so the finished folders rename into place), removed
    when the block ends however it ends; stale ones of killed runs are swept first."""
    sweep_stale(out_dir, log)
    pid = os.getpid()
    work = out_dir / f"{STAGING_PREFIX}{command}-{pid}-{_start_time(pid)}-{secrets.token_hex(4)}"
    work.mkdir()
    try:
        yield work
    finally:
        try:
            _restore_replaced(work, out_dir, log)
        finally:
            shutil.rmtree(work, ignore_errors=True)


def command_line() -> str | None:
    """The `cmlite ...` command running now, for a manifest's provenance (None when called from Python)."""
    return " ".join(["cmlite", *sys.argv[1:]]) if sys.argv[0].endswith("cmlite") else None


def graph_spec(folder: Path, file: str, io, batch: int | None = None, aux: list[str] = ()) -> GraphSpec:
    """The manifest entry of a graph written to folder/file: io(path) -> (inputs, outputs); aux: other files it
    needs in the folder (an IR's .bin), hashed too."""
    path = Path(folder) / file
    inputs, outputs = io(path)
    return GraphSpec(file=file, sha256=sha256(path), bytes=path.stat().st_size, inputs=inputs, outputs=outputs,
                     batch=batch, aux_files={a: sha256(Path(folder) / a) for a in aux})


class ModelFolders:
    """Model folders written whole or not at all. Each is built in the staging folder (`new`), handed back when
    complete (`stage`) and renamed into `out_dir` only when every one of the run is: a failure before that leaves
    `out_dir` as it was, byte for byte. Folders of the same names are refused unless overwrite."""

    def __init__(self, out_dir: Path, replaced: list[Path], work: Path, log):
        self.out_dir, self.replaced, self.work, self.log = out_dir, replaced, work, log
        self.staged: list[Path] = []
        self.written: list[Path] = []

    def new(self, name: str) -> Path:
        """An empty folder for model `name`, in the staging folder."""
        folder = self.work / name
        folder.mkdir(parents=True)
        return folder

    def stage(self, folder: Path) -> None:
        self.staged.append(folder)

    def commit(self) -> list[Path]:
        for folder in self.staged:
            final = self.out_dir / folder.name
            if final.exists():
                final.rename(self.work / f"{folder.name}{OLD_SUFFIX}")
            folder.rename(final)
            self.written.append(final)
            self.log(f"  -> {final}" + (" (replaced the folder that was there)" if final in self.replaced else ""))
        return self.written


@contextmanager
def model_folders(out_dir: str | Path, names: list[str], command: str, overwrite: bool = False, log=print):
    """`with model_folders(out, ["onnx-fp32"], "convert") as folders:` build each in folders.new(name), then
    folders.stage(it); all are committed when the block ends without an error."""
    out_dir = check_dir_path(out_dir)
    replaced = refuse_to_replace(out_dir, names, overwrite, command)
    with output_dir(out_dir), staging_dir(out_dir, command, log) as work:
        folders = ModelFolders(out_dir, replaced, Path(work), log)
        yield folders
        folders.commit()
