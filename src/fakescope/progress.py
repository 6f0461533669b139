"""Progress for long scans: a bar on a terminal, an occasional plain line in logs and CI, nothing when quiet.

A tqdm bar redraws itself with ``\\r`` many times a second; where standard error is a file or a pipe, those redraws
become hundreds of junk lines. There a line is printed at most every ``line_interval()`` seconds instead.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Protocol, TextIO

from tqdm.auto import tqdm

DEFAULT_LINE_INTERVAL_S = 30.0
"""Seconds between progress lines when standard error is not a terminal (``FAKESCOPE_PROGRESS_INTERVAL``)."""


class Progress(Protocol):
    def update(self, n: int = 1) -> None: ...

    def close(self) -> None: ...


class NoProgress:
    """Progress that shows nothing (``--quiet``)."""

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def line_interval() -> float:
    """Seconds between progress lines off a terminal: ``$FAKESCOPE_PROGRESS_INTERVAL`` or the default."""
    try:
        value = float(os.environ.get("FAKESCOPE_PROGRESS_INTERVAL", DEFAULT_LINE_INTERVAL_S))
    except ValueError:
        return DEFAULT_LINE_INTERVAL_S
    return value if value >= 0 else DEFAULT_LINE_INTERVAL_S


class _LineClock:
    """When the last progress line was printed, shared by every bar, so many short bars don't each print."""

    last = time.monotonic()


def reset_line_clock() -> None:
    """Start the interval afresh (at the start of a run): a run shorter than the interval prints no progress line."""
    _LineClock.last = time.monotonic()


class LineProgress:
    """Prints ``desc: 120/390 frames (31%)`` on its own line, at most once per interval across all bars."""

    def __init__(self, total: int | None, desc: str, unit: str, stream: TextIO | None = None,
                 interval: float | None = None) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.count = 0
        self.stream = stream
        self.interval = line_interval() if interval is None else interval

    def update(self, n: int = 1) -> None:
        self.count += n
        now = time.monotonic()
        if now - _LineClock.last < self.interval:
            return
        _LineClock.last = now
        done = f"{self.count}/{self.total}" if self.total else f"{self.count}"
        percent = f" ({100 * self.count // self.total}%)" if self.total else ""
        stream = self.stream or sys.stderr
        try:
            plural = "" if (self.total or self.count) == 1 else "s"
            print(f"{self.desc}: {done} {self.unit}{plural}{percent}", file=stream, flush=True)
        except (OSError, ValueError):
            pass

    def close(self) -> None:
        pass


def progress(total: int | None, desc: str, unit: str, enabled: bool) -> Progress:
    """A progress display for ``total`` units (None: unknown): a tqdm bar when standard error is a terminal,
    occasional lines when it is not, nothing when ``enabled`` is false."""
    if not enabled:
        return NoProgress()
    stream = sys.stderr
    if getattr(stream, "isatty", lambda: False)():
        return tqdm(total=total, desc=desc, unit=unit, leave=False, file=stream)
    return LineProgress(total, desc, unit)


def print_line(display: Progress, text: str, stream: TextIO) -> None:
    """Print ``text`` on ``stream`` without breaking ``display``: above its bar when it is one."""
    if isinstance(display, tqdm):
        display.write(text, file=stream)
        stream.flush()
    else:
        print(text, file=stream, flush=True)
