"""Reading videos and images: probing, streaming frames in a background thread, and finding media files."""
from __future__ import annotations

import math
import os
import queue
import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Literal, Sequence

import av
import av.logging
import cv2
import numpy as np

if TYPE_CHECKING:
    from fakescope.video.sampling import FrameSelection

# MPEG-1/2 program streams (.mpg, .mpeg: the GRID corpus) and transport streams decode through FFmpeg like the rest.
VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".ts"})
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})

DEFAULT_FPS = 25.0
"""Frame rate assumed for a video whose container declares none (or 0 / NaN)."""

# OpenCV's declared frame counts are estimates (often duration * fps), so a shortfall this small is not an error.
_SHORTFALL_FRAMES = 2
_SHORTFALL_FRACTION = 0.02


class MediaError(Exception):
    """A user-facing reason why a file cannot be read (message is shown as-is in reports)."""


@dataclass(frozen=True)
class MediaInfo:
    """What probing a file found. Width and height are those of the upright (rotation-applied) frames.

    Images have ``fps == 0.0`` (no time axis), ``frame_count == 1`` and a duration of 0 seconds.
    """

    path: Path
    kind: Literal["video", "image"]
    width: int
    height: int
    fps: float
    frame_count: int

    @property
    def duration_s(self) -> float:
        """Declared duration in seconds (0.0 for images and for videos of unknown length)."""
        return self.frame_count / self.fps if self.fps > 0 else 0.0


@dataclass(eq=False)
class Frame:
    """One decoded frame: ``image`` is HxWx3 uint8 BGR, upright."""

    index: int
    time_s: float
    image: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class MediaInput:
    """A file to analyse (or a bad argument, with ``error`` set) and the unique relative folder for its outputs."""

    path: Path
    output_name: Path
    error: str | None = None


# ---------------------------------------------------------------------------------------------------------------
# Probing


def probe(path: str | Path) -> MediaInfo:
    """Check that ``path`` is a decodable video or image (decoding its first frame) and return its info.

    Raises MediaError with a reason fit for a report.
    """
    path = Path(path)
    if _media_kind(path) == "image":
        return _image_info(path, _read_image(path))
    capture, info, _ = _open_video(path)
    capture.release()
    return info


def _media_kind(path: Path) -> Literal["video", "image"]:
    """Validate the path as a non-empty readable file with a supported extension; return its kind."""
    if not path.exists():
        raise MediaError("no such file")
    if path.is_dir():
        raise MediaError("is a directory, not a video or image file")
    if not path.is_file():
        raise MediaError("not a regular file")
    if path.stat().st_size == 0:
        raise MediaError("empty file (0 bytes)")
    if not os.access(path, os.R_OK):
        raise MediaError("permission denied")
    suffix = path.suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    expected = " ".join(sorted(VIDEO_EXTENSIONS | IMAGE_EXTENSIONS))
    described = repr(suffix) if suffix else "(no extension)"
    raise MediaError(f"unsupported file type {described}; expected one of: {expected}")


def _read_image(path: Path) -> np.ndarray:
    # IMREAD_COLOR applies EXIF orientation and converts gray, 16-bit and alpha images to 8-bit 3-channel BGR.
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise MediaError(f"not a readable image: the file is corrupt or not a {path.suffix[1:].upper()} image")
    return image


def _image_info(path: Path, image: np.ndarray) -> MediaInfo:
    height, width = image.shape[:2]
    return MediaInfo(path=path, kind="image", width=width, height=height, fps=0.0, frame_count=1)


def _open_video(path: Path) -> tuple[cv2.VideoCapture, MediaInfo, np.ndarray]:
    """Open a video with OpenCV's FFmpeg backend and decode its first frame; the caller owns the capture."""
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not capture.isOpened():
        capture.release()
        raise MediaError(f"not a readable video: {_ffmpeg_open_failure(path)}")
    # On by default in the FFmpeg backend; set explicitly so phone videos with a display matrix come out upright.
    capture.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
    ok, first_frame = capture.read()
    if not ok or first_frame is None:
        capture.release()
        raise MediaError("no decodable video frame (the file is truncated or corrupt)")
    fps = capture.get(cv2.CAP_PROP_FPS)
    if not math.isfinite(fps) or fps <= 0:
        fps = DEFAULT_FPS
    declared = capture.get(cv2.CAP_PROP_FRAME_COUNT)
    frame_count = int(declared) if math.isfinite(declared) and declared > 0 else 0
    height, width = first_frame.shape[:2]
    info = MediaInfo(path=path, kind="video", width=width, height=height, fps=float(fps), frame_count=frame_count)
    return capture, info, first_frame


