"""User-facing errors: each carries one line that names the problem and the fix."""


class CmliteError(Exception):
    """An error the CLI prints as one line (no traceback)."""


class CheckpointError(CmliteError):
    pass


class ImageError(CmliteError, ValueError):
    pass


class SettingsError(CmliteError, ValueError):
    """A setting out of range or unknown (pipeline settings, modes, methods, variants)."""
