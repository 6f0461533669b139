"""Training: clips of cached face crops, clip-consistent augmentation, self-blended fakes, Lightning fit."""
from .config import TrainConfig, apply_override
from .train import TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "apply_override", "train"]