def _ffmpeg_open_failure(path: Path) -> str:
    """Ask FFmpeg (through PyAV) why a file does not open, since OpenCV only says that it didn't."""
    # FFmpeg's log often has the specific cause ("moov atom not found"); PyAV attaches it to the error only while
    # logging is on, which is a process-wide setting, so turn it on just for this call.
    previous_level = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return "the file has no video stream"
    except av.FFmpegError as error:
        reason = str(error.strerror or error).rstrip(".")
        detail = error.log[2].strip() if error.log else ""
        return f"{reason}: {detail}" if detail else reason
    except Exception as error:  # noqa: BLE001 - any failure here still means "not readable"
        return str(error)
    finally:
        av.logging.set_level(previous_level)
    return "OpenCV's FFmpeg backend could not open it"


def estimate_frame_count(info: MediaInfo) -> int:
    """Best available total frame count: the declared one, else the stream's metadata or duration x fps (via PyAV),
    else the number of packets in the video stream. Returns 0 if the file cannot be read."""
    if info.kind == "image":
        return 1
    if info.frame_count > 0:
        return info.frame_count
    try:
        with av.open(str(info.path)) as container:
            stream = container.streams.video[0]
            if stream.frames:
                return int(stream.frames)
            if stream.duration and stream.time_base:
                return max(1, round(float(stream.duration * stream.time_base) * info.fps))
            if container.duration:
                return max(1, round(container.duration / av.time_base * info.fps))
            return sum(1 for packet in container.demux(stream) if packet.size)
    except (av.FFmpegError, IndexError):
        return 0


# ---------------------------------------------------------------------------------------------------------------
# Streaming frames


class _Stop(Exception):
    pass


_END = object()


class _DecodeState:
    """Progress shared between the decoding thread and the reader (plain attribute writes are atomic)."""

    def __init__(self) -> None:
        self.frames_decoded = 0
        self.error: str | None = None


class _VideoDecoder:
    """Owns the capture, the bounded queue and the decoding thread; holds no reference to the reader,
    so an abandoned reader can still be garbage-collected and its thread stopped."""

    def __init__(self, capture: cv2.VideoCapture, first_frame: np.ndarray, prefetch: int) -> None:
        self.capture: cv2.VideoCapture | None = capture
        self.first_frame: np.ndarray | None = first_frame
        self.frames: queue.Queue = queue.Queue(maxsize=prefetch)
        self.stop_event = threading.Event()
        self.state = _DecodeState()
        self.thread: threading.Thread | None = None

    def start(self, info: MediaInfo, select: Callable[[int, float], bool], decode_all: bool) -> None:
        self.thread = threading.Thread(
            target=self._run, args=(info, select, decode_all), name=f"decode:{info.path.name}", daemon=True
        )
        self.thread.start()

    def _put(self, item: object) -> None:
        while True:
            if self.stop_event.is_set():
                raise _Stop
            try:
                self.frames.put(item, timeout=0.05)
                return
            except queue.Full:
                continue

    def _run(self, info: MediaInfo, select: Callable[[int, float], bool], decode_all: bool) -> None:
        capture, pending = self.capture, self.first_frame
        self.first_frame = None
        index = 0
        try:
            while not self.stop_event.is_set():
                time_s = index / info.fps
                selected = select(index, time_s)
                if pending is not None:
                    ok, image, pending = True, pending, None
                elif selected or decode_all:
                    ok, image = capture.read()
                else:
                    ok, image = capture.grab(), None
                if not ok:
                    self._check_shortfall(info, index)
                    break
                self.state.frames_decoded = index + 1
                if image is not None:
                    self._put((Frame(index, time_s, image), selected))
                    image = None  # don't keep the last frame alive while blocked in read()
                index += 1
        except _Stop:
            pass
        except Exception as error:  # noqa: BLE001 - reported to the caller through decode_error
            self.state.error = f"decoding failed at frame {index}: {error}"
        finally:
            self.capture = None
            capture.release()
            try:
                self._put(_END)
            except _Stop:
                pass

    def _check_shortfall(self, info: MediaInfo, decoded: int) -> None:
        declared = info.frame_count
        if declared > 0 and declared - decoded > max(_SHORTFALL_FRAMES, int(declared * _SHORTFALL_FRACTION)):
            self.state.error = (
                f"decoding stopped at frame {decoded} of {declared} declared: file is truncated or corrupt"
            )

    def next_item(self) -> object:
        """The next queued (Frame, selected) pair, or _END once the thread is done."""
        while True:
            try:
                return self.frames.get(timeout=0.05)
            except queue.Empty:
                if self.thread is None or not self.thread.is_alive():
                    try:
                        return self.frames.get_nowait()
                    except queue.Empty:
                        return _END

    def shutdown(self) -> None:
        """Stop the thread (promptly, even if the queue is full), release the capture and drop queued frames."""
        self.stop_event.set()
        self.first_frame = None
        if self.thread is None:
            if self.capture is not None:
                self.capture.release()
                self.capture = None
            return
        while True:
            try:
                self.frames.get_nowait()
            except queue.Empty:
                break
        if self.thread is not threading.current_thread():
            self.thread.join(timeout=10.0)
        while True:
            try:
                self.frames.get_nowait()
            except queue.Empty:
                break


