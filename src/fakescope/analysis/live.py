"""Live detection: a webcam, stream or file played in real time, with causal, bounded-latency predictions per face.

A capture thread reads frames as fast as the source delivers them (a file at its real-time pace). Every frame is
handed to the consumer (display, writer) in order; the analysis worker always takes the NEWEST frame and skips the
rest, so a slow model lowers the analysis rate instead of building a backlog. Each track carries its RNN state from
analysed frame to analysed frame (``stream_step``), reset every ``window`` analysed frames as scan's windows are.
"""
from __future__ import annotations

import math
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import torch

from ..faces import FaceTracker, IntervalFaceDetector
from ..options import LiveOptions
from ..video import DEFAULT_FPS, is_url, open_capture
from .scanner import Scanner

# Frames waiting for the consumer; beyond this the capture thread waits (a file) or the camera drops (live).
SHOW_QUEUE_SIZE = 32
MAX_RETRY_DELAY_S = 8.0
# Boxes of frames not analysed follow their face's recent motion for at most this many frames (then stay put).
MAX_EXTRAPOLATED_FRAMES = 15
# Weight of the newest displacement in a track's velocity (smooths detector jitter).
VELOCITY_SMOOTHING = 0.5
_END = object()


class LiveSourceError(RuntimeError):
    """A source that cannot be opened (or read at all)."""


def is_network_source(source: str) -> bool:
    return is_url(source)


class FrameSource(Protocol):
    """What the capture thread reads: ``open`` raises LiveSourceError, ``read`` returns None when no frame came."""

    kind: str  # "camera", "file" or "stream"
    fps: float
    description: str

    def open(self) -> None: ...

    def read(self) -> np.ndarray | None: ...

    def close(self) -> None: ...


class CaptureSource:
    """``cv2.VideoCapture`` over a webcam index ("0"), a video file, or a network stream URL."""

    def __init__(self, source: str | int, timeout_s: float = 10.0) -> None:
        self.source = source
        self.timeout_s = timeout_s
        text = str(source)
        if isinstance(source, int) or text.isdigit():
            self.kind, self.target = "camera", int(text)
        elif is_network_source(text):
            self.kind, self.target = "stream", text
        else:
            self.kind, self.target = "file", text
        self.description = f"camera {self.target}" if self.kind == "camera" else text
        self.fps = DEFAULT_FPS
        self.size: tuple[int, int] | None = None
        self._capture: cv2.VideoCapture | None = None
        self._first_frame: np.ndarray | None = None

    def open(self) -> None:
        if self.kind == "file" and not Path(self.target).is_file():
            raise LiveSourceError(f"cannot open {self.description}: no such file")
        self.close()
        if self.kind == "file":
            capture = cv2.VideoCapture(self.target)  # any backend, as before (scan pins FFmpeg for files)
        else:
            capture = open_capture(self.target, self.timeout_s)
        if not capture.isOpened():
            capture.release()
            raise LiveSourceError(f"cannot open {self.description}: OpenCV could not open it as a video source")
        ok, image = capture.read()
        if not ok or image is None:
            capture.release()
            raise LiveSourceError(f"cannot open {self.description}: no video frame could be read from it")
        fps = capture.get(cv2.CAP_PROP_FPS)
        # Cameras and streams sometimes report 0, NaN or a timebase (e.g. 90000) instead of a frame rate.
        self.fps = float(fps) if math.isfinite(fps) and 1 <= fps <= 240 else DEFAULT_FPS
        self.size = (image.shape[1], image.shape[0])
        self._capture, self._first_frame = capture, image

    def read(self) -> np.ndarray | None:
        if self._first_frame is not None:
            image, self._first_frame = self._first_frame, None
            return image
        if self._capture is None:
            return None
        ok, image = self._capture.read()
        return image if ok and image is not None else None

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
        self._capture, self._first_frame = None, None


class PushedFrames:
    """The source of a ``LiveAnalyzer`` whose frames are pushed to it one by one (``LiveAnalyzer.analyse_pushed``),
    such as a browser's webcam arriving over a WebSocket: nothing to open, read or close."""

    kind = "pushed"
    description = "pushed frames"

    def __init__(self, fps: float = DEFAULT_FPS) -> None:
        self.fps = fps

    def open(self) -> None:
        pass

    def read(self) -> np.ndarray | None:
        return None

    def close(self) -> None:
        pass


