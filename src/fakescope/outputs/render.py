"""The render pass: re-reads the input and writes it with the predictions drawn on every frame.

One decode feeds every visual output: ``annotated.mp4``, ``heatmap.mp4`` (with ``--heatmap``), the heatmap PNGs of
each track's most fake frames, and the small thumbnails of those frames that the HTML report inlines.
"""
from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..atomic import atomic_open
from ..faces import crop_face, square_crop_box
from ..results import FaceRecord, FrameRecord
from ..video import MediaReader, VideoWriter
from .annotate import GREEN, GREY, RED, draw_banner, draw_faces
from .heatmap_overlay import blend_cam, overlay_cam_on_frame

THUMBNAIL_SIZE = 200
HEATMAP_CROP_SIZE = 224
HIGHLIGHTS_PER_TRACK = 3

Banner = tuple[str, tuple[int, int, int]]


def verdict_banner(verdict: str, p_fake: float | None) -> Banner:
    if p_fake is None:
        return f"fakescope: {verdict.upper()}", GREY
    return f"fakescope: {verdict.upper()} (p_fake {p_fake:.2f})", RED if verdict == "fake" else GREEN


@dataclass
class Highlight:
    """One of a track's most fake frames, with what the render pass made of it."""

    track_id: int
    frame_index: int
    time_s: float
    p_fake: float | None
    thumbnail: bytes = b""  # JPEG: the face's square region of the annotated frame
    heatmap_thumbnail: bytes = b""  # JPEG: the same region with the CAM (only with heatmaps)
    heatmap_png: Path | None = None
    crop_png: Path | None = None


@dataclass
class RenderOutput:
    frames_written: int
    highlights: list[Highlight]

    @property
    def heatmap_pngs(self) -> list[Path]:
        return [path for h in self.highlights for path in (h.heatmap_png, h.crop_png) if path is not None]


def most_fake_faces(frames: list[FrameRecord], per_track: int = HIGHLIGHTS_PER_TRACK) -> list[FaceRecord]:
    """Each track's ``per_track`` faces with the highest p_fake (earliest first among equals)."""
    by_track: dict[int, list[FaceRecord]] = {}
    for frame in frames:
        for face in frame.faces:
            if face.p_fake is not None:
                by_track.setdefault(face.track_id, []).append(face)
    chosen = []
    for track_id in sorted(by_track):
        ranked = sorted(by_track[track_id], key=lambda face: (-face.p_fake, face.frame_index))
        chosen.extend(ranked[:per_track])
    return chosen


def _encode_jpeg(image: np.ndarray, quality: int = 82) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise OSError("could not encode a JPEG thumbnail")
    return data.tobytes()


