"""What a media source is and what probing it found: the records that reading and frame selection share."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Union

import av

from fakescope.video.native_log import c_path

NETWORK_TIMEOUT_S = 10.0
"""Seconds to wait for a network source to open, and for each read from it."""

MediaSource = Union[str, Path]
"""A file path, or a URL string (kept as a string: ``Path`` would fold its ``//``)."""


@dataclass(frozen=True)
class MediaInfo:
    """What probing a file found. Width and height are those of the upright (rotation-applied) frames.

    Images have ``fps == 0.0`` (no time axis), ``frame_count == 1`` and a duration of 0 seconds.
    """

    path: MediaSource
    kind: Literal["video", "image"]
    width: int
    height: int
    fps: float
    frame_count: int

    @property
    def duration_s(self) -> float:
        """Declared duration in seconds (0.0 for images and for videos of unknown length)."""
        return self.frame_count / self.fps if self.fps > 0 else 0.0


def estimate_frame_count(info: MediaInfo) -> int:
    """Best available total frame count: the declared one, else the stream's metadata or duration x fps (via PyAV),
    else the number of packets in the video stream. Returns 0 if the file cannot be read."""
    if info.kind == "image":
        return 1
    if info.frame_count > 0:
        return info.frame_count
    try:
        with av.open(c_path(info.path), timeout=NETWORK_TIMEOUT_S) as container:
            stream = container.streams.video[0]
            if stream.frames:
                return int(stream.frames)
            if stream.duration and stream.time_base:
                return max(1, round(float(stream.duration * stream.time_base) * info.fps))
            if container.duration:
                return max(1, round(container.duration / av.time_base * info.fps))
            return sum(1 for packet in container.demux(stream) if packet.size)
    except Exception:  # noqa: BLE001 - FFmpeg errors, a stream without video, a URL that went away
        return 0
