"""Writing BGR frames to browser-playable H.264 mp4 files."""
from __future__ import annotations

import math
import os
import queue
import threading
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from fakescope.atomic import AtomicOutput
from fakescope.video.native_log import c_path

# FFmpeg enum values (libavutil/pixfmt.h): OpenCV's BGR->I420 conversion is BT.601 limited range, so tag it as such
# (untagged HD video is usually assumed to be BT.709 by browsers, which would shift the colours slightly).
_AVCOL_SPC_SMPTE170M = 6
_AVCOL_RANGE_MPEG = 1

_END = object()


def _frame_rate(fps: float) -> Fraction:
    """An exact rational rate for common float rates: 29.97 -> 2997/100, 30000/1001 -> 30000/1001."""
    return Fraction(fps).limit_denominator(1001)


class VideoWriter:
    """Writes BGR frames to an H.264 (libx264, yuv420p, +faststart) mp4 that browsers play, using PyAV.

    Odd widths/heights are padded to even (by repeating the last row/column). The output is written under a hidden
    temporary name in the same folder and renamed on close(), so an interrupted run never leaves a half-written
    file under the final name; leaving the ``with`` block by an exception discards it. Closing a writer that got
    no frames writes no file.

    With ``background=True`` (default) the encoder runs in a thread fed by a small bounded queue (PyAV releases the
    GIL while encoding), so write() only converts the frame to YUV and returns; encoder errors surface on the next
    write() or on close().
    """

    def __init__(
        self,
        path: str | Path,
        width: int,
        height: int,
        fps: float,
        crf: int = 23,
        preset: str = "veryfast",
        background: bool = True,
        queue_size: int = 4,
    ) -> None:
        if width < 1 or height < 1:
            raise ValueError(f"frame size must be positive, got {width}x{height}")
        if not math.isfinite(fps) or fps <= 0:
            raise ValueError(f"fps must be a number > 0, got {fps!r}")
        self.path = Path(path)
        self.width, self.height = width, height
        self.encoded_width, self.encoded_height = width + width % 2, height + height % 2
        self.frame_rate = _frame_rate(fps)
        self.frames_written = 0
        self._closed = False
        self._error: BaseException | None = None

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._output = AtomicOutput(self.path)
        self._temp_path = self._output.temp_path
        try:
            # c_path: a folder whose name is not valid UTF-8 is reached through a plain-named link.
            native_temp = os.path.join(c_path(self._temp_path.parent), self._temp_path.name)
            self._container = av.open(native_temp, mode="w", format="mp4", options={"movflags": "+faststart"})
        except BaseException:
            self._output.discard()
            raise
        try:
            stream = self._container.add_stream("libx264", rate=self.frame_rate)
            stream.width, stream.height = self.encoded_width, self.encoded_height
            stream.pix_fmt = "yuv420p"
            stream.time_base = 1 / self.frame_rate
            stream.codec_context.time_base = 1 / self.frame_rate
            stream.codec_context.colorspace = _AVCOL_SPC_SMPTE170M
            stream.codec_context.color_range = _AVCOL_RANGE_MPEG
            stream.options = {"crf": str(crf), "preset": preset}
        except Exception:
            self._discard()
            raise
        self._stream = stream

        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        if background:
            self._queue = queue.Queue(maxsize=queue_size)
            self._thread = threading.Thread(target=self._encode_loop, name=f"encode:{self.path.name}", daemon=True)
            self._thread.start()

    def write(self, frame_bgr: np.ndarray) -> None:
        """Append one HxWx3 uint8 BGR frame of the size given at construction."""
        if self._closed:
            raise ValueError("write() on a closed VideoWriter")
        self._raise_encoder_error()
        if frame_bgr.shape != (self.height, self.width, 3) or frame_bgr.dtype != np.uint8:
            raise ValueError(
                f"expected a {self.height}x{self.width}x3 uint8 BGR frame, got {frame_bgr.shape} {frame_bgr.dtype}"
            )
        if (self.encoded_width, self.encoded_height) != (self.width, self.height):
            frame_bgr = cv2.copyMakeBorder(
                frame_bgr, 0, self.encoded_height - self.height, 0, self.encoded_width - self.width, cv2.BORDER_REPLICATE
            )
        # cvtColor is several times faster than swscale's bgr24->yuv420p here, and makes a copy, so the caller may
        # reuse its buffer as soon as write() returns.
        video_frame = av.VideoFrame.from_ndarray(cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2YUV_I420), format="yuv420p")
        video_frame.pts = self.frames_written
        video_frame.time_base = self._stream.codec_context.time_base
        video_frame.colorspace = _AVCOL_SPC_SMPTE170M
        video_frame.color_range = _AVCOL_RANGE_MPEG
        self.frames_written += 1
        if self._queue is None:
            self._encode(video_frame)
            return
        while True:
            try:
                self._queue.put(video_frame, timeout=0.1)
                return
            except queue.Full:
                self._raise_encoder_error()

    def _encode(self, video_frame: av.VideoFrame | None) -> None:
        for packet in self._stream.encode(video_frame):
            self._container.mux(packet)

    def _encode_loop(self) -> None:
        assert self._queue is not None
        while (item := self._queue.get()) is not _END:
            if self._error is not None:
                continue  # keep draining so write() never blocks on a dead encoder
            try:
                self._encode(item)
            except BaseException as error:  # noqa: BLE001 - re-raised in the caller's thread
                self._error = error

    def _raise_encoder_error(self) -> None:
        if self._error is not None:
            raise RuntimeError(f"video encoding failed for {self.path}: {self._error}") from self._error

    def close(self) -> None:
        """Flush the encoder, finish the file and move it to its final name. Safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        self._stop_thread()
        try:
            self._raise_encoder_error()
            if self.frames_written == 0:
                self._discard()
                return
            self._encode(None)
            self._container.close()
        except BaseException:
            self._discard()
            raise
        self._output.commit()

    def abort(self) -> None:
        """Stop without producing the output file."""
        if self._closed:
            return
        self._closed = True
        self._stop_thread()
        self._discard()

    def _stop_thread(self) -> None:
        if self._thread is not None and self._queue is not None:
            self._queue.put(_END)
            self._thread.join()
            self._thread = None

    def _discard(self) -> None:
        try:
            self._container.close()
        except Exception:  # noqa: BLE001 - the file is being thrown away anyway
            pass
        self._output.discard()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
