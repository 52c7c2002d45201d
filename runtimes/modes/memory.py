"""Auto's choices remembered: which mode won on this device, for this model, input size and kind of source, so
the next run starts in it without trial frames.

    memory = Memory({"cpu": ..., "threads": 2, "model": ..., "input": ..., "source": "video"})
    memory.recall()        # the record stored under this key (mode, rates, how it was measured), or None
    memory.store(record)

One small JSON file in the user's cache (CMLITE_CACHE, else $XDG_CACHE_HOME/cmlite, else ~/.cache/cmlite),
written whole and renamed in, so a killed run never leaves half a file; a file that cannot be read or written
costs the memory only, never the run (`--retune` measures again).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

FILE = "auto-modes.json"
SCHEMA = "cmlite.auto-modes/1"


def cache_dir() -> Path:
    """cmlite's folder in the user's cache."""
    if os.environ.get("CMLITE_CACHE"):
        return Path(os.environ["CMLITE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cmlite"


class Memory:
    def __init__(self, key: dict, path: Path | None = None):
        self.key = key
        self.path = path or cache_dir() / FILE
        self.id = json.dumps(key, sort_keys=True)
        self.error: str | None = None  # why the last store failed (the run goes on)

    def _read(self) -> dict:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data.get("choices", {}) if isinstance(data, dict) and data.get("schema") == SCHEMA else {}

    def recall(self) -> dict | None:
        record = self._read().get(self.id)
        return record if isinstance(record, dict) and isinstance(record.get("mode"), str) else None

    def store(self, record: dict) -> bool:
        choices = self._read()
        choices[self.id] = {**record, "key": self.key}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{FILE}.")
            with os.fdopen(fd, "w") as f:
                json.dump({"schema": SCHEMA, "choices": choices}, f, indent=1)
            os.replace(tmp, self.path)
        except OSError as e:
            self.error = f"cannot remember auto's choice in {self.path} ({e.strerror or e})"
            try:
                os.unlink(tmp)
            except (OSError, UnboundLocalError):
                pass
            return False
        return True
