"""The render pass: re-reads the input and writes it with the predictions drawn on every frame."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2

from ..inference.results import FrameRecord
from ..video import MediaReader, VideoWriter
from .annotate import GREEN, RED, GREY, draw_banner, draw_faces


def verdict_banner(verdict: str, p_fake: float | None) -> tuple[str, tuple[int, int, int]]:
    if p_fake is None:
        return f"fakescope: {verdict.upper()}", GREY
    return f"fakescope: {verdict.upper()} (p_fake {p_fake:.2f})", RED if verdict == "fake" else GREEN


def render_annotated_video(
    source: str | Path,
    frames: list[FrameRecord],
    threshold: float,
    out_path: str | Path,
    banner: tuple[str, tuple[int, int, int]] | None = None,
    on_frame: Callable[[], None] | None = None,
) -> int:
    """Write every frame of ``source`` with the boxes of the latest analysed frame drawn on it; returns frames written.

    Frames between analysed ones (``--every N``) show the most recent prediction.
    """
    by_index = {frame.frame_index: frame for frame in frames}
    current_faces: list = []
    written = 0
    with MediaReader(source) as reader:
        info = reader.info
        # ultrafast: a review copy does not need x264's compression, and it costs less than half the CPU of veryfast.
        with VideoWriter(out_path, info.width, info.height, info.fps, preset="ultrafast") as writer:
            for frame in reader:
                analysed = by_index.get(frame.index)
                if analysed is not None:
                    current_faces = analysed.faces
                image = frame.image
                draw_faces(image, current_faces, threshold)
                if banner is not None:
                    draw_banner(image, *banner)
                writer.write(image)
                written += 1
                if on_frame is not None:
                    on_frame()
    return written


def render_annotated_image(
    image, frame: FrameRecord | None, threshold: float, out_path: str | Path,
    banner: tuple[str, tuple[int, int, int]] | None = None,
) -> Path:
    """Draw the predictions on a still image and save it as JPEG."""
    if frame is not None:
        draw_faces(image, frame.faces, threshold)
    if banner is not None:
        draw_banner(image, *banner)
    out_path = Path(out_path)
    if not cv2.imwrite(str(out_path), image, [cv2.IMWRITE_JPEG_QUALITY, 92]):
        raise OSError(f"could not write {out_path}")
    return out_path
