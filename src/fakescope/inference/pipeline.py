"""The analysis pass: frames -> faces -> tracks -> crops -> batched CNN features -> windowed RNN per track."""
from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from ..faces import FaceDetector, FaceTracker, crop_face
from ..models import TemporalDeepfakeDetector
from ..video import Frame, FrameSelection
from .results import DEFAULT_AGGREGATION, FaceRecord, FrameRecord

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass
class ScanOptions:
    """How to scan; every field has a command-line option of the same name."""

    selection: FrameSelection = field(default_factory=FrameSelection)
    threshold: float | None = None  # None: the checkpoint's validated threshold
    aggregation: str = DEFAULT_AGGREGATION
    batch_size: int = 8
    window: int | None = None  # None: the checkpoint's
    margin: float = 1.3
    detector_max_side: int = 640
    detector_score: float = 0.6
    min_face_size: int = 24
    annotate: bool = True
    plot: bool = True
    precision: str = "auto"
    heatmap: bool = False  # class-activation heatmaps of the fake class: heatmap.mp4/.jpg and heatmaps/*.png
    heatmap_method: str = "hirescam"  # or "gradcam" (visualization.gradcam.CAM_METHODS)
    report: bool = True  # report.html


class StageTimer:
    """Wall-clock seconds spent per pipeline stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def stage(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start

    def as_dict(self) -> dict[str, float]:
        return {name: round(value, 3) for name, value in self.seconds.items()}


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (None: plain fp32)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return torch.float16 if device.type == "cuda" else None
    if precision == "fp32":
        return None
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("fp16 needs a CUDA device; use bf16 on the CPU")
    return torch.bfloat16 if precision == "bf16" else torch.float16


class CropBatcher:
    """Turns uint8 RGB crops into normalised tensors in the model's layout."""

    def __init__(self, model: TemporalDeepfakeDetector, device: torch.device) -> None:
        config = model.config
        self.device = device
        self.mean = torch.tensor(config.mean, device=device).view(1, 3, 1, 1) * 255.0
        self.std = torch.tensor(config.std, device=device).view(1, 3, 1, 1) * 255.0

    def __call__(self, crops: list[np.ndarray]) -> torch.Tensor:
        batch = torch.from_numpy(np.stack(crops)).to(self.device)
        batch = batch.permute(0, 3, 1, 2).float()
        batch = (batch - self.mean) / self.std
        return batch.contiguous(memory_format=torch.channels_last)


class FrameAnalyzer:
    """Streams analysed frames through detection, tracking and the temporal model.

    Memory stays flat: crops wait only until a batch fills, features only until their track's window fills.
    """

    def __init__(
        self,
        model: TemporalDeepfakeDetector,
        face_detector: FaceDetector,
        options: ScanOptions,
        device: torch.device,
    ) -> None:
        self.model = model
        self.face_detector = face_detector
        self.options = options
        self.device = device
        self.window = options.window or model.config.window
        self.crop_size = model.config.input_size
        self.autocast_dtype = resolve_precision(options.precision, device)
        self.to_tensor = CropBatcher(model, device)

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
                    crop = crop_face(frame.image, face.detection.box, self.options.margin, self.crop_size)
                    pending.append((face_record, crop))
            records.append(record)
            if len(pending) >= self.options.batch_size:
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

    @torch.inference_mode()
    def _run_features(
        self,
        pending: list[tuple[FaceRecord, np.ndarray]],
        track_buffers: dict[int, list[tuple[FaceRecord, torch.Tensor]]],
        timer: StageTimer,
    ) -> None:
        with timer.stage("model"):
            batch = self.to_tensor([crop for _, crop in pending])
            with torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.float32,
                                enabled=self.autocast_dtype is not None):
                features = self.model.forward_features(batch)
            features = features.float()
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

    @torch.inference_mode()
    def _predict_window(self, buffer: list[tuple[FaceRecord, torch.Tensor]]) -> None:
        features = torch.stack([feature for _, feature in buffer])
        p_fake = self.model.predict_track(features, window=self.window).tolist()
        for (face_record, _), value in zip(buffer, p_fake):
            face_record.p_fake = float(value)
