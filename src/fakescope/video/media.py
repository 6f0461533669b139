"""Reading videos and images: probing, streaming frames in a background thread, and finding media files."""
from __future__ import annotations

import bisect
import collections
import errno
import math
import os
import queue
import stat
import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Literal, Sequence

import av
import av.logging
import cv2
import numpy as np

from fakescope.video.info import NETWORK_TIMEOUT_S, MediaInfo, MediaSource, estimate_frame_count  # noqa: F401
from fakescope.video.native_log import c_path, native_stderr
from fakescope.video.sampling import FrameSelection
from fakescope.video.sniff import read_header, sniff_bytes, sniff_file


# Files with these extensions are always handed to the decoder (which then says what is wrong with a damaged one);
# any other file is recognised by its content (see sniff.py), so .gif, .flv, .wmv, .3gp, .heic ... are read too.
# MPEG-1/2 program streams (.mpg, .mpeg: the GRID corpus) and transport streams decode through FFmpeg like the rest.
VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".ts"})
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})

# URL schemes read as network streams (by scan and by live), through OpenCV's FFmpeg backend with timeouts.
NETWORK_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")

# Decoding skips past damaged data: this many failed reads in a row end the video (a file's end costs microseconds
# a read; a network stream's each wait up to the read timeout, so give up sooner there).
_MAX_CONSECUTIVE_FAILURES = 64
_MAX_CONSECUTIVE_FAILURES_URL = 2
# A video that lost more than this share of its frames to damage gets no verdict.
_MAX_LOST_FRACTION = 0.5

DEFAULT_FPS = 25.0
"""Frame rate assumed for a video whose container declares none (or 0 / NaN)."""

# OpenCV's declared frame counts are estimates (often duration * fps), so a shortfall this small is not an error.
_SHORTFALL_FRAMES = 2
_SHORTFALL_FRACTION = 0.02


class MediaError(Exception):
    """A user-facing reason why a file cannot be read (message is shown as-is in reports)."""


def is_url(source: object) -> bool:
    """Whether ``source`` is a URL string with a network scheme (http, https, rtsp, ...)."""
    if not isinstance(source, str) or "://" not in source:
        return False
    return source.split("://", 1)[0].lower() in NETWORK_SCHEMES


def as_source(source: str | Path) -> MediaSource:
    """``source`` as a reader takes it: URLs stay strings, anything else becomes a Path."""
    return source if is_url(source) else Path(source)


def source_name(source: MediaSource) -> str:
    """A short name for messages: a file's name, or the URL."""
    return source if isinstance(source, str) else (source.name or str(source))


def open_capture(target: str | int, timeout_s: float | None = NETWORK_TIMEOUT_S) -> cv2.VideoCapture:
    """``cv2.VideoCapture`` on a camera index, file or URL; URLs go through FFmpeg with open and read timeouts.

    The one way fakescope opens a capture: ``scan`` (MediaReader) and ``live`` (CaptureSource) share it.
    """
    if isinstance(target, str) and is_url(target):
        params: list[int] = []
        if timeout_s is not None:
            timeout_ms = int(timeout_s * 1000)
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms]
        return cv2.VideoCapture(target, cv2.CAP_FFMPEG, params)
    if isinstance(target, int):
        return cv2.VideoCapture(target)
    return cv2.VideoCapture(target, cv2.CAP_FFMPEG)


@dataclass(eq=False)
class Frame:
    """One decoded frame: ``image`` is HxWx3 uint8 BGR, upright."""

    index: int
    time_s: float
    image: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class MediaInput:
    """A file or URL to analyse and the unique relative folder for its outputs.

    ``error`` set: a bad argument or entry (missing, a dangling or looping symbolic link ...), reported as failed.
    ``skipped`` set: an entry of a scanned directory that is not a video or image, listed with that reason.
    """

    path: MediaSource
    output_name: Path
    error: str | None = None
    skipped: str | None = None

    @property
    def display(self) -> str:
        return str(self.path)


# ---------------------------------------------------------------------------------------------------------------
# Probing


def probe(path: str | Path) -> MediaInfo:
    """Check that ``path`` (a file or a URL) is a decodable video or image (decoding its first frame) and return its
    info. Raises MediaError with a reason fit for a report.
    """
    source = as_source(path)
    if isinstance(source, Path) and _media_kind(source) == "image":
        return _image_info(source, _read_image(source)[0])
    capture, info, _ = _open_video(source)
    capture.release()
    return info


def _describe_suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    return repr(suffix) if suffix else "(no extension)"


