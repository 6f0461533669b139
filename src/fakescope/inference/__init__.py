"""Inference: scanning videos and images with a trained detector."""
from .detector import Detector, WeightsError, default_weights_path
from .pipeline import FrameAnalyzer, ScanOptions, StageTimer
from .results import AGGREGATIONS, FaceRecord, FrameRecord, ScanResult, TrackSummary

__all__ = [
    "AGGREGATIONS",
    "Detector",
    "FaceRecord",
    "FrameAnalyzer",
    "FrameRecord",
    "ScanOptions",
    "ScanResult",
    "StageTimer",
    "TrackSummary",
    "WeightsError",
    "default_weights_path",
]
