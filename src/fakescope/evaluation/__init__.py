"""Evaluation: metrics of a detector on labelled videos, at frame level and video level, and their report."""
from .evaluate import EvaluationResult, evaluate_videos
from .metrics import binary_metrics, choose_threshold, equal_error_rate, evaluate_predictions
from .report import write_evaluation_report

__all__ = [
    "EvaluationResult",
    "binary_metrics",
    "choose_threshold",
    "equal_error_rate",
    "evaluate_predictions",
    "evaluate_videos",
    "write_evaluation_report",
]
