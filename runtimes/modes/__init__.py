"""Many images through one Segmenter: one at a time, consecutive images overlapped, on lanes, or whichever is faster.

    run = runner(seg, take, mode="auto", finish=draw)   # take(timeout) -> (key, image) | None; raises at the end
    item = run.next(0.25)                               # (key, job) in the order taken; None: nothing yet
    for key, job in stream(seg, [(name, image_or_reader), ...]):   # the same over an iterable

One file per mode, on base.py's RunMode:
- sequential.py: every stage of an image in the caller's thread before the next image is taken.
- overlap.py: consecutive images' stages at once in two stage threads, the graphs one at a time in a graph thread.
- throughput.py: lanes, each a replica of the model with a share of the threads, every one running all the
  stages of its own image; the most images per second, a single image's latency higher.
- auto.py: the modes above measured in interleaved trials (frames over seconds), the fastest kept, ties to the
  lower latency; remembered per device, model, input and source kind (memory.py) when given a Memory.

Results are Segmenter.predict()'s, image by image, in the order taken, in every mode; nothing is lost at the end
of a stream or when auto switches (the images in flight are finished first).
"""
from __future__ import annotations

from typing import Iterable, Iterator

from ..errors import ImageError, SettingsError
from ..pipeline import Job, Segmenter
from .auto import FIXED, Auto
from .base import Finish, RunMode, Take
from .memory import Memory
from .throughput import can_replicate

MODES = ("auto", "overlap", "sequential", "throughput")

__all__ = ["MODES", "Auto", "Memory", "RunMode", "can_replicate", "runner", "stream"]


def runner(seg: Segmenter, take: Take, mode: str = "auto", finish: Finish | None = None, prepare: bool = False,
           memory: Memory | None = None, retune: bool = False) -> RunMode:
    """prepare: a long run (the camera): auto makes everything its trials need before the first image. memory,
    retune: auto's choice recalled and stored (auto.py)."""
    if mode not in MODES:
        raise SettingsError(f"unknown mode {mode!r}: one of {', '.join(MODES)}")
    if mode == "auto":
        return Auto(seg, take, finish, prepare=prepare, memory=memory, retune=retune)
    return FIXED[mode](seg, take, finish)


def stream(seg: Segmenter, items: Iterable[tuple[object, object]], mode: str = "auto",
           finish: Finish | None = None) -> Iterator[tuple[object, Job]]:
    """(key, image) pairs -> (key, job) pairs, in order. An image may be a callable that returns one (read in the
    front thread when overlapped, so reading overlaps too); one that raises ImageError gives a job with that
    `error` and no instances, and the stream goes on, as does one a graph refuses (InferenceError). Any other failure
    stops the stream with its exception."""
    it = iter(items)

    def take(_timeout):
        key, image = next(it)
        if callable(image):
            try:
                image = image()
            except ImageError as e:
                image = e
        return key, image

    run = runner(seg, take, mode, finish)
    try:
        while True:
            try:
                item = run.next(1.0)
            except StopIteration:
                return
            if item is not None:
                yield item
    finally:
        run.close()
