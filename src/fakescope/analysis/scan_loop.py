"""The scan's analysis loop: frames -> faces -> tracks -> crops -> batched CNN features -> windowed RNN per track."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable

import numpy as np
import torch

from ..faces import FaceDetector, FaceTracker, IntervalFaceDetector
from ..results import FaceRecord, FrameRecord
from ..timing import StageTimer
from ..video import Frame
from .encoder import FaceEncoder


class FrameAnalyzer:
    """Streams analysed frames through detection, tracking and the temporal model.

    Memory stays flat: crops wait only until a batch fills, features only until their track's window fills.
    """

    def __init__(self, encoder: FaceEncoder, face_detector: FaceDetector, window: int, batch_size: int,
                 detect_every: int = 1) -> None:
        self.encoder = encoder
        self.face_detector = face_detector
        self.window = window
        self.batch_size = batch_size
        self.detect_every = detect_every

    def analyse(
        self,
        frames: Iterable[Frame],
        timer: StageTimer,
        on_frame: Callable[[], None] | None = None,
    ) -> list[FrameRecord]:
        """Analyse each frame of ``frames`` (already selected); returns one record per frame, in order.

        ``timer.counts["detector_runs"]`` says on how many of them the face detector ran (the others followed its
        faces)."""
        tracker = FaceTracker()
        finder = IntervalFaceDetector(self.face_detector, self.detect_every)
        records: list[FrameRecord] = []
        pending: list[tuple[FaceRecord, np.ndarray]] = []
        track_buffers: dict[int, list[tuple[FaceRecord, torch.Tensor]]] = defaultdict(list)
        finished: set[int] = set()

        iterator = iter(frames)
        while True:
            with timer.stage("decode"):
                frame = next(iterator, None)
            if frame is None:
                break
            with timer.stage("detect"):
                detections = finder.detect(frame.image, frame.index)
                tracked = tracker.update(detections)
                finished.update(tracker.pop_finished())
            record = FrameRecord(frame.index, frame.time_s)
            with timer.stage("crop"):
                for face in tracked:
                    box = tuple(float(v) for v in face.detection.box)
                    face_record = FaceRecord(
                        record.frame_index, frame.time_s, face.track_id, box, float(face.detection.score)
                    )
                    record.faces.append(face_record)
                    pending.append((face_record, self.encoder.crop(frame.image, face.detection.box)))
            records.append(record)
            if len(pending) >= self.batch_size:
                self._run_features(pending, track_buffers, timer)
                pending = []
                self._flush_tracks(finished, track_buffers, timer)
            if on_frame is not None:
                on_frame()

        timer.counts["detector_runs"] += finder.detector_runs
        finished.update(tracker.finish())
        if pending:
            self._run_features(pending, track_buffers, timer)
        self._flush_tracks(finished, track_buffers, timer)
        return records

    def _run_features(
        self,
        pending: list[tuple[FaceRecord, np.ndarray]],
        track_buffers: dict[int, list[tuple[FaceRecord, torch.Tensor]]],
        timer: StageTimer,
    ) -> None:
        with timer.stage("model"):
            features = self.encoder.encode([crop for _, crop in pending])
            full_windows = []
            for (face_record, _), feature in zip(pending, features):
                buffer = track_buffers[face_record.track_id]
                buffer.append((face_record, feature))
                if len(buffer) == self.window:
                    full_windows.append(track_buffers.pop(face_record.track_id))
            self._predict_windows(full_windows)

    def _flush_tracks(
        self,
        finished: set[int],
        track_buffers: dict[int, list[tuple[FaceRecord, torch.Tensor]]],
        timer: StageTimer,
    ) -> None:
        with timer.stage("model"):
            windows = [track_buffers.pop(track_id) for track_id in sorted(finished) if track_buffers.get(track_id)]
            self._predict_windows(windows)
        finished.clear()

    @torch.inference_mode()
    def _predict_windows(self, windows: list[list[tuple[FaceRecord, torch.Tensor]]]) -> None:
        """Set p_fake of every face of ``windows`` (each a track's frames), all in one pass per window length."""
        if not windows:
            return
        features = [torch.stack([feature for _, feature in window]) for window in windows]
        for window, p_fake in zip(windows, self.encoder.predict_windows(features)):
            for (face_record, _), value in zip(window, p_fake.tolist()):
                face_record.p_fake = float(value)
