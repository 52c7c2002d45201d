"""Sequential: every stage of an image in the caller's thread before the next image is taken. The lowest latency,
and the only mode that needs no thread of its own."""
from __future__ import annotations

from ..pipeline import Job
from .base import RunMode, job_of, run_stages


class Sequential(RunMode):
    mode = "sequential"

    def next(self, timeout: float) -> tuple[object, Job] | None:
        item = self.take(timeout)
        if item is None:
            return None
        key, job = job_of(item)
        run_stages(self.seg, key, job, self.finish)
        return key, job

    @property
    def in_flight(self) -> bool:
        return False
