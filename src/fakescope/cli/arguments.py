"""Argument types shared by the subcommands, and the options of every command that loads a checkpoint."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..options import non_negative_int, positive_float, positive_int, probability

__all__ = ["add_model_options", "non_negative_int", "positive_float", "positive_int", "probability"]


def add_model_options(parser: argparse.ArgumentParser, weights_help: str | None = None) -> argparse._ArgumentGroup:
    """The options every command that runs a checkpoint shares; returns the group for command-specific additions
    (the model options of ``fakescope.options.AnalysisOptions`` join it as the "model" group)."""
    model = parser.add_argument_group("model")
    model.add_argument("-w", "--weights", type=Path, metavar="PATH",
                       help=weights_help or "checkpoint (.safetensors) to use (default: the trained weights shipped "
                                            "with fakescope)")
    model.add_argument("--allow-untrained", action="store_true",
                       help="accept a checkpoint whose head was never trained (for testing the pipeline only: "
                            "its scores mean nothing)")
    model.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    return model
