"""Choosing which decoded frames to analyse."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal

from fakescope.video.info import MediaInfo, estimate_frame_count

# Slack for float timestamps such as 3 / 30 * 10 == 0.9999999999999999.
_TIME_EPSILON = 1e-6


def _ordinal(number: int) -> str:
    if 10 <= number % 100 <= 20:
        suffix = "th"
    else:
        suffix = {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


@dataclass(frozen=True)
class FrameSelection:
    """Which frames to analyse.

    - ``all`` (default): every frame.
    - ``every`` (value N >= 1): frames 0, N, 2N, ...
    - ``count`` (value N >= 1): N frames evenly spaced over the video, each at the middle of one of N equal
      stretches (frame ``floor((k + 0.5) * total / N)``), which avoids the often black first/last frames and
      tolerates a declared count that slightly overshoots. All frames if N >= total; frame 0 for images.
      If the declared frame count is unknown (0), the total is estimated from the stream's duration x fps
      (or, failing that, by counting its packets); if even that fails, the first N frames are taken.
    - ``fps`` (value F > 0): the first frame at or after each multiple of 1/F seconds; every frame if F is at least
      the source frame rate (and for images).

    A truncated file simply yields fewer frames.
    """

    mode: Literal["all", "every", "count", "fps"] = "all"
    value: float | None = None

    def __post_init__(self) -> None:
        if self.mode == "all":
            if self.value is not None:
                raise ValueError("FrameSelection mode 'all' takes no value")
        elif self.mode in ("every", "count"):
            if not isinstance(self.value, (int, float)) or self.value != int(self.value) or self.value < 1:
                raise ValueError(f"FrameSelection mode {self.mode!r} needs a whole number >= 1, got {self.value!r}")
        elif self.mode == "fps":
            if not isinstance(self.value, (int, float)) or not math.isfinite(self.value) or self.value <= 0:
                raise ValueError(f"FrameSelection mode 'fps' needs a frame rate > 0, got {self.value!r}")
        else:
            raise ValueError(f"unknown FrameSelection mode {self.mode!r}; expected all, every, count or fps")

    @classmethod
    def from_options(
        cls, every: int | None = None, frames: int | None = None, fps: float | None = None
    ) -> FrameSelection:
        """Build a selection from command-line style options, of which at most one may be given."""
        given = {name: value for name, value in (("every", every), ("frames", frames), ("fps", fps)) if value is not None}
        if len(given) > 1:
            raise ValueError(f"choose at most one of every, frames and fps (got {', '.join(given)})")
        if every is not None:
            if isinstance(every, bool) or not isinstance(every, int) or every < 1:
                raise ValueError(f"every must be a whole number >= 1, got {every!r}")
            return cls("every", every)
        if frames is not None:
            if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
                raise ValueError(f"frames must be a whole number >= 1, got {frames!r}")
            return cls("count", frames)
        if fps is not None:
            if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps) or fps <= 0:
                raise ValueError(f"fps must be a number > 0, got {fps!r}")
            return cls("fps", float(fps))
        return cls()

    def selector(self, info: MediaInfo) -> Callable[[int, float], bool]:
        """A predicate ``(frame index, time_s) -> analyse?`` for one pass over ``info``'s frames.

        The 'fps' predicate is stateful: call it once per decoded frame, in order, and make a new one per pass.
        """
        if self.mode == "every":
            step = int(self.value)  # type: ignore[arg-type]
            return lambda index, time_s: index % step == 0
        if self.mode == "count":
            return self._count_selector(info)
        if self.mode == "fps":
            return self._fps_selector(info)
        return lambda index, time_s: True

    def _count_selector(self, info: MediaInfo) -> Callable[[int, float], bool]:
        wanted = int(self.value)  # type: ignore[arg-type]
        total = estimate_frame_count(info)
        if total <= 0:
            return lambda index, time_s: index < wanted
        if wanted >= total:
            return lambda index, time_s: True
        chosen = frozenset(math.floor((k + 0.5) * total / wanted) for k in range(wanted))
        return lambda index, time_s: index in chosen

    def _fps_selector(self, info: MediaInfo) -> Callable[[int, float], bool]:
        rate = float(self.value)  # type: ignore[arg-type]
        if info.kind == "image" or rate >= info.fps:
            return lambda index, time_s: True
        next_tick = 0  # index of the next multiple of 1/rate seconds still to be covered

        def select(index: int, time_s: float) -> bool:
            nonlocal next_tick
            ticks = time_s * rate + _TIME_EPSILON
            if ticks < next_tick:
                return False
            next_tick = math.floor(ticks) + 1
            return True

        return select

    def describe(self) -> str:
        """Human-readable summary, e.g. 'every 5th frame'."""
        if self.mode == "every":
            step = int(self.value)  # type: ignore[arg-type]
            return "every frame" if step == 1 else f"every {_ordinal(step)} frame"
        if self.mode == "count":
            count = int(self.value)  # type: ignore[arg-type]
            return f"{count} evenly spaced frame{'s' if count != 1 else ''}"
        if self.mode == "fps":
            return f"{float(self.value)} frames per second"  # type: ignore[arg-type]
        return "every frame"
