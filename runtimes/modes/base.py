"""What every run mode shares: the `take` it reads images from, how a stream ends, and the runner's API.

    item = run.next(timeout)   # (key, job) in the order taken, done; None when nothing came within timeout
    run.describe(); run.close()

take(timeout) -> (key, image), or None when nothing came in time; it raises what ends the stream (StopIteration,
or the source's own exception). An image may be an exception (it could not be read): its job fails, the stream
goes on. finish(key, job), if given, runs on each done job before next() returns it: the caller's own per-image
work (drawing), in whichever thread the mode finishes images.
"""
from __future__ import annotations

from typing import Callable

from ..errors import InferenceError
from ..pipeline import Job, Segmenter

Take = Callable[[float], "tuple | None"]
Finish = Callable[[object, Job], None]


class Drained(Exception):
    """A runner finished the images it had taken, as asked (drain()): the next mode can start."""


class StreamEnd:
    """The end of a stream, passed down a mode's threads in order: the exception the caller gets."""

    def __init__(self, error: BaseException):
        self.error = error


def job_of(item: tuple) -> tuple[object, Job]:
    """(key, image) -> (key, Job); an image that is an exception (it could not be read) makes a failed job."""
    key, image = item
    return (key, Job(None, error=image)) if isinstance(image, BaseException) else (key, Job(image))


def run_stages(seg: Segmenter, key, job: Job, finish: Finish | None) -> None:
    """Every stage of one image in the calling thread, then finish(); a graph that refuses this image
    (InferenceError) fails its job only, anything else is raised."""
    if job.error is not None:
        return
    try:
        for stage in seg.stages():
            stage(job)
    except InferenceError as e:
        job.error = e
        return
    if finish is not None:
        finish(key, job)


class RunMode:
    """A runner: images from `take` through `seg`, results in the order taken."""
    mode = ""

    def __init__(self, seg: Segmenter, take: Take, finish: Finish | None = None):
        self.seg, self.take, self.finish = seg, take, finish

    def next(self, timeout: float) -> tuple[object, Job] | None:
        """(key, job) of the next image, done; None when none was done within `timeout`. What ends the stream,
        or a stage's failure, is raised here (and again on later calls)."""
        raise NotImplementedError

    def drain(self) -> None:
        """Take no more images: next() returns those already taken, then raises Drained. A mode with nothing in
        flight between calls (sequential) has nothing to drain and never raises Drained."""

    @property
    def in_flight(self) -> bool:
        """Whether images can be between take() and next() (switching away must drain them first)."""
        return True

    @property
    def active(self) -> str:
        """The mode running now."""
        return self.mode

    def describe(self) -> str:
        return self.mode

    def brief(self) -> str:
        """The mode running, in a few words (the camera's panel)."""
        return self.active

    def close(self) -> None:
        pass