@dataclass
class CapturedFrame:
    index: int
    time_s: float  # position in the source (index / fps)
    image: np.ndarray
    arrival: float  # time.perf_counter() when the frame arrived


@dataclass
class LiveFace:
    """A tracked face as of an analysed frame."""

    track_id: int
    box: tuple[float, float, float, float]
    detection_score: float
    p_fake: float  # this frame's causal prediction
    p_smooth: float  # the track's exponential moving average of p_fake
    step: int  # analysed frames since the track's RNN state was (re)set, counting this one
    velocity: tuple[float, float] = (0.0, 0.0)  # box centre motion in pixels per source frame

    def moved(self, frames: int) -> LiveFace:
        """This face with its box moved by ``frames`` frames of its velocity."""
        dx, dy = self.velocity[0] * frames, self.velocity[1] * frames
        x1, y1, x2, y2 = self.box
        return replace(self, box=(x1 + dx, y1 + dy, x2 + dx, y2 + dy))


@dataclass
class Analysis:
    """The prediction for one analysed frame."""

    frame_index: int
    time_s: float
    arrival: float
    started: float
    finished: float
    faces: list[LiveFace] = field(default_factory=list)
    detect_s: float = 0.0  # face detection and tracking
    model_s: float = 0.0  # crops, CNN and RNN step

    @property
    def latency_s(self) -> float:
        """From the frame's arrival to its prediction."""
        return self.finished - self.arrival

    @property
    def duration_s(self) -> float:
        return self.finished - self.started


@dataclass
class LiveFrame:
    """A frame to show, with the latest prediction available when it is shown."""

    index: int
    time_s: float
    image: np.ndarray
    arrival: float
    analysis: Analysis | None  # the newest analysis of this or an earlier frame (None before the first)
    shown_fps: float
    analysis_fps: float
    follow_motion: bool = True

    @property
    def faces(self) -> list[LiveFace]:
        """The faces to show: the latest analysis's, moved along their motion since the analysed frame."""
        if self.analysis is None:
            return []
        frames = min(self.index - self.analysis.frame_index, MAX_EXTRAPOLATED_FRAMES)
        if not self.follow_motion or frames <= 0:
            return self.analysis.faces
        return [face.moved(frames) for face in self.analysis.faces]

    @property
    def fresh(self) -> bool:
        """Whether the faces come from this very frame."""
        return self.analysis is not None and self.analysis.frame_index == self.index


@dataclass
class _TrackState:
    rnn_state: Any = None
    step: int = 0
    p_smooth: float | None = None
    last_centre: tuple[int, float, float] | None = None  # frame index, x, y of the last analysed box
    velocity: tuple[float, float] = (0.0, 0.0)


