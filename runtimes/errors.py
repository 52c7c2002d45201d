"""User-facing errors: each carries one line that names the problem and the fix."""


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