def check_file(path: Path) -> None:
    """Raise MediaError when ``path`` is not a readable, non-empty regular file (missing, a dangling or looping
    symbolic link, a directory, a device, empty, unreadable)."""
    try:
        status = path.stat()
    except OSError as error:
        if path.is_symlink():
            target = _link_target(path)
            if error.errno == errno.ELOOP:
                raise MediaError(f"symbolic link loop ({target})") from None
            raise MediaError(f"dangling symbolic link: its target {target} does not exist") from None
        if error.errno == errno.ENOENT:
            raise MediaError("no such file") from None
        raise MediaError(f"cannot read it: {error.strerror or error}") from None
    if stat.S_ISDIR(status.st_mode):
        raise MediaError("is a directory, not a video or image file")
    if not stat.S_ISREG(status.st_mode):
        raise MediaError("not a regular file")
    if status.st_size == 0:
        raise MediaError("empty file (0 bytes)")
    if not os.access(path, os.R_OK):
        raise MediaError("permission denied")


def _link_target(path: Path) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def classify(path: Path) -> tuple[Literal["video", "image", "heif"] | None, str]:
    """What ``path`` holds, by content (see sniff.py): ("video" | "image" | "heif", description), or (None, why it is
    not a video or image). Files with a known video or image extension are always taken as that kind, so a damaged
    one fails with the decoder's reason. Raises MediaError (check_file) for unusable paths."""
    check_file(path)
    try:
        signature = sniff_bytes(read_header(path))
        if signature.kind in ("video", "image", "heif"):
            return signature.kind, signature.description  # type: ignore[return-value]
        suffix = path.suffix.lower()
        if signature.kind != "container" and suffix in IMAGE_EXTENSIONS:
            return "image", signature.description
        if signature.kind != "container" and suffix in VIDEO_EXTENSIONS:
            return "video", signature.description
        sniffed = sniff_file(path)  # asks FFmpeg about containers and unrecognised content
    except OSError as error:
        raise MediaError(f"cannot read it: {error.strerror or error}") from None
    if sniffed.kind in ("video", "image", "heif"):
        return sniffed.kind, sniffed.description  # type: ignore[return-value]
    if sniffed.kind == "container":  # FFmpeg could not open it: its own error says why
        return "video", sniffed.description
    return None, f"{sniffed.description}, not a video or image"


def _media_kind(path: Path) -> Literal["video", "image"]:
    """Validate the path as a non-empty readable file holding a video or an image; return its kind."""
    kind, description = classify(path)
    if kind is None:
        raise MediaError(f"unsupported file type {_describe_suffix(path)}: {description}")
    return "video" if kind == "video" else "image"


def _read_image(path: Path) -> tuple[np.ndarray, list[str]]:
    """Decode an image to 8-bit BGR, upright; returns it with warnings about damage the decoder worked around.

    The decoders' own messages (libjpeg, libpng ...) are caught instead of reaching the terminal: a truncated image
    is an error like a truncated video (libjpeg would otherwise fill the missing part with grey and carry on).
    """
    header = b""
    try:
        with open(path, "rb") as handle:
            header = handle.read(64)
    except OSError as error:
        raise MediaError(f"cannot read it: {error.strerror or error}") from None
    if sniff_bytes(header).kind == "heif":
        return _read_heif(path), []
    # IMREAD_COLOR applies EXIF orientation and converts gray, 16-bit and alpha images to 8-bit 3-channel BGR.
    with native_stderr() as decoder_said:
        image = cv2.imread(c_path(path), cv2.IMREAD_COLOR)
    truncated = decoder_said.mentions("premature end of jpeg file", "unexpected end", "read error", "truncat",
                                      "not enough data")
    if image is None:
        if truncated:
            raise MediaError("truncated image: the file ends before its image data does")
        kind = sniff_bytes(header)
        what = kind.description if kind.kind == "image" else f"{path.suffix[1:].upper() or 'known'} image"
        raise MediaError(f"not a readable image: the file is corrupt or not a {what}")
    if truncated:
        raise MediaError("truncated image: the file ends before its image data does (the decoder would fill the "
                         "missing part with grey)")
    warnings = [f"the image decoder reported damage: {line}" for line in decoder_said.lines[:3]]
    return image, warnings


def _read_heif(path: Path) -> np.ndarray:
    """HEIF/HEIC/AVIF through pillow-heif (OpenCV and FFmpeg do not decode these stills)."""
    try:
        import pillow_heif
        from PIL import Image, ImageOps
    except ImportError:
        raise MediaError("HEIF/HEIC image: install the pillow-heif package to read it") from None
    try:
        pillow_heif.register_heif_opener()
        with Image.open(path) as opened:
            upright = ImageOps.exif_transpose(opened).convert("RGB")
            return cv2.cvtColor(np.asarray(upright), cv2.COLOR_RGB2BGR)
    except Exception as error:  # noqa: BLE001 - any decoder failure is a damaged file
        message = str(error).rstrip(".")
        raise MediaError(f"not a readable HEIF/HEIC image: {message}" if message else
                         "not a readable HEIF/HEIC image") from None


