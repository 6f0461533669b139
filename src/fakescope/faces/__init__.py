"""Face detection, tracking across frames and FaceForensics++-style crops."""
from fakescope.faces.crop import crop_face, crop_geometry, square_crop_box
from fakescope.faces.detection import (
    Detection,
    FaceDetector,
    YuNetDetector,
    available_face_detectors,
    create_face_detector,
    find_yunet_model,
)
from fakescope.faces.interval import IntervalFaceDetector
from fakescope.faces.tracker import FaceTracker, TrackedFace, box_iou

__all__ = [
    "Detection",
    "FaceDetector",
    "FaceTracker",
    "IntervalFaceDetector",
    "TrackedFace",
    "YuNetDetector",
    "available_face_detectors",
    "box_iou",
    "create_face_detector",
    "crop_face",
    "crop_geometry",
    "find_yunet_model",
    "square_crop_box",
]