def write_image(image: np.ndarray, path: Path, params: list[int] | None = None) -> Path:
    """Write ``image`` (format by suffix) atomically; OSError with the file system's reason when it cannot.

    Encoded in memory and written by Python, so any file name works (OpenCV's own writer crashes on names that are
    not valid UTF-8) and a full disk raises ENOSPC instead of a bare False."""
    ok, data = cv2.imencode(path.suffix or ".png", image, params or [])
    if not ok:
        raise ValueError(f"OpenCV could not encode an image as {path.suffix}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as handle:
        handle.write(data.tobytes())
    return path


def _region_thumbnail(image: np.ndarray, face: FaceRecord, margin: float) -> bytes:
    """The face's square region of ``image`` (clipped to the frame, with room for the box's label),
    THUMBNAIL_SIZE on its longest side."""
    height, width = image.shape[:2]
    x1, y1, x2, y2 = square_crop_box(face.box, margin * 1.2)
    left, top = max(int(x1), 0), max(int(y1), 0)
    right, bottom = min(int(np.ceil(x2)), width), min(int(np.ceil(y2)), height)
    region = image[top:bottom, left:right] if right > left and bottom > top else image
    scale = THUMBNAIL_SIZE / max(region.shape[:2])
    size = (max(1, round(region.shape[1] * scale)), max(1, round(region.shape[0] * scale)))
    return _encode_jpeg(cv2.resize(region, size, interpolation=cv2.INTER_AREA))


class FrameRenderer:
    """Draws one frame's outputs: the annotated image, its heatmap version, and the highlights that fall on it."""

    def __init__(
        self,
        frames: list[FrameRecord],
        threshold: float,
        banner: Banner | None = None,
        margin: float = 1.3,
        heatmaps: dict[tuple[int, int], np.ndarray] | None = None,
        heatmap_dir: Path | None = None,
    ) -> None:
        self.threshold = threshold
        self.banner = banner
        self.margin = margin
        self.heatmaps = heatmaps
        self.heatmap_dir = heatmap_dir
        if heatmap_dir is not None and heatmap_dir.is_dir():
            for stale in heatmap_dir.glob("track*_frame*.png"):  # from an earlier scan into the same folder
                stale.unlink()
        self.by_index = {frame.frame_index: frame for frame in frames}
        self.highlights: dict[int, list[Highlight]] = {}
        for face in most_fake_faces(frames):
            self.highlights.setdefault(face.frame_index, []).append(
                Highlight(face.track_id, face.frame_index, face.time_s, face.p_fake)
            )
        self.current_faces: list[FaceRecord] = []
        self.current_cams: dict[int, np.ndarray] = {}

    @property
    def all_highlights(self) -> list[Highlight]:
        return sorted((h for hs in self.highlights.values() for h in hs), key=lambda h: (h.track_id, -(h.p_fake or 0)))

    def render(self, frame_index: int, image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(annotated, heatmap or None) for the frame; ``image`` (BGR) is drawn on in place."""
        analysed = self.by_index.get(frame_index)
        if analysed is not None:
            self.current_faces = analysed.faces
            if self.heatmaps is not None:
                self.current_cams = {
                    face.track_id: self.heatmaps[(frame_index, face.track_id)]
                    for face in analysed.faces if (frame_index, face.track_id) in self.heatmaps
                }
        highlights = self.highlights.get(frame_index, []) if analysed is not None else []
        faces_by_track = {face.track_id: face for face in self.current_faces}
        raw_crops = {
            h.track_id: cv2.cvtColor(crop_face(image, faces_by_track[h.track_id].box, self.margin,
                                               HEATMAP_CROP_SIZE), cv2.COLOR_RGB2BGR)
            for h in highlights if self.heatmaps is not None and h.track_id in self.current_cams
        }
        heatmap_image = None
        if self.heatmaps is not None:
            heatmap_image = image.copy()
            for face in self.current_faces:
                cam = self.current_cams.get(face.track_id)
                if cam is not None:
                    overlay_cam_on_frame(heatmap_image, cam.astype(np.float32), face.box, self.margin)
        pictures = [image] if heatmap_image is None else [image, heatmap_image]
        for picture in pictures:
            draw_faces(picture, self.current_faces, self.threshold)
        # Thumbnails before the banner, which would otherwise cover a corner of faces near the top of the frame.
        for highlight in highlights:
            face = faces_by_track[highlight.track_id]
            highlight.thumbnail = _region_thumbnail(image, face, self.margin)
            if heatmap_image is not None and highlight.track_id in self.current_cams:
                highlight.heatmap_thumbnail = _region_thumbnail(heatmap_image, face, self.margin)
        if self.banner is not None:
            for picture in pictures:
                draw_banner(picture, *self.banner)
        if heatmap_image is not None:
            for highlight in highlights:
                if highlight.track_id in raw_crops:
                    self._save_heatmap_pngs(highlight, heatmap_image, raw_crops[highlight.track_id])
        return image, heatmap_image

    def _save_heatmap_pngs(self, highlight: Highlight, heatmap_image: np.ndarray, crop: np.ndarray) -> None:
        blend_cam(crop, self.current_cams[highlight.track_id].astype(np.float32))
        if self.heatmap_dir is not None:
            stem = f"track{highlight.track_id}_frame{highlight.frame_index}"
            highlight.heatmap_png = write_image(heatmap_image, self.heatmap_dir / f"{stem}.png")
            highlight.crop_png = write_image(crop, self.heatmap_dir / f"{stem}_crop.png")


def render_video(
    source: str | Path,
    renderer: FrameRenderer,
    annotated_path: str | Path | None,
    heatmap_path: str | Path | None = None,
    on_frame: Callable[[], None] | None = None,
) -> RenderOutput:
    """One decode of ``source``, written to ``annotated_path`` and/or ``heatmap_path`` (either may be None).

    Frames between analysed ones (``--every N``) show the most recent prediction and heatmap.
    """
    written = 0
    with MediaReader(source) as reader, ExitStack() as writers:
        info = reader.info
        # ultrafast: a review copy does not need x264's compression, and it costs less than half the CPU of veryfast.
        outputs = [
            writers.enter_context(VideoWriter(path, info.width, info.height, info.fps, preset="ultrafast"))
            if path is not None else None
            for path in (annotated_path, heatmap_path)
        ]
        for frame in reader:
            annotated, heatmap = renderer.render(frame.index, frame.image)
            for writer, image in zip(outputs, (annotated, heatmap)):
                if writer is not None and image is not None:
                    writer.write(image)
            written += 1
            if on_frame is not None:
                on_frame()
    return RenderOutput(written, renderer.all_highlights)


def render_still(
    image: np.ndarray,
    renderer: FrameRenderer,
    frame_index: int,
    annotated_path: Path | None,
    heatmap_path: Path | None = None,
) -> RenderOutput:
    """The image counterpart of ``render_video``: ``annotated.jpg`` and/or ``heatmap.jpg``."""
    annotated, heatmap = renderer.render(frame_index, image)
    for path, picture in ((annotated_path, annotated), (heatmap_path, heatmap)):
        if path is not None and picture is not None:
            write_image(picture, Path(path), [cv2.IMWRITE_JPEG_QUALITY, 92])
    return RenderOutput(1, renderer.all_highlights)