def _image_info(path: Path, image: np.ndarray) -> MediaInfo:
    height, width = image.shape[:2]
    return MediaInfo(path=path, kind="image", width=width, height=height, fps=0.0, frame_count=1)


def _open_video(source: MediaSource) -> tuple[cv2.VideoCapture, MediaInfo, np.ndarray]:
    """Open a video (file or URL) with OpenCV's FFmpeg backend and decode its first frame; the caller owns the
    capture."""
    target = source if isinstance(source, str) else c_path(source)
    capture = open_capture(target)
    if not capture.isOpened():
        capture.release()
        if isinstance(source, str):
            raise MediaError(f"cannot open the URL: {_ffmpeg_open_failure(source)}")
        raise MediaError(f"not a readable video: {_ffmpeg_open_failure(source)}")
    # On by default in the FFmpeg backend; set explicitly so phone videos with a display matrix come out upright.
    capture.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
    ok, first_frame = capture.read()
    if not ok or first_frame is None:
        capture.release()
        if isinstance(source, str):
            raise MediaError(f"no video frame arrived from the URL within {NETWORK_TIMEOUT_S:g} s")
        raise MediaError("no decodable video frame (the file is truncated or corrupt)")
    fps = capture.get(cv2.CAP_PROP_FPS)
    if not math.isfinite(fps) or fps <= 0 or fps > 1000:
        fps = DEFAULT_FPS
    declared = capture.get(cv2.CAP_PROP_FRAME_COUNT)
    frame_count = int(declared) if math.isfinite(declared) and 0 < declared < 2**40 else 0
    height, width = first_frame.shape[:2]
    info = MediaInfo(path=source, kind="video", width=width, height=height, fps=float(fps), frame_count=frame_count)
    return capture, info, first_frame


def _ffmpeg_open_failure(source: MediaSource) -> str:
    """Ask FFmpeg (through PyAV) why a file or URL does not open, since OpenCV only says that it didn't."""
    # FFmpeg's log often has the specific cause ("moov atom not found"); PyAV attaches it to the error only while
    # logging is on, which is a process-wide setting, so turn it on just for this call.
    previous_level = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)
    try:
        with av.open(c_path(source), timeout=NETWORK_TIMEOUT_S) as container:
            if not container.streams.video:
                return "the file has no video stream" if isinstance(source, Path) else "the stream has no video"
    except av.FFmpegError as error:
        reason = str(error.strerror or error).rstrip(".")
        detail = error.log[2].strip() if error.log else ""
        return f"{reason}: {detail}" if detail else reason
    except Exception as error:  # noqa: BLE001 - any failure here still means "not readable"
        return str(error)
    finally:
        av.logging.set_level(previous_level)
    return "OpenCV's FFmpeg backend could not open it"


# ---------------------------------------------------------------------------------------------------------------
# Streaming frames


class _Stop(Exception):
    pass


_END = object()


class _DecodeState:
    """Progress shared between the decoding thread and the reader (plain attribute writes are atomic)."""

    def __init__(self) -> None:
        self.frames_decoded = 0
        self.frames_lost = 0  # frames skipped over damaged data
        self.frames_skipped = 0  # frames never decoded: unselected, and no other frame refers to them
        self.damaged_spots = 0  # places where decoding had to skip damaged data
        self.error: str | None = None
        self.warnings: list[str] = []


_SPARSE_FORMATS = frozenset({"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm"})
"""Containers whose every video packet carries its presentation time (FFmpeg format names): the ones
``_decode_sparse`` reads; other files are decoded frame by frame by OpenCV."""
_REORDER_LOOKAHEAD = 32
"""Packets read ahead of the one sent to the decoder: more than any codec's frame reordering (H.264 and HEVC allow
at most 16 frames), so every packet that shows earlier has been read when a packet's index is taken."""


class _PresentationOrder:
    """Presentation times of the packets read so far: a frame's index is its time's rank among them.

    Only the latest ``window`` times are kept (memory stays flat however long the video): the earlier ones are
    counted, and a time that falls among those, reordered too far to rank, is refused."""

    def __init__(self, window: int = 8 * _REORDER_LOOKAHEAD) -> None:
        self.window = window
        self._times: list[int] = []
        self._dropped = 0  # how many times, all earlier than those kept, were dropped
        self._latest_dropped: int | None = None

    def add(self, pts: int) -> bool:
        """Add a packet's time; False for one that cannot be ranked (already there, or earlier than a dropped one)."""
        if self._latest_dropped is not None and pts <= self._latest_dropped:
            return False
        position = bisect.bisect_left(self._times, pts)
        if position < len(self._times) and self._times[position] == pts:
            return False
        self._times.insert(position, pts)
        if len(self._times) > self.window:
            self._latest_dropped = self._times.pop(0)
            self._dropped += 1
        return True

    def index(self, pts: int) -> int | None:
        """The frame index of a time added earlier, or None when it is not (or no longer) there."""
        position = bisect.bisect_left(self._times, pts)
        if position < len(self._times) and self._times[position] == pts:
            return self._dropped + position
        return None