class MediaReader:
    """Streams frames of a video or image without holding the video in memory.

    Decoding runs in a background thread into a bounded queue (size ``prefetch``) so it overlaps with compute
    (``cv2.VideoCapture.read`` releases the GIL). Usable as a context manager; ``close()`` stops the thread promptly
    even if iteration was abandoned midway. A reader can be iterated once. Opening raises MediaError like probe().

    ``iter_frames()`` yields ``(frame, selected)`` for every decoded frame (only the selected ones when
    ``decode_all=False``: the others are skipped with ``grab()``, without colour conversion); iterating the reader
    itself yields only the selected frames.
    """

    def __init__(
        self,
        path: str | Path,
        prefetch: int = 8,
        selection: FrameSelection | None = None,
        decode_all: bool = True,
    ) -> None:
        from fakescope.video.sampling import FrameSelection

        if prefetch < 1:
            raise ValueError(f"prefetch must be at least 1, got {prefetch}")
        self.path = Path(path)
        self.selection = selection if selection is not None else FrameSelection()
        self.decode_all = decode_all
        self._image: np.ndarray | None = None
        self._decoder: _VideoDecoder | None = None
        self._image_state = _DecodeState()
        self._iterated = False
        if _media_kind(self.path) == "image":
            self._image = _read_image(self.path)
            self.info = _image_info(self.path, self._image)
        else:
            capture, self.info, first_frame = _open_video(self.path)
            self._decoder = _VideoDecoder(capture, first_frame, prefetch)
            weakref.finalize(self, self._decoder.shutdown)

    @property
    def frames_decoded(self) -> int:
        """Frames the decoder has produced so far (including ones skipped by ``decode_all=False``)."""
        return (self._decoder.state if self._decoder else self._image_state).frames_decoded

    @property
    def decode_error(self) -> str | None:
        """Why decoding stopped early (truncated/corrupt file or decoder failure); None if it did not."""
        return (self._decoder.state if self._decoder else self._image_state).error

    def iter_frames(self) -> Iterator[tuple[Frame, bool]]:
        """Yield ``(frame, selected)`` in decoding order; ``selected`` tells whether to analyse the frame."""
        if self._iterated:
            raise RuntimeError("a MediaReader can be iterated only once; open a new one to read the file again")
        self._iterated = True
        select = self.selection.selector(self.info)
        if self._decoder is None:
            yield from self._iter_image(select)
            return
        self._decoder.start(self.info, select, self.decode_all)
        try:
            while (item := self._decoder.next_item()) is not _END:
                yield item  # type: ignore[misc]
                item = None
        finally:
            self.close()

    def _iter_image(self, select: Callable[[int, float], bool]) -> Iterator[tuple[Frame, bool]]:
        image, self._image = self._image, None
        if image is None:
            return
        self._image_state.frames_decoded = 1
        selected = select(0, 0.0)
        if selected or self.decode_all:
            yield Frame(0, 0.0, image), selected

    def __iter__(self) -> Iterator[Frame]:
        for frame, selected in self.iter_frames():
            if selected:
                yield frame

    def close(self) -> None:
        """Stop decoding and release the file; safe to call more than once."""
        self._image = None
        if self._decoder is not None:
            self._decoder.shutdown()

    def __enter__(self) -> MediaReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------------------------