class _RateMeter:
    """Events per second over a sliding window."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._times: deque[float] = deque()

    def add(self, now: float) -> None:
        self._times.append(now)
        self._trim(now)

    def rate(self, now: float) -> float:
        self._trim(now)
        if len(self._times) < 2:
            return 0.0
        span = now - self._times[0]  # up to now, so the rate decays when events stop coming
        return (len(self._times) - 1) / span if span > 0 else 0.0

    def _trim(self, now: float) -> None:
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()


@dataclass
class LiveStats:
    """Counts and timings of a live run."""

    frames_shown: int = 0
    frames_analysed: int = 0
    started: float | None = None
    ended: float | None = None
    latencies_s: deque[float] = field(default_factory=lambda: deque(maxlen=100_000))
    analysis_durations_s: deque[float] = field(default_factory=lambda: deque(maxlen=100_000))
    detect_durations_s: deque[float] = field(default_factory=lambda: deque(maxlen=100_000))
    model_durations_s: deque[float] = field(default_factory=lambda: deque(maxlen=100_000))
    predictions_per_track: dict[int, int] = field(default_factory=dict)

    @property
    def elapsed_s(self) -> float:
        if self.started is None:
            return 0.0
        return (self.ended or time.perf_counter()) - self.started

    def latency_percentile(self, percent: float) -> float | None:
        if not self.latencies_s:
            return None
        return float(np.percentile(np.fromiter(self.latencies_s, float), percent))

    def summary(self) -> dict[str, Any]:
        elapsed = self.elapsed_s
        median = self.latency_percentile(50)
        p95 = self.latency_percentile(95)
        return {
            "frames_shown": self.frames_shown,
            "frames_analysed": self.frames_analysed,
            "seconds": round(elapsed, 3),
            "shown_fps": round(self.frames_shown / elapsed, 2) if elapsed else None,
            "analysis_fps": round(self.frames_analysed / elapsed, 2) if elapsed else None,
            "latency_median_ms": None if median is None else round(1000 * median, 1),
            "latency_p95_ms": None if p95 is None else round(1000 * p95, 1),
            "analysis_median_ms": _median_ms(self.analysis_durations_s),
            "detect_median_ms": _median_ms(self.detect_durations_s),
            "model_median_ms": _median_ms(self.model_durations_s),
        }


def _median_ms(seconds: deque[float]) -> float | None:
    return round(1000 * statistics.median(seconds), 1) if seconds else None


class LiveAnalyzer:
    """Runs a loaded ``Scanner`` on a live source; iterate over it to get every frame with the latest predictions.

    ``for frame in LiveAnalyzer(scanner, "0"): ...`` starts the capture and analysis threads, yields a
    ``LiveFrame`` per source frame in order, and stops them when the loop ends (also on an exception or ``break``).
    ``on_analysis`` is called (from the analysis thread) with each ``Analysis``. After the run, ``end_reason``
    says why a camera or stream ended early (None: end of file, a stop limit, or the consumer stopped).
    """

    def __init__(
        self,
        scanner: Scanner,
        source: str | int | FrameSource,
        options: LiveOptions | None = None,
        on_analysis: Callable[[Analysis], None] | None = None,
    ) -> None:
        if scanner.config.bidirectional:
            raise ValueError("live detection needs a unidirectional RNN: a bidirectional model looks at future frames")
        self.scanner = scanner
        self.options = options or LiveOptions()
        self.source: FrameSource = (
            CaptureSource(source, self.options.timeout_s) if isinstance(source, str | int) else source
        )
        self.on_analysis = on_analysis
        self.window = scanner.window
        self.threshold = scanner.threshold
        self.stats = LiveStats()
        self.end_reason: str | None = None
        self._tracker = FaceTracker()
        self._face_finder = IntervalFaceDetector(scanner.face_detector, scanner.faces.detect_every)
        self._tracks: dict[int, _TrackState] = {}
        self._stop = threading.Event()
        self._shown: deque[CapturedFrame | object] = deque()
        self._shown_ready = threading.Condition()
        self._newest: CapturedFrame | None = None
        self._newest_ready = threading.Condition()
        self._analyses: deque[Analysis] = deque(maxlen=64)
        self._analyses_lock = threading.Lock()
        self._analysis_rate = _RateMeter(self.options.rate_window_s)
        self._threads: list[threading.Thread] = []
        self._worker_error: BaseException | None = None
        self._opened = False

    @property
    def fps(self) -> float:
        """The source's frame rate (known once it is open)."""
        return self.source.fps

    def open(self) -> None:
        """Open the source (raises LiveSourceError); iterating opens it if this was not called."""
        self.source.open()
        self._opened = True

    def __iter__(self) -> Iterator[LiveFrame]:
        if not self._opened:
            self.open()
        self._start_threads()
        shown_rate = _RateMeter(self.options.rate_window_s)
        self.stats.started = time.perf_counter()
        try:
            while True:
                item = self._next_shown()
                if item is _END:
                    break
                assert isinstance(item, CapturedFrame)
                if not self.options.drop:
                    self._record(self._analyse(item))
                now = time.perf_counter()
                shown_rate.add(now)
                self.stats.frames_shown += 1
                with self._analyses_lock:
                    analysis_fps = self._analysis_rate.rate(now)
                yield LiveFrame(item.index, item.time_s, item.image, item.arrival, self._latest_analysis(item.index),
                                shown_rate.rate(now), analysis_fps, self.options.follow_motion)
                if self._limit_reached():
                    break
        finally:
            self.stop()
        if self._worker_error is not None:
            raise RuntimeError(f"live analysis failed: {self._worker_error}") from self._worker_error

    def analyse_pushed(self, image: np.ndarray, index: int, time_s: float, arrival: float | None = None) -> Analysis:
        """Analyse one frame of a source the caller reads itself (``PushedFrames``): the same causal step as the
        analysis thread (detect, track, encode, advance each track's RNN state), recorded in ``stats``. ``arrival``
        is when the frame arrived (``time.perf_counter()``; default: now). Call it from one thread at a time."""
        frame = CapturedFrame(index, time_s, image, time.perf_counter() if arrival is None else arrival)
        if self.stats.started is None:
            self.stats.started = frame.arrival
        analysis = self._analyse(frame)
        self._record(analysis)
        return analysis

    def analysis_fps(self) -> float:
        """Analyses per second over the last ``rate_window_s`` seconds."""
        with self._analyses_lock:
            return self._analysis_rate.rate(time.perf_counter())

    def stop(self) -> None:
        """Stop the threads and release the source; safe to call more than once."""
        self._stop.set()
        if self.stats.started is not None and self.stats.ended is None:
            self.stats.ended = time.perf_counter()
        with self._newest_ready:
            self._newest_ready.notify_all()
        with self._shown_ready:
            self._shown_ready.notify_all()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads = []
        self.source.close()

    def _limit_reached(self) -> bool:
        if self.options.max_frames is not None and self.stats.frames_shown >= self.options.max_frames:
            return True
        return self.options.duration_s is not None and self.stats.elapsed_s >= self.options.duration_s

    def _start_threads(self) -> None:
        self._threads = [threading.Thread(target=self._capture_loop, name="live-capture", daemon=True)]
        if self.options.drop:
            self._threads.append(threading.Thread(target=self._analysis_loop, name="live-analysis", daemon=True))
        for thread in self._threads:
            thread.start()

    # --- capture ---------------------------------------------------------------------------------------------

    def _capture_loop(self) -> None:
        try:
            self._capture_frames()
        except BaseException as error:  # noqa: BLE001 - reported to the consumer as the end reason
            self.end_reason = f"reading {self.source.description} failed: {error}"
        finally:
            self._push_shown(_END)
            with self._newest_ready:
                self._newest_ready.notify_all()

    def _capture_frames(self) -> None:
        pace = self.source.kind == "file" and self.options.realtime
        fps = self.source.fps
        index, attempts = 0, 0
        started = time.perf_counter()
        while not self._stop.is_set():
            image = self.source.read()
            if image is None:
                if self.source.kind == "file":
                    return  # end of file
                if self.source.kind != "stream" or attempts >= self.options.retries:
                    tried = f" after {attempts} reconnection attempts" if attempts else ""
                    self.end_reason = f"{self.source.description} stopped delivering frames{tried}"
                    return
                delay = min(self.options.retry_delay_s * 2**attempts, MAX_RETRY_DELAY_S)
                attempts += 1
                if self._stop.wait(delay):
                    return
                try:
                    self.source.open()
                except LiveSourceError:
                    pass  # counted as a failed attempt: the next read finds no frame
                continue
            attempts = 0
            if pace:
                delay = started + index / fps - time.perf_counter()
                if delay > 0 and self._stop.wait(delay):
                    return
            frame = CapturedFrame(index, index / fps, image, time.perf_counter())
            if self.options.drop:
                with self._newest_ready:
                    self._newest = frame  # any older frame not yet taken is skipped
                    self._newest_ready.notify()
            if not self._push_shown(frame):
                return
            index += 1

    def _push_shown(self, item: CapturedFrame | object) -> bool:
        with self._shown_ready:
            while item is not _END and len(self._shown) >= SHOW_QUEUE_SIZE and not self._stop.is_set():
                self._shown_ready.wait(0.1)
            if self._stop.is_set() and item is not _END:
                return False
            self._shown.append(item)
            self._shown_ready.notify_all()
        return True

    def _next_shown(self) -> CapturedFrame | object:
        with self._shown_ready:
            # A timed wait keeps the main thread responsive to Ctrl-C.
            while not self._shown:
                self._shown_ready.wait(0.1)
            item = self._shown.popleft()
            self._shown_ready.notify_all()
            return item

    # --- analysis --------------------------------------------------------------------------------------------

    def _analysis_loop(self) -> None:
        try:
            while True:
                with self._newest_ready:
                    while self._newest is None and not self._stop.is_set() and self._capture_alive():
                        self._newest_ready.wait(0.1)
                    frame, self._newest = self._newest, None
                if frame is None or self._stop.is_set():
                    return
                self._record(self._analyse(frame))
        except BaseException as error:  # noqa: BLE001 - re-raised in the consumer's thread
            self._worker_error = error
            self._stop.set()

    def _capture_alive(self) -> bool:
        return bool(self._threads) and self._threads[0].is_alive()

    def _record(self, analysis: Analysis) -> None:
        with self._analyses_lock:
            self._analyses.append(analysis)
            self._analysis_rate.add(analysis.finished)
            self.stats.frames_analysed += 1
            self.stats.latencies_s.append(analysis.latency_s)
            self.stats.analysis_durations_s.append(analysis.duration_s)
            self.stats.detect_durations_s.append(analysis.detect_s)
            self.stats.model_durations_s.append(analysis.model_s)
            for face in analysis.faces:
                counts = self.stats.predictions_per_track
                counts[face.track_id] = counts.get(face.track_id, 0) + 1
        if self.on_analysis is not None:
            self.on_analysis(analysis)

    def _latest_analysis(self, frame_index: int) -> Analysis | None:
        with self._analyses_lock:
            for analysis in reversed(self._analyses):
                if analysis.frame_index <= frame_index:
                    return analysis
        return None

    @torch.inference_mode()
    def _analyse(self, frame: CapturedFrame) -> Analysis:
        """Detect, track and predict one frame causally; advances each track's RNN state by one step."""
        started = time.perf_counter()
        scanner = self.scanner
        tracked = self._tracker.update(self._face_finder.detect(frame.image, frame.index))
        for track_id in self._tracker.pop_finished():
            self._tracks.pop(track_id, None)
        detected = time.perf_counter()
        faces: list[LiveFace] = []
        if tracked:
            features = scanner.encoder.encode([scanner.encoder.crop(frame.image, face.detection.box)
                                                for face in tracked])
            for face, feature in zip(tracked, features):
                faces.append(self._step_track(frame.index, face.track_id, feature, face.detection.box,
                                              face.detection.score))
        finished = time.perf_counter()
        return Analysis(frame.index, frame.time_s, frame.arrival, started, finished, faces,
                        detect_s=detected - started, model_s=finished - detected)

    def _step_track(
        self, frame_index: int, track_id: int, feature: torch.Tensor, box: np.ndarray, score: float
    ) -> LiveFace:
        track = self._tracks.setdefault(track_id, _TrackState())
        self._update_velocity(track, frame_index, box)
        if track.step == self.window:  # a fresh state every window, as scan's independent windows
            track.rnn_state, track.step = None, 0
        p_fake_tensor, track.rnn_state = self.scanner.encoder.stream_step(feature.unsqueeze(0), track.rnn_state)
        track.step += 1
        p_fake = float(p_fake_tensor[0])
        alpha = self.options.smooth
        track.p_smooth = p_fake if track.p_smooth is None else alpha * p_fake + (1 - alpha) * track.p_smooth
        return LiveFace(track_id, tuple(float(v) for v in box), float(score), p_fake, track.p_smooth, track.step,
                        track.velocity)

    @staticmethod
    def _update_velocity(track: _TrackState, frame_index: int, box: np.ndarray) -> None:
        centre_x, centre_y = float(box[0] + box[2]) / 2, float(box[1] + box[3]) / 2
        if track.last_centre is not None and frame_index > track.last_centre[0]:
            frames = frame_index - track.last_centre[0]
            step_x = (centre_x - track.last_centre[1]) / frames
            step_y = (centre_y - track.last_centre[2]) / frames
            keep = 1 - VELOCITY_SMOOTHING
            track.velocity = (VELOCITY_SMOOTHING * step_x + keep * track.velocity[0],
                              VELOCITY_SMOOTHING * step_y + keep * track.velocity[1])
        track.last_centre = (frame_index, centre_x, centre_y)
