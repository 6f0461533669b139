"""The scan's analysis loop: frames -> faces -> tracks -> crops -> batched CNN features -> windowed RNN per track."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable

import numpy as np
import torch

from ..faces import FaceDetector, FaceTracker
from ..results import FaceRecord, FrameRecord
from ..timing import StageTimer
from ..video import Frame
from .encoder import FaceEncoder


class FrameAnalyzer:
    """Streams analysed frames through detection, tracking and the temporal model.

    Memory stays flat: crops wait only until a batch fills, features only until their track's window fills.
    """

    def __init__(self, encoder: FaceEncoder, face_detector: FaceDetector, window: int, batch_size: int) -> None:
        self.encoder = encoder
        self.model = encoder.model
        self.face_detector = face_detector
        self.window = window
        self.batch_size = batch_size

    def analyse(
        self,
        frames: Iterable[Frame],
        timer: StageTimer,
        on_frame: Callable[[], None] | None = None,
    ) -> list[FrameRecord]:
        """Analyse each frame of ``frames`` (already selected); returns one record per frame, in order."""
        tracker = FaceTracker()
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
                detections = self.face_detector.detect(frame.image)
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
            for (face_record, _), feature in zip(pending, features):
                buffer = track_buffers[face_record.track_id]
                buffer.append((face_record, feature))
                if len(buffer) == self.window:
                    self._predict_window(buffer)
                    buffer.clear()

    def _flush_tracks(
        self,
        finished: set[int],
        track_buffers: dict[int, list[tuple[FaceRecord, torch.Tensor]]],
        timer: StageTimer,
    ) -> None:
        with timer.stage("model"):
            for track_id in sorted(finished):
                buffer = track_buffers.pop(track_id, None)
                if buffer:
                    self._predict_window(buffer)
        finished.clear()

    def _predict_window(self, buffer: list[tuple[FaceRecord, torch.Tensor]]) -> None:
        features = torch.stack([feature for _, feature in buffer])
        p_fake = self.encoder.predict_track(features, window=self.window).tolist()
        for (face_record, _), value in zip(buffer, p_fake):
            face_record.p_fake = float(value)
