"""Progress for long work: a tqdm bar on a terminal, a plain line now and then elsewhere.

    for x in progress_bar(items, desc="eval", unit="img"): ...
    bar = progress_bar(total=n, desc="bench", unit="step"); bar.update(); bar.set_postfix_str("round 2"); bar.close()

Redirected to a file or a pipe (CI, nohup, `2> log`), a tqdm bar writes a carriage-return line per refresh and
fills the log; there it prints one line every EVERY_S seconds and one at the end.
"""
from __future__ import annotations

import sys
import time

EVERY_S = 10.0


def progress_bar(iterable=None, *, desc: str = "", total: int | None = None, unit: str = "it", disable: bool = False,
             file=None, initial: int = 0, every: float = EVERY_S, **tqdm_kwargs):
    file = file or sys.stderr
    if iterable is not None and total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    if not disable and getattr(file, "isatty", lambda: False)():
        from tqdm import tqdm

        return tqdm(iterable, desc=desc, total=total, unit=unit, file=file, initial=initial, **tqdm_kwargs)
    return LineProgress(iterable, desc, total, unit, file, disable, initial, every)


class LineProgress:
    """What the commands use of a tqdm bar (iteration, update, postfix, write, close), as occasional lines."""

    def __init__(self, iterable, desc: str, total: int | None, unit: str, file, disable: bool, initial: int = 0,
                 every: float = EVERY_S):
        self.iterable, self.desc, self.total, self.unit, self.file = iterable, desc, total, unit, file
        self.disable, self.n, self.every, self.postfix = disable, initial, every, ""
        self.t0 = self._last = time.monotonic()
        self._closed = False

    def __iter__(self):
        try:
            for x in self.iterable:
                yield x
                self.update()
        finally:
            self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _line(self, done: bool = False) -> str:
        elapsed = time.monotonic() - self.t0
        count = f"{self.n}/{self.total}" if self.total else str(self.n)
        pct = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        rate = self.n / elapsed if elapsed > 0 else 0.0
        left = f", {(self.total - self.n) / rate:.0f} s left" if self.total and rate and not done else ""
        post = f" [{self.postfix}]" if self.postfix else ""
        return (f"{self.desc}: {count} {self.unit}{pct} in {elapsed:.0f} s, {rate:.1f} {self.unit}/s{left}{post}")

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if not self.disable and now - self._last >= self.every:
            self._last = now
            print(self._line(), file=self.file, flush=True)

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = s

    def set_postfix(self, values: dict | None = None, refresh: bool = True, **kw) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in {**(values or {}), **kw}.items())

    def close(self) -> None:
        if not self._closed and not self.disable and self.n:
            print(self._line(done=True), file=self.file, flush=True)
        self._closed = True

    @staticmethod
    def write(s: str, file=None) -> None:
        print(s, file=file or sys.stdout, flush=True)