class _VideoDecoder:
    """Owns the capture, the bounded queue and the decoding thread; holds no reference to the reader,
    so an abandoned reader can still be garbage-collected and its thread stopped."""

    def __init__(self, capture: cv2.VideoCapture, first_frame: np.ndarray, prefetch: int,
                 max_failures: int = _MAX_CONSECUTIVE_FAILURES) -> None:
        self.max_failures = max_failures
        self.capture: cv2.VideoCapture | None = capture
        self.first_frame: np.ndarray | None = first_frame
        self.frames: queue.Queue = queue.Queue(maxsize=prefetch)
        self.stop_event = threading.Event()
        self.state = _DecodeState()
        self.thread: threading.Thread | None = None
        self.position = 0  # the frame being decoded, for error messages
        self.backend = "opencv"  # what decoded the frames: "opencv" (every frame) or "pyav-sparse"

    def start(self, info: MediaInfo, select: Callable[[int, float], bool], decode_all: bool,
              skip_unselected: bool = False) -> None:
        """Decode in a background thread. ``skip_unselected``: ``select`` is a pure function of the frame index
        (``every`` and ``count`` selections) and only the selected frames are wanted, so the unselected frames
        that no other frame refers to need not be decoded at all (see ``_decode_sparse``)."""
        self.thread = threading.Thread(
            target=self._run, args=(info, select, decode_all, skip_unselected),
            name=f"decode:{source_name(info.path)}", daemon=True,
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

    def _run(self, info: MediaInfo, select: Callable[[int, float], bool], decode_all: bool,
             skip_unselected: bool) -> None:
        capture = self.capture
        try:
            if not (skip_unselected and not decode_all and self._decode_sparse(info, select)):
                self.state, self.position, self.backend = _DecodeState(), 0, "opencv"  # forget what PyAV counted
                self._decode_every_frame(info, select, decode_all)
        except _Stop:
            pass
        except Exception as error:  # noqa: BLE001 - reported to the caller through decode_error
            self.state.error = f"decoding failed at frame {self.position}: {error}"
        finally:
            self.capture = None
            self.first_frame = None
            capture.release()
            self._summarise_damage(info)
            try:
                self._put(_END)
            except _Stop:
                pass

    def _decode_every_frame(self, info: MediaInfo, select: Callable[[int, float], bool], decode_all: bool) -> None:
        """OpenCV's capture through every frame; unselected ones are only grabbed unless ``decode_all``."""
        capture, pending = self.capture, self.first_frame
        self.first_frame = None
        index = 0
        while not self.stop_event.is_set():
            self.position = index
            image: np.ndarray | None = None
            if pending is not None:
                image, pending = pending, None
            elif not capture.grab():
                skipped = self._skip_damage(capture, info, index)
                if skipped is None:
                    self._check_shortfall(info, index)
                    break
                index += skipped
            time_s = index / info.fps
            selected = select(index, time_s)
            if image is None and (selected or decode_all):
                ok, image = capture.retrieve()
                if not ok or image is None:  # grabbed, but the picture would not decode: lost
                    self.state.frames_lost += 1
                    self.state.damaged_spots += 1
                    index += 1
                    continue
            self.state.frames_decoded += 1
            if image is not None:
                self._put((Frame(index, time_s, image), selected))
                image = None  # don't keep the last frame alive while blocked in grab()
            index += 1

    def _decode_sparse(self, info: MediaInfo, select: Callable[[int, float], bool]) -> bool:
        """Decode with PyAV, skipping the unselected frames that no other frame refers to; False (having put
        nothing in the queue) where this cannot promise the very frames OpenCV would give, which then decodes.

        Most frames of a compressed video with B-frames are references for none (x264's defaults: about half);
        FFmpeg can drop those unseen (``skip_frame = NONREF``), and this is switched per packet, so that each
        selected frame is still decoded, and decoded exactly as when nothing is skipped (the frames it depends on
        are all references). A packet's frame index is its rank in presentation order, known once the packets
        that may show before it have been read (``_REORDER_LOOKAHEAD`` ahead). The first frame out must equal
        OpenCV's first frame (same size, orientation and colour conversion, pixel for pixel), or this gives up.
        """
        path = info.path
        if not isinstance(path, Path):
            return False
        try:
            container = av.open(c_path(path))
        except (av.FFmpegError, OSError, ValueError):
            return False
        with container:
            if container.format.name not in _SPARSE_FORMATS or not container.streams.video:
                return False
            stream = container.streams.video[0]
            decoder = stream.codec_context
            # Frame threads: what is left to decode still costs more than the rest of a --frames 32 scan waits for
            # (a scan of the ffpp-mini videos took 6% less wall clock than with the default slice threads). FFmpeg
            # hands each packet's thread the skip_frame set for that packet, so skipping stays exact.
            stream.thread_type = "FRAME"
            order = _PresentationOrder()
            lookahead: collections.deque[av.Packet] = collections.deque()
            checked = False  # the first frame out matched OpenCV's: from then on frames go to the queue
            produced = 0

            def send(packet: av.Packet | None) -> bool:
                nonlocal checked, produced
                if packet is not None:
                    index = order.index(packet.pts)
                    wanted = index is None or select(index, index / info.fps)
                    self.position = index if index is not None else self.position
                    decoder.skip_frame = "DEFAULT" if wanted else "NONREF"
                try:
                    frames = decoder.decode(packet)
                except av.FFmpegError:
                    if not checked:
                        return False
                    self.state.frames_lost += 1
                    self.state.damaged_spots += 1
                    return True
                if packet is not None:
                    self.state.frames_decoded += 1
                produced += len(frames)
                for frame in frames:
                    index = order.index(frame.pts) if frame.pts is not None else None
                    if index is None:
                        if not checked:
                            return False
                        continue
                    if not checked:
                        if index != 0 or not self._same_as_first_frame(frame):
                            return False
                        checked = True
                        self.backend = "pyav-sparse"
                    if select(index, index / info.fps):
                        self._put((Frame(index, index / info.fps, frame.to_ndarray(format="bgr24")), True))
                return True

            try:
                for packet in container.demux(stream):
                    if self.stop_event.is_set():
                        raise _Stop
                    if packet.size == 0 or packet.is_discard:
                        continue
                    if packet.pts is None or not order.add(packet.pts):
                        if not checked:
                            return False
                        # No place of its own in presentation order (a damaged stream): said as lost.
                        self.state.frames_lost += 1
                        self.state.damaged_spots += 1
                        continue
                    lookahead.append(packet)
                    if len(lookahead) > _REORDER_LOOKAHEAD and not send(lookahead.popleft()):
                        return False
            except av.FFmpegError:
                if not checked:
                    return False
                self.state.damaged_spots += 1  # unreadable from here on: what is missing shows as a shortfall
            while lookahead:
                if not send(lookahead.popleft()):
                    return False
            if not send(None) or not checked:
                return False
        self.state.frames_skipped = max(0, self.state.frames_decoded - produced)
        self._check_shortfall(info, self.state.frames_decoded)
        return True

    def _same_as_first_frame(self, frame: av.VideoFrame) -> bool:
        """Whether PyAV's first frame is OpenCV's (size, orientation, colour conversion)."""
        first = self.first_frame
        if first is None or getattr(frame, "rotation", 0):
            return False
        image = frame.to_ndarray(format="bgr24")
        return image.shape == first.shape and bool(np.array_equal(image, first))

    def _skip_damage(self, capture: cv2.VideoCapture, info: MediaInfo, index: int) -> int | None:
        """After a failed grab at frame ``index``, keep reading past damaged data (FFmpeg resynchronises on the next
        good packet). Returns how many frames were lost (the grabbed frame is at ``index`` + that), or None at the
        end of the video (or when nothing more decodes)."""
        for _ in range(self.max_failures):
            if self.stop_event.is_set():
                raise _Stop
            if capture.grab():
                break
        else:
            return None
        self.state.damaged_spots += 1
        # Where the grabbed frame really is: its timestamp, as frames lost leave a gap in the count.
        position_ms = capture.get(cv2.CAP_PROP_POS_MSEC)
        lost = 0
        if math.isfinite(position_ms) and position_ms > 0:
            lost = max(0, round(position_ms / 1000.0 * info.fps) - index)
            if info.frame_count and index + lost >= info.frame_count + _SHORTFALL_FRAMES:
                lost = 0  # an implausible timestamp: keep counting frames instead
        self.state.frames_lost += lost
        return lost

    def _check_shortfall(self, info: MediaInfo, decoded: int) -> None:
        declared = info.frame_count
        if declared > 0 and declared - decoded > max(_SHORTFALL_FRAMES, int(declared * _SHORTFALL_FRACTION)):
            self.state.error = (
                f"decoding stopped at frame {decoded} of {declared} declared: file is truncated or corrupt"
            )

    def _summarise_damage(self, info: MediaInfo) -> None:
        """Turn skipped damage into a warning, or into an error when too little of the video is left."""
        state = self.state
        if not state.damaged_spots or state.error:
            return
        lost = state.frames_lost
        total = state.frames_decoded + lost
        spots = "1 place" if state.damaged_spots == 1 else f"{state.damaged_spots} places"
        if total and lost > _MAX_LOST_FRACTION * total:
            state.error = (f"the video is too damaged to judge: {lost} of {total} frames could not be decoded "
                           f"(corrupt data in {spots})")
        else:
            frames = f"{lost} frame{'s' if lost != 1 else ''}"
            state.warnings.append(f"corrupt data in {spots}: {frames} could not be decoded and were skipped; "
                                  f"the verdict rests on the {state.frames_decoded} decoded frames")

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
    """Streams frames of a video, image or http(s)/rtsp URL without holding the video in memory.

    Decoding runs in a background thread into a bounded queue (size ``prefetch``) so it overlaps with compute
    (``cv2.VideoCapture.read`` releases the GIL). Usable as a context manager; ``close()`` stops the thread promptly
    even if iteration was abandoned midway. A reader can be iterated once. Opening raises MediaError like probe().
    Corrupt data in a video is skipped: ``frames_lost`` counts the frames it cost and ``warnings`` says so (or
    ``decode_error``, when more than half the frames are lost or the file ends early).

    ``iter_frames()`` yields ``(frame, selected)`` for every decoded frame (only the selected ones when
    ``decode_all=False``: the others are skipped with ``grab()``, without colour conversion, or, for ``every`` and
    ``count`` selections of an mp4/mov/mkv/webm file, mostly not decoded at all, see ``backend``); iterating the
    reader itself yields only the selected frames. Either way the frames are the same, pixel for pixel.
    """

    def __init__(
        self,
        path: str | Path,
        prefetch: int = 8,
        selection: FrameSelection | None = None,
        decode_all: bool = True,
    ) -> None:
        if prefetch < 1:
            raise ValueError(f"prefetch must be at least 1, got {prefetch}")
        self.path: MediaSource = as_source(path)
        self.selection = selection if selection is not None else FrameSelection()
        self.decode_all = decode_all
        self._image: np.ndarray | None = None
        self._decoder: _VideoDecoder | None = None
        self._image_state = _DecodeState()
        self._iterated = False
        if isinstance(self.path, Path) and _media_kind(self.path) == "image":
            self._image, self._image_state.warnings = _read_image(self.path)
            self.info = _image_info(self.path, self._image)
        else:
            capture, self.info, first_frame = _open_video(self.path)
            self._decoder = _VideoDecoder(capture, first_frame, prefetch, _MAX_CONSECUTIVE_FAILURES_URL
                                          if isinstance(self.path, str) else _MAX_CONSECUTIVE_FAILURES)
            weakref.finalize(self, self._decoder.shutdown)

    @property
    def frames_decoded(self) -> int:
        """Frames the decoder has produced so far (including ones skipped by ``decode_all=False``)."""
        return (self._decoder.state if self._decoder else self._image_state).frames_decoded

    @property
    def decode_error(self) -> str | None:
        """Why decoding stopped early (truncated/corrupt file or decoder failure); None if it did not."""
        return (self._decoder.state if self._decoder else self._image_state).error

    @property
    def frames_lost(self) -> int:
        """Frames skipped over damaged data so far."""
        return (self._decoder.state if self._decoder else self._image_state).frames_lost

    @property
    def frames_skipped(self) -> int:
        """Frames counted in ``frames_decoded`` that were never decoded (the "pyav-sparse" backend's saving);
        final once iteration has ended."""
        return (self._decoder.state if self._decoder else self._image_state).frames_skipped

    @property
    def backend(self) -> str:
        """What decodes: "image", "opencv" (every frame, through OpenCV's FFmpeg backend), or "pyav-sparse" (only
        the selected frames and those they depend on, through PyAV; see ``_VideoDecoder._decode_sparse``). Final
        once the first frame has arrived."""
        return self._decoder.backend if self._decoder else "image"

    @property
    def warnings(self) -> list[str]:
        """Damage the decoder worked around (final once iteration has ended): frames skipped, repaired images."""
        return list((self._decoder.state if self._decoder else self._image_state).warnings)

    def iter_frames(self) -> Iterator[tuple[Frame, bool]]:
        """Yield ``(frame, selected)`` in decoding order; ``selected`` tells whether to analyse the frame."""
        if self._iterated:
            raise RuntimeError("a MediaReader can be iterated only once; open a new one to read the file again")
        self._iterated = True
        select = self.selection.selector(self.info)
        if self._decoder is None:
            yield from self._iter_image(select)
            return
        # Only ``every`` and ``count`` choose frames by index alone (``fps`` follows the frames in order), and
        # with every frame wanted there is nothing to skip.
        mode, value = self.selection.mode, self.selection.value
        by_index = mode == "count" or (mode == "every" and value is not None and value > 1)
        self._decoder.start(self.info, select, self.decode_all, skip_unselected=by_index)
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


@dataclass(frozen=True)
class _Entry:
    """One entry met while walking a directory: a media file, or a reason (an error or a skip).

    ``output`` is its output folder relative to the directory's: the path with each part made safe and unique among
    its siblings (case-insensitively, so outputs don't collide on case-insensitive file systems either)."""

    relative: Path
    output: Path
    error: str | None = None
    skipped: str | None = None


def _walk_media(directory: Path, exclude: frozenset[str] = frozenset()) -> Iterator[_Entry]:
    """Stream the entries of ``directory`` (recursive, sorted, hidden files and folders left out) as they are met:
    media files, entries skipped with a reason (not a video or image, a special file), and broken ones with an
    error (dangling or looping symbolic links, unreadable files or folders). Symbolic links to folders are followed,
    unless they lead back to the folder holding them or one above it (a loop, reported). Folders in ``exclude``
    (real paths: the output directory) are left out. Memory stays flat: only the names of the folders on the
    current path are held, never a list of everything."""
    yield from _walk_folder(directory, Path(), Path(), exclude)


def _claim_sibling(claimed: set[str], name: str) -> str:
    candidate, number = name, 1
    while candidate.casefold() in claimed:
        number += 1
        candidate = _with_suffix_number(name, number)
    claimed.add(candidate.casefold())
    return candidate


def _walk_folder(folder: Path, relative: Path, output: Path, exclude: frozenset[str]) -> Iterator[_Entry]:
    try:
        with os.scandir(folder) as scanner:
            names = sorted(entry.name for entry in scanner if not entry.name.startswith("."))
    except OSError as error:
        yield _Entry(relative, output, error=f"cannot list this folder: {error.strerror or error}")
        return
    claimed: set[str] = set()
    for name in names:
        path, entry_relative = folder / name, relative / name
        entry_output = output / _claim_sibling(claimed, _safe_name(name))
        try:
            status = path.lstat()
        except OSError as error:  # vanished since listed
            yield _Entry(entry_relative, entry_output, error=f"cannot read it: {error.strerror or error}")
            continue
        is_link = stat.S_ISLNK(status.st_mode)
        if is_link:
            try:
                status = path.stat()
            except OSError as error:
                target = _link_target(path)
                reason = (f"symbolic link loop ({target})" if error.errno == errno.ELOOP
                          else f"dangling symbolic link: its target {target} does not exist")
                yield _Entry(entry_relative, entry_output, error=reason)
                continue
        if stat.S_ISDIR(status.st_mode):
            real = os.path.realpath(path)
            if real in exclude:
                continue  # the output directory inside a scanned folder: its files are ours
            if is_link and _is_ancestor(real, os.path.realpath(folder)):
                yield _Entry(entry_relative, entry_output, error=f"symbolic link loop: {_link_target(path)} leads "
                                                                 "back to a folder being scanned (not followed)")
                continue
            yield from _walk_folder(path, entry_relative, entry_output, exclude)
        elif not stat.S_ISREG(status.st_mode):
            yield _Entry(entry_relative, entry_output, skipped="not a regular file (a device, pipe or socket)")
        else:
            error, skipped = _classify_entry(path)
            yield _Entry(entry_relative, entry_output, error=error, skipped=skipped)


def _classify_entry(path: Path) -> tuple[str | None, str | None]:
    """(error, skip reason) of a regular file met in a directory; both None for media."""
    if path.suffix.lower() in VIDEO_EXTENSIONS | IMAGE_EXTENSIONS:
        return None, None  # probing says what is wrong with a damaged one (as before content recognition)
    try:
        kind, description = classify(path)
    except MediaError as error:
        if str(error).startswith("empty file"):
            return None, str(error)
        return str(error), None
    if kind is None:
        return None, description
    return None, None


def _is_ancestor(candidate: str, folder: str) -> bool:
    """Whether ``candidate`` is ``folder`` or a folder above it (both real paths)."""
    return folder == candidate or folder.startswith(candidate.rstrip(os.sep) + os.sep)


def _with_suffix_number(name: str, number: int) -> str:
    """'469.mp4', 2 -> '469-2.mp4'; 'videos', 2 -> 'videos-2'."""
    stem, dot, extension = name.rpartition(".")
    if not stem:  # no extension, or a name like ".hidden"
        return f"{name}-{number}"
    return f"{stem}-{number}{dot}{extension}"


def _safe_name(name: str) -> str:
    """``name`` fit for an output folder on any system: undecodable bytes, control and other unprintable
    characters become ``%XX`` (``two%0Alines.jpg``); letters of every script are kept."""
    pieces = []
    for char in name:
        code = ord(char)
        if 0xDC80 <= code <= 0xDCFF:
            pieces.append(f"%{code - 0xDC00:02X}")
        elif not char.isprintable() or 0xD800 <= code <= 0xDFFF:
            pieces.append(f"%{code:02X}" if code < 0x100 else f"%u{code:04X}")
        else:
            pieces.append(char)
    return "".join(pieces)


class _NameRegistry:
    """Hands out output names that are unique across a run, comparing case-insensitively
    so outputs don't collide on case-insensitive file systems either."""

    def __init__(self) -> None:
        self.roots: set[str] = set()
        self.names: set[str] = set()

    def claim_root(self, name: str) -> str:
        name = _safe_name(name)
        candidate, number = name, 1
        while candidate.casefold() in self.roots:
            number += 1
            candidate = _with_suffix_number(name, number)
        self.roots.add(candidate.casefold())
        return candidate

    def claim(self, name: Path) -> Path:
        name = Path(*(_safe_name(part) for part in name.parts))
        candidate, number = name, 1
        while candidate.as_posix().casefold() in self.names:
            number += 1
            candidate = name.with_name(_with_suffix_number(name.name, number))
        self.names.add(candidate.as_posix().casefold())
        return candidate


def _argument_name(path: Path) -> str:
    name = path.name or path.resolve().name
    return name if name not in ("", ".", "..") else "input"


def _url_name(url: str) -> str:
    """A folder name for a URL's outputs: its last path segment, else its host (unsafe characters replaced)."""
    rest = url.split("://", 1)[1].split("?", 1)[0].split("#", 1)[0]
    host, _, tail = rest.partition("/")
    segments = [segment for segment in tail.split("/") if segment]
    name = segments[-1] if segments else host.rsplit("@", 1)[-1]
    safe = "".join(char if char.isalnum() or char in "._-" else "_" for char in name).strip("._")
    return safe or "stream"


def iter_media(paths: Sequence[str | Path], exclude: Sequence[str | Path] = ()) -> Iterator[MediaInput]:
    """Expand command-line arguments into media inputs, in argument order, as a stream (a directory of 10,000 files
    is never listed in full before its first file comes out).

    Files given directly are kept whatever their content (probe() reports what is wrong) and named by their file
    name; http(s), rtsp ... URLs are kept as URL strings, named by their last path segment. Directories are walked
    recursively in sorted order, skipping hidden files and folders; media is recognised by content (every container
    FFmpeg decodes, images OpenCV or pillow-heif decode), other files come back with ``skipped`` set and broken
    entries (dangling or looping symbolic links) with ``error``; each is named ``<directory name>/<path inside it>``.
    When two arguments would give the same name, the later one's top-level name gets a suffix: ``469-2.mp4``,
    ``videos-2/real/469.mp4``. Missing paths and directories without media come back with ``error`` set.
    Folders in ``exclude`` (the output directory) are not walked into.
    """
    registry = _NameRegistry()
    excluded = frozenset(os.path.realpath(folder) for folder in exclude)
    for argument in paths:
        if is_url(argument):
            root = registry.claim_root(_url_name(str(argument)))
            yield MediaInput(str(argument), registry.claim(Path(root)))
            continue
        path = Path(argument)
        if path.is_symlink() and not path.exists():
            root = registry.claim_root(_argument_name(path))
            try:
                check_file(path)
                reason = "no such file or directory"
            except MediaError as error:
                reason = str(error)
            yield MediaInput(path, registry.claim(Path(root)), error=reason)
        elif not path.exists():
            root = registry.claim_root(_argument_name(path))
            reason = "no such file or directory"
            if "://" in str(argument):
                reason = (f"unsupported URL scheme {str(argument).split('://', 1)[0]!r}; "
                          f"expected one of: {', '.join(NETWORK_SCHEMES)}")
            yield MediaInput(path, registry.claim(Path(root)), error=reason)
        elif path.is_dir():
            root = registry.claim_root(_argument_name(path))
            found_media = False
            for entry in _walk_media(path, excluded):
                found_media = found_media or (entry.error is None and entry.skipped is None)
                yield MediaInput(path / entry.relative, Path(root) / entry.output, error=entry.error,
                                 skipped=entry.skipped)
            if not found_media:
                yield MediaInput(path, Path(root), error="no video or image files found in directory")
        else:
            root = registry.claim_root(_argument_name(path))
            yield MediaInput(path, registry.claim(Path(root)))


def find_media(paths: Sequence[str | Path], exclude: Sequence[str | Path] = ()) -> list[MediaInput]:
    """``iter_media`` as a list."""
    return list(iter_media(paths, exclude))
