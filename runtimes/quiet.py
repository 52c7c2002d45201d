"""The native libraries' log lines, kept out of cmlite's output unless asked for (`cmlite -v`).

TensorFlow Lite, absl and oneDNN write straight to file descriptor 2 from C++ ("Created TensorFlow Lite XNNPACK
delegate for CPU", "oneDNN custom operations are on", "All log messages before absl::InitializeLog() ..."):
Python cannot redirect them. `native_logs()` points descriptor 2 at a file for the duration of the native calls
that print them and passes on every line that is not one of those, so real errors still show.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
import tempfile

NOISE = re.compile(r"Created TensorFlow Lite XNNPACK delegate|oneDNN custom operations are on|"
                   r"All log messages before absl::InitializeLog\(\)|TF_ENABLE_ONEDNN_OPTS|"
                   r"^[IW]0000 00:00:|Initialized TensorFlow Lite runtime|^INFO: |"
                   # OpenCV's FFmpeg on every .webm it writes: the tag is remapped and the file is fine
                   r"FFMPEG: tag 0x[0-9a-fA-F]+/'.{4}' is not supported with codec id|FFMPEG: fallback to use tag|"
                   # FFmpeg's own lines when a stream or file does not open: the caller says it in one line
                   r"^\[[^\]]+ @ 0x[0-9a-fA-F]+\] ")


def verbose() -> bool:
    """`cmlite -v` (CMLITE_VERBOSE=1): every log line of every library is shown."""
    return os.environ.get("CMLITE_VERBOSE", "") not in ("", "0")


def quiet_ffmpeg() -> None:
    """FFmpeg's own lines while frames are decoded ("[mjpeg @ 0x...] overread 8" on a truncated file) kept out,
    unless `cmlite -v`: OpenCV reads OPENCV_FFMPEG_LOGLEVEL when it first uses FFmpeg in the process, so this runs
    before any capture or writer opens; a level the user set is left as it is. The caller says what went wrong
    in its own words (a file that ends early simply ends)."""
    if not verbose():
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET


@contextlib.contextmanager
def native_logs():
    """Within the block, lines the native libraries write to stderr are filtered (all shown with -v)."""
    if verbose():
        yield
        return
    fd = 2  # what native code writes to, whatever sys.stderr is (a notebook's, a capture's)
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), fd)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            kept = [line for line in tmp.read().decode(errors="replace").splitlines()
                    if line.strip() and not NOISE.search(line)]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")


@contextlib.contextmanager
def quiet(*loggers: str, python_warnings: bool = False, stdout: bool = False, stderr: bool = False,
          native: bool = False):
    """A library's own chatter kept out of cmlite's output for the block: the named loggers ("" is the root) at
    ERROR, its Python warnings ignored, what it prints to sys.stdout / sys.stderr dropped, its native lines
    filtered (native_logs). The converters and quantizers report their own progress instead."""
    found = [logging.getLogger(name or None) for name in loggers]
    levels = [lg.level for lg in found]
    with contextlib.ExitStack() as stack:
        if native:
            stack.enter_context(native_logs())
        if python_warnings:
            stack.enter_context(warnings_ignored())
        if stderr:
            stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
        if stdout:
            stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
        for lg in found:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, level in zip(found, levels):
                lg.setLevel(level)


@contextlib.contextmanager
def warnings_ignored():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
