"""Models: a registry of temporal deepfake detectors and their safetensors checkpoints."""
from .backbone import BACKBONE_WEIGHTS_ENV, BackboneWeightsError, create_backbone
from .checkpoint import (
    CheckpointError,
    CheckpointMeta,
    load_checkpoint,
    open_checkpoint,
    read_checkpoint_header,
    save_checkpoint,
    sha256_file,
)
from . import catalog  # noqa: F401 - registers the models
from .config import ModelConfig
from .lazy import LazyModel
from .registry import create_model, list_models, model_config, register_model
from .temporal_model import TemporalDeepfakeModel

__all__ = [
    "BACKBONE_WEIGHTS_ENV",
    "BackboneWeightsError",
    "CheckpointError",
    "CheckpointMeta",
    "LazyModel",
    "ModelConfig",
    "TemporalDeepfakeModel",
    "create_backbone",
    "create_model",
    "list_models",
    "load_checkpoint",
    "model_config",
    "open_checkpoint",
    "read_checkpoint_header",
    "register_model",
    "save_checkpoint",
    "sha256_file",
]
