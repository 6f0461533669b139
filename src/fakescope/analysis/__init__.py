"""Analysis: a loaded model and face detector (``Scanner``) scoring the faces of videos, images and live sources."""
from .encoder import FaceEncoder, autocast_dtype
from .scan_loop import FrameAnalyzer
from .scanner import Scanner, WeightsError

__all__ = ["FaceEncoder", "FrameAnalyzer", "Scanner", "WeightsError", "autocast_dtype"]
