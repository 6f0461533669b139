"""fakescope: find faces in videos and images and predict, per frame and per input, whether they are deepfakes."""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Detector", "ScanOptions", "ScanResult", "__version__"]


def __getattr__(name: str):
    # Lazy, so that `fakescope --help` does not pay for importing torch.
    if name in ("Detector", "ScanOptions", "ScanResult"):
        from . import inference

        return getattr(inference, name)
    raise AttributeError(f"module 'fakescope' has no attribute {name!r}")
