"""Writers of every output, driven by a scan's result: tables (CSV/JSON), annotated frames and videos, plots,
heatmap overlays, HTML pages; ``scan_to_folder`` scans an input and writes them all."""
from .annotate import colour_for, draw_banner, draw_faces
from .plots import plot_trend
from .saving import OutputError, OutputWriter, scan_to_folder
from .tables import write_json, write_predictions_csv, write_run_tables

__all__ = [
    "OutputError",
    "OutputWriter",
    "colour_for",
    "draw_banner",
    "draw_faces",
    "plot_trend",
    "scan_to_folder",
    "write_json",
    "write_predictions_csv",
    "write_run_tables",
]
