"""User-facing errors: each carries one line that names the problem and the fix."""
from __future__ import annotations

import re


class CmliteError(Exception):
    """An error the CLI prints as one line (no traceback)."""


class CheckpointError(CmliteError):
    pass


class ImageError(CmliteError, ValueError):
    pass


class InferenceError(CmliteError):
    """A graph failed on one input (a shape its runtime refuses): that image is skipped, the others go on."""


class SettingsError(CmliteError, ValueError):
    """A setting out of range or unknown (pipeline settings, modes, methods, variants)."""


def error_line(e: Exception, limit: int = 300) -> str:
    """The line of a runtime's (often many-line, C++-prefixed) error that says what went wrong."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    useful = [ln for ln in lines if not re.match(r"^(Exception from \S+|Traceback|File \")", ln)] or lines
    line = useful[0] if useful else type(e).__name__
    if line.endswith(":") and len(useful) > 1:  # "Check ... failed at FILE:LINE:" then what it was
        line = f"{line} {useful[1]}"
    line = re.sub(r"^\[ ?(ONNXRuntimeError|GENERAL_ERROR)[^\]]*\]\s*:?\s*", "", line)
    return line if len(line) <= limit else line[:limit - 3] + "..."
