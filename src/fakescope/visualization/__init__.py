"""Visualisation: annotated frames and plots."""
from .annotate import colour_for, draw_banner, draw_faces
from .plots import plot_trend

__all__ = ["colour_for", "draw_banner", "draw_faces", "plot_trend"]
