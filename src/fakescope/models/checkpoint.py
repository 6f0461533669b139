"""Checkpoints: one safetensors file whose header metadata carries the JSON model config (no pickle)."""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safetensors import safe_open
from safetensors.torch import save_file

from .config import ModelConfig
from .lazy import LazyModel
from .temporal_model import TemporalDeepfakeModel

FORMAT_VERSION = "1"
_KEY_FORMAT = "fakescope.format"
_KEY_CONFIG = "fakescope.model_config"
_KEY_META = "fakescope.meta"


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable, or does not match its architecture."""


@dataclass
class CheckpointMeta:
    """What a checkpoint says about itself besides its weights."""

    trained: bool = False
    # p_fake at or above which a frame/video is called fake; chosen on validation data when training.
    threshold: float = 0.5
    info: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""
    path: str = ""


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def save_checkpoint(
    path: str | Path,
    model: TemporalDeepfakeModel,
    meta: CheckpointMeta | None = None,
    half: bool = False,
) -> Path:
    """Write ``model``'s weights and config to ``path`` atomically; ``half`` stores float tensors as fp16."""
    meta = meta or CheckpointMeta()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for key, value in model.state_dict().items():
        value = value.detach().cpu()
        if half and value.is_floating_point():
            value = value.half()
        tensors[key] = value.contiguous()
    metadata = {
        _KEY_FORMAT: FORMAT_VERSION,
        _KEY_CONFIG: model.config.to_json(),
        _KEY_META: json.dumps({"trained": meta.trained, "threshold": meta.threshold, "info": meta.info}),
    }
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    os.replace(tmp, path)
    return path


def read_checkpoint_header(path: str | Path) -> tuple[ModelConfig, CheckpointMeta]:
    """The config and metadata of a checkpoint, without loading its tensors."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except Exception as error:  # safetensors raises several types for a bad header
        raise CheckpointError(f"{path} is not a safetensors checkpoint: {error}") from error
    if _KEY_CONFIG not in metadata:
        raise CheckpointError(
            f"{path} has no fakescope model config in its metadata: it is not a fakescope checkpoint "
            "(a bare backbone file goes to --backbone-weights instead)"
        )
    try:
        config = ModelConfig.from_dict(json.loads(metadata[_KEY_CONFIG]))
        extra = json.loads(metadata.get(_KEY_META, "{}"))
    except (ValueError, TypeError) as error:
        raise CheckpointError(f"{path} has an invalid model config: {error}") from error
    meta = CheckpointMeta(
        trained=bool(extra.get("trained", False)),
        threshold=float(extra.get("threshold", 0.5)),
        info=dict(extra.get("info", {})),
        path=str(path),
    )
    return config, meta


def load_checkpoint(path: str | Path, **config_overrides: Any) -> tuple[TemporalDeepfakeModel, CheckpointMeta]:
    """Rebuild the model a checkpoint describes and load its weights (fp16 files are upcast to fp32).

    Every tensor must match the architecture in name and shape; otherwise a CheckpointError lists the differences.
    ``config_overrides`` may change inference-only settings such as ``window``.
    """
    config, meta = read_checkpoint_header(path)
    if config_overrides:
        config = config.replace(**config_overrides)
    model = TemporalDeepfakeModel(config, pretrained=False)
    expected = model.state_dict()
    with safe_open(str(path), framework="pt") as handle:
        stored = {key: handle.get_tensor(key) for key in handle.keys()}
    missing = sorted(set(expected) - set(stored))
    unexpected = sorted(set(stored) - set(expected))
    wrong_shape = [
        f"{key}: file {tuple(stored[key].shape)} vs model {tuple(expected[key].shape)}"
        for key in sorted(set(expected) & set(stored))
        if stored[key].shape != expected[key].shape
    ]
    if missing or unexpected or wrong_shape:
        problems = []
        if missing:
            problems.append(f"{len(missing)} tensors missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected tensors (e.g. {', '.join(unexpected[:3])})")
        if wrong_shape:
            problems.append(f"{len(wrong_shape)} with another shape (e.g. {'; '.join(wrong_shape[:3])})")
        raise CheckpointError(
            f"{path} does not match its declared architecture {config.name!r}: " + "; ".join(problems)
        )
    state = {key: value.to(expected[key].dtype) for key, value in stored.items()}
    model.load_state_dict(state, strict=True)
    model.eval()
    meta.sha256 = sha256_file(path)
    return model, meta


def open_checkpoint(path: str | Path) -> tuple[LazyModel, CheckpointMeta]:
    """The model of a checkpoint, built (as ``load_checkpoint`` does) only when first used, and its metadata with
    the file's sha256: what ``load_checkpoint`` gives, without loading tensors or building the model now.

    CheckpointError now when the file is no fakescope checkpoint; when the model is built, also when its tensors do
    not match the architecture, or when the file has changed since (its sha256 is no longer the one recorded here).
    """
    config, meta = read_checkpoint_header(path)
    meta.sha256 = sha256_file(path)

    def build() -> TemporalDeepfakeModel:
        model, built = load_checkpoint(path)
        if built.sha256 != meta.sha256:
            raise CheckpointError(f"{path} has changed since it was opened (sha256 {meta.sha256[:12]}..., now "
                                  f"{built.sha256[:12]}...): load it again")
        return model

    return LazyModel(config, build), meta
