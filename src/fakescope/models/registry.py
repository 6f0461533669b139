"""Model registry, the timm way: ``@register_model`` functions returning a ModelConfig, built by ``create_model``."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import ModelConfig
from .temporal_model import TemporalDeepfakeModel

_CONFIGS: dict[str, Callable[..., ModelConfig]] = {}


def register_model(fn: Callable[..., ModelConfig]) -> Callable[..., ModelConfig]:
    """Register a function that returns the default ModelConfig of a named model."""
    _CONFIGS[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    return sorted(_CONFIGS)


def model_config(name: str, **overrides: Any) -> ModelConfig:
    """The registered default config of ``name`` with ``overrides`` applied."""
    if name not in _CONFIGS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    return _CONFIGS[name]().replace(name=name, **overrides)


def create_model(
    name: str,
    pretrained: bool = False,
    backbone_weights: str | Path | None = None,
    **overrides: Any,
) -> TemporalDeepfakeModel:
    """Build a registered model; ``overrides`` change its config (rnn, hidden_size, bidirectional, window, ...).

    ``pretrained`` loads timm's ImageNet backbone weights from the hub; ``backbone_weights`` (or
    ``$FAKESCOPE_BACKBONE_WEIGHTS``) loads them from a local file instead.
    """
    config = model_config(name, **overrides)
    return TemporalDeepfakeModel(config, pretrained=pretrained, backbone_weights=backbone_weights)
