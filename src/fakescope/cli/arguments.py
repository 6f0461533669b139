"""Argument types shared by the subcommands."""
from __future__ import annotations

import argparse
from pathlib import Path


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def add_model_options(parser: argparse.ArgumentParser, weights_help: str | None = None) -> argparse._ArgumentGroup:
    """The options every command that runs a checkpoint shares; returns the group for command-specific additions."""
    model = parser.add_argument_group("model")
    model.add_argument("-w", "--weights", type=Path, metavar="PATH",
                       help=weights_help or "checkpoint (.safetensors) to use (default: the trained weights shipped "
                                            "with fakescope)")
    model.add_argument("--allow-untrained", action="store_true",
                       help="accept a checkpoint whose head was never trained (for testing the pipeline only: "
                            "its scores mean nothing)")
    model.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    model.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto",
                       help="compute precision of the CNN (default: fp32 on CPU, fp16 on CUDA; bf16 is faster "
                            "on CPUs with AVX-512 BF16)")
    return model
