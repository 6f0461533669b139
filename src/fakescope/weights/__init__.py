"""The trained weights shipped inside the package, and their integrity record.

``fakescope-default.safetensors`` is the default model (docs/MODEL_CARD.md); ``fakescope-default.json`` records its
sha256 and size, checked every time the default weights are loaded, so a truncated download or an edited file is
refused instead of silently giving other verdicts. ``package_weights`` writes both (called by
scripts/train_default_model.py and scripts/corpus_recipe.py once a model is trained).
"""
from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from ..models.checkpoint import CheckpointMeta, load_checkpoint, save_checkpoint, sha256_file

DEFAULT_WEIGHTS_NAME = "fakescope-default.safetensors"
RECORD_NAME = "fakescope-default.json"


class ShippedWeightsError(RuntimeError):
    """The shipped weights are missing their record or do not match it."""


def weights_dir() -> Path:
    return Path(str(resources.files("fakescope") / "weights"))


def default_weights_path(directory: Path | None = None) -> Path | None:
    """The shipped weights file, or None when this build has none."""
    path = (directory or weights_dir()) / DEFAULT_WEIGHTS_NAME
    return path if path.is_file() else None


def read_record(directory: Path | None = None) -> dict[str, Any]:
    path = (directory or weights_dir()) / RECORD_NAME
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise ShippedWeightsError(f"the shipped weights have no integrity record ({path} is missing)") from error
    except ValueError as error:
        raise ShippedWeightsError(f"the shipped weights' record {path} is not valid JSON: {error}") from error


def verify_default_weights(directory: Path | None = None) -> Path:
    """Check the shipped weights against their recorded size and sha256; return their path."""
    directory = directory or weights_dir()
    path = default_weights_path(directory)
    if path is None:
        raise ShippedWeightsError(f"no shipped weights in {directory}")
    record = read_record(directory)
    size = path.stat().st_size
    if size != record.get("bytes"):
        raise ShippedWeightsError(
            f"{path} is {size} bytes, its record says {record.get('bytes')}: the file is truncated or replaced "
            "(reinstall fakescope; in a git checkout without git-lfs-like filters, run `git checkout -- src/fakescope/weights`)"
        )
    digest = sha256_file(path)
    if digest != record.get("sha256"):
        raise ShippedWeightsError(
            f"{path} has sha256 {digest}, its record says {record.get('sha256')}: the file was altered; reinstall "
            "fakescope or restore it from version control"
        )
    return path


def package_weights(source: str | Path, directory: Path, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Store a trained checkpoint as the shipped weights (fp16) and write its integrity record; ``extra`` goes into
    both the checkpoint's info and the record."""
    model, meta = load_checkpoint(source)
    if not meta.trained:
        raise ShippedWeightsError(f"{source} is not a trained checkpoint")
    info = dict(meta.info)
    info.update(extra or {})
    directory.mkdir(parents=True, exist_ok=True)
    target = save_checkpoint(directory / DEFAULT_WEIGHTS_NAME, model,
                             CheckpointMeta(trained=True, threshold=meta.threshold, info=info), half=True)
    record = {
        "file": DEFAULT_WEIGHTS_NAME,
        "bytes": target.stat().st_size,
        "sha256": sha256_file(target),
        "model": model.config.name,
        "threshold": meta.threshold,
        "source_sha256": meta.sha256,
        "card": "docs/MODEL_CARD.md",
        **(extra or {}),
    }
    (directory / RECORD_NAME).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record
