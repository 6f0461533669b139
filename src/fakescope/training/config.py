"""Training configuration: a YAML file plus ``section.key=value`` overrides; saved inside every checkpoint."""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass
class ModelSection:
    name: str = "xception_lstm"
    # Local ImageNet backbone weights (else $FAKESCOPE_BACKBONE_WEIGHTS, else timm's hub when pretrained).
    backbone_weights: str | None = None
    pretrained: bool = True
    overrides: dict[str, Any] = field(default_factory=dict)  # ModelConfig fields: rnn, hidden_size, bidirectional...


@dataclass
class AugmentSection:
    """Applied identically to every frame of a clip."""

    crop_scale: tuple[float, float] = (0.8, 1.0)
    flip: float = 0.5
    rotation: float = 10.0
    color_jitter: float = 0.2
    blur: float = 0.2  # probability
    jpeg: tuple[int, int] | None = (60, 100)  # quality range of JPEG re-compression, applied with probability 0.5


@dataclass
class SbiSection:
    """Self-blended fakes made from real clips (Shiohara & Yamasaki, CVPR 2022)."""

    enabled: bool = False
    fraction: float = 0.3  # share of fake training clips that are self-blended


@dataclass
class DataSection:
    train: list[str] = field(default_factory=list)  # dataset specs, e.g. "ffpp:../shared/data/ffpp-mini?holdout=585,599"
    train_split: str | None = "train"
    val: list[str] = field(default_factory=list)  # default: the train specs
    val_split: str | None = "val"
    cache: str = "runs/cache"
    frames_per_video: int = 32
    frame_stride: int | None = None  # sample every Nth frame instead of frames_per_video
    clip_length: int = 8
    clips_per_epoch: int = 256
    batch_size: int = 4  # clips per batch (each clip_length frames)
    num_workers: int = 2
    preprocess_workers: int = 2
    augment: AugmentSection = field(default_factory=AugmentSection)
    sbi: SbiSection = field(default_factory=SbiSection)
    validation: bool = True  # False: train on everything, no validation loop (needs a fixed ``threshold``)


@dataclass
class OptimSection:
    lr: float = 1e-3
    backbone_lr_factor: float = 0.1  # the pretrained backbone learns this much slower
    weight_decay: float = 0.0
    scheduler: str = "cosine"  # cosine | plateau | none
    freeze_backbone_epochs: int = 1  # warm-up with the backbone frozen
    backbone_trainable_blocks: int | None = None  # train only the last N backbone stages (None: all)
    class_weights: tuple[float, float] | None = None  # loss weights (real, fake); sampling already balances classes
    label_smoothing: float = 0.0


@dataclass
class TrainerSection:
    max_epochs: int = 10
    accelerator: str = "auto"
    devices: int | str = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "auto"  # auto: 16-mixed on GPU, 32 on CPU; or bf16-mixed, 32 ...
    early_stopping_patience: int = 5
    out_dir: str = "runs/train"
    max_time_minutes: float | None = None
    log_every_n_steps: int = 10
    export: str = "best"  # which weights model.safetensors gets: best (by validation video AUC) or last


@dataclass
class TrainConfig:
    seed: int = 42
    threshold_rule: str = "youden"  # how the verdict threshold is chosen on validation videos
    threshold: float | None = None  # a fixed verdict threshold instead (e.g. chosen by cross-validation)
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    trainer: TrainerSection = field(default_factory=TrainerSection)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        return _build(cls, data, "")

    @classmethod
    def load(cls, path: str | Path | None = None, overrides: list[str] | None = None) -> "TrainConfig":
        data: dict[str, Any] = {}
        if path is not None:
            with open(path, encoding="utf-8") as handle:
                data = yaml.safe_load(handle) or {}
        for override in overrides or []:
            apply_override(data, override)
        return cls.from_dict(data)


def apply_override(data: dict[str, Any], override: str) -> None:
    """Apply ``section.key=value`` (value parsed as YAML) to a nested dict in place."""
    key, sep, raw = override.partition("=")
    if not sep or not key:
        raise ValueError(f"override must look like section.key=value, got {override!r}")
    parts = key.strip().split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ValueError(f"cannot set {key}: {part} is not a section")
    node[parts[-1]] = yaml.safe_load(raw)


def _build(cls, data: dict[str, Any], prefix: str):
    if not isinstance(data, dict):
        raise ValueError(f"{prefix or 'config'} must be a mapping")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"unknown config key(s) {', '.join(prefix + k for k in unknown)}; "
                         f"known: {', '.join(prefix + k for k in fields)}")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, value in data.items():
        value = _coerce_number(value, hints.get(name))
        default = fields[name].default_factory() if fields[name].default_factory is not dataclasses.MISSING else None
        if dataclasses.is_dataclass(default):
            values[name] = _build(type(default), value or {}, f"{prefix}{name}.")
        elif isinstance(value, list) and name in ("crop_scale", "jpeg", "class_weights"):
            values[name] = tuple(value)
        else:
            values[name] = value
    return cls(**values)


def _coerce_number(value: Any, hint: Any) -> Any:
    """YAML 1.1 reads ``3e-4`` as a string; turn such strings into the field's numeric type."""
    if not isinstance(value, str):
        return value
    allowed = set(typing.get_args(hint)) | {hint}
    for kind in (int, float):
        if kind in allowed:
            try:
                return kind(value)
            except ValueError:
                continue
    return value