# Finding media files


def _is_media_file(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS or path.suffix.lower() in IMAGE_EXTENSIONS


def _media_under(directory: Path) -> list[Path]:
    """Media files under ``directory`` (recursive, hidden files and folders skipped), as paths relative to it."""
    found: list[Path] = []
    for root, dirnames, filenames in os.walk(directory):
        dirnames[:] = sorted(name for name in dirnames if not name.startswith("."))
        root_path = Path(root)
        for name in filenames:
            path = root_path / name
            if not name.startswith(".") and _is_media_file(path) and path.is_file():
                found.append(path.relative_to(directory))
    return sorted(found, key=lambda rel: rel.parts)


def _with_suffix_number(name: str, number: int) -> str:
    """'469.mp4', 2 -> '469-2.mp4'; 'videos', 2 -> 'videos-2'."""
    stem, dot, extension = name.rpartition(".")
    if not stem:  # no extension, or a name like ".hidden"
        return f"{name}-{number}"
    return f"{stem}-{number}{dot}{extension}"


class _NameRegistry:
    """Hands out output names that are unique across a run, comparing case-insensitively
    so outputs don't collide on case-insensitive file systems either."""

    def __init__(self) -> None:
        self.roots: set[str] = set()
        self.names: set[str] = set()

    def claim_root(self, name: str) -> str:
        candidate, number = name, 1
        while candidate.casefold() in self.roots:
            number += 1
            candidate = _with_suffix_number(name, number)
        self.roots.add(candidate.casefold())
        return candidate

    def claim(self, name: Path) -> Path:
        candidate, number = name, 1
        while candidate.as_posix().casefold() in self.names:
            number += 1
            candidate = name.with_name(_with_suffix_number(name.name, number))
        self.names.add(candidate.as_posix().casefold())
        return candidate


def _argument_name(path: Path) -> str:
    name = path.name or path.resolve().name
    return name if name not in ("", ".", "..") else "input"


def find_media(paths: Sequence[str | Path]) -> list[MediaInput]:
    """Expand command-line arguments into media inputs, in argument order.

    Files given directly are kept whatever their extension (probe() reports unsupported ones) and named by their
    file name. Directories are walked recursively in sorted order, keeping files with a video or image extension
    (case-insensitive) and skipping hidden files and folders; each is named ``<directory name>/<path inside it>``.
    When two arguments would give the same name, the later one's top-level name gets a suffix: ``469-2.mp4``,
    ``videos-2/real/469.mp4``. Missing paths and directories without media come back with ``error`` set.
    """
    registry = _NameRegistry()
    inputs: list[MediaInput] = []
    for argument in paths:
        path = Path(argument)
        if not path.exists():
            root = registry.claim_root(_argument_name(path))
            inputs.append(MediaInput(path, registry.claim(Path(root)), error="no such file or directory"))
        elif path.is_dir():
            root = registry.claim_root(_argument_name(path))
            relative_paths = _media_under(path)
            if not relative_paths:
                inputs.append(
                    MediaInput(path, registry.claim(Path(root)), error="no video or image files found in directory")
                )
            for relative in relative_paths:
                inputs.append(MediaInput(path / relative, registry.claim(Path(root) / relative)))
        else:
            root = registry.claim_root(_argument_name(path))
            inputs.append(MediaInput(path, registry.claim(Path(root))))
    return inputs
