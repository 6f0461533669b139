"""68-point face landmarks (iBUG 300-W layout) on face crops, from dlib's shape predictor.

The predictor's weights ship inside the PyPI package ``face_recognition_models`` (no run-time download); dlib comes
from the ``dlib-bin`` wheel. Landmarks are what self-blended fakes need for a face-shaped blending mask.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from fakescope.faces.crop import crop_geometry

NUM_LANDMARKS = 68


class LandmarkError(RuntimeError):
    """The landmark model is not installed or cannot be loaded."""


def find_shape_predictor() -> Path:
    """The 68-point predictor file inside ``face_recognition_models``, found without importing the package (its
    ``__init__`` needs ``pkg_resources``, which new setuptools no longer has)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise LandmarkError("the landmark model needs the face_recognition_models package (pip install "
                            "face_recognition_models dlib-bin)")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / "shape_predictor_68_face_landmarks.dat"
    if not path.is_file():
        raise LandmarkError(f"face_recognition_models has no 68-point predictor at {path}")
    return path


class LandmarkPredictor:
    """dlib's 68-point shape predictor, run on a face crop given the face box inside it."""

    def __init__(self, model_path: str | Path | None = None) -> None:
        try:
            import dlib
        except ImportError as error:
            raise LandmarkError("the landmark model needs dlib (pip install dlib-bin)") from error
        self._dlib = dlib
        self._predictor = dlib.shape_predictor(str(model_path or find_shape_predictor()))

    def __call__(self, image_rgb: np.ndarray, face_box: tuple[float, float, float, float]) -> np.ndarray:
        """(68, 2) float32 x, y of the face in ``face_box`` (x1, y1, x2, y2 in the image's pixels)."""
        x1, y1, x2, y2 = (int(round(v)) for v in face_box)
        shape = self._predictor(np.ascontiguousarray(image_rgb), self._dlib.rectangle(x1, y1, x2, y2))
        return np.array([(shape.part(i).x, shape.part(i).y) for i in range(shape.num_parts)], np.float32)


def face_box_in_crop(box: tuple[float, float, float, float], margin: float, size: int) -> np.ndarray:
    """Where the detector's face ``box`` (frame pixels) lies in its square crop of ``size`` pixels."""
    return points_to_crop(np.asarray(box, np.float32).reshape(2, 2), box, margin, size).reshape(4)


def points_to_crop(points: np.ndarray, box: tuple[float, float, float, float], margin: float, size: int) -> np.ndarray:
    """Frame-pixel points (N, 2) -> their pixels in the crop that ``crop_face(frame, box, margin, size)`` makes."""
    left, top, scale = crop_geometry(box, margin, size)
    return ((np.asarray(points, np.float32) - np.array([left, top], np.float32)) * scale).astype(np.float32)
