"""Helpers of the run tests (resume, cluster): generated inputs, and comparing two runs' output folders."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from clips import make_clip, make_image

TEXT_SUFFIXES = {".json", ".csv", ".html"}
TIMED = "timing"  # the one part of a run's files that differs between two runs of the same inputs


RUN_ORDER = ["a-short.mp4", "b-long.mp4", "c-photos/face.jpg", "notes.txt"]
"""The inputs of ``make_run_inputs`` in the order a run lists them."""


def make_run_inputs(folder: Path, long_frames: int = 40) -> Path:
    """A folder of inputs like an archive's: a short clip, a longer one, an image in a subfolder, a text file."""
    make_clip(folder / "a-short.mp4", n_frames=12, size=(320, 240))
    make_clip(folder / "b-long.mp4", n_frames=long_frames, size=(320, 240), seed=1)
    make_image(folder / "c-photos" / "face.jpg", size=200)
    (folder / "notes.txt").write_text("not media\n")
    return folder


def _untimed(data: Any) -> Any:
    if isinstance(data, dict):
        return {key: _untimed(value) for key, value in data.items() if key != TIMED}
    if isinstance(data, list):
        return [_untimed(value) for value in data]
    return data


def run_files(out: Path) -> dict[str, Any]:
    """Every file under ``out`` by relative path: bytes, with ``out`` itself replaced by ``<OUT>`` in text files,
    and JSON parsed without its timings."""
    files: dict[str, Any] = {}
    for path in sorted(out.rglob("*")):
        if not path.is_file():
            continue
        relative = path.relative_to(out).as_posix()
        if path.suffix not in TEXT_SUFFIXES:
            files[relative] = path.read_bytes()
            continue
        text = path.read_text(encoding="utf-8").replace(str(out), "<OUT>")
        files[relative] = _untimed(json.loads(text)) if path.suffix == ".json" else text
    return files


def hidden_entries(out: Path) -> list[str]:
    """Hidden files or folders under ``out``: what interrupted writes would leave."""
    return sorted(path.relative_to(out).as_posix() for path in out.rglob(".*"))


def report_inputs(out: Path) -> list[str]:
    return [entry["input"] for entry in json.loads((out / "report.json").read_text())["results"]]
