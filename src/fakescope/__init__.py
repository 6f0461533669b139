"""fakescope: find faces in videos and images and predict, per frame and per input, whether they are deepfakes."""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Scanner", "ScanResult", "scan_to_folder", "__version__"]


def __getattr__(name: str):
    # Lazy, so that `fakescope --help` does not pay for importing torch.
    if name == "Scanner":
        from .analysis import Scanner

        return Scanner
    if name == "ScanResult":
        from .results import ScanResult

        return ScanResult
    if name == "scan_to_folder":
        from .outputs import scan_to_folder

        return scan_to_folder
    raise AttributeError(f"module 'fakescope' has no attribute {name!r}")
