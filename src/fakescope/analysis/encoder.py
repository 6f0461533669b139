"""The face encoder: face crops -> per-frame features, the one place where faces are cropped, normalised and run
through the model's CNN. Scan, live and the heatmaps all use it, so the heatmaps explain the very features the
scores came from."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..faces import crop_face
from ..models import TemporalDeepfakeModel
from ..options import PRECISIONS


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (None: plain fp32)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return torch.float16 if device.type == "cuda" else None
    if precision == "fp32":
        return None
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("fp16 needs a CUDA device; use bf16 on the CPU")
    return torch.bfloat16 if precision == "bf16" else torch.float16


class FaceEncoder:
    """Crops faces out of frames and turns them into the model's per-frame features.

    ``crop`` cuts one face (square, ``margin`` x its box, resized to the model's input); ``to_batch`` normalises
    uint8 RGB crops into a channels-last tensor; ``encode`` runs the CNN part of the model on them (under autocast
    when ``precision`` asks for it) and returns float32 (N, C) features.
    """

    def __init__(self, model: TemporalDeepfakeModel, device: torch.device, margin: float, precision: str) -> None:
        self.model = model
        self.device = device
        self.margin = margin
        self.crop_size = model.config.input_size
        self.autocast_dtype = autocast_dtype(precision, device)
        config = model.config
        self.mean = torch.tensor(config.mean, device=device).view(1, 3, 1, 1) * 255.0
        self.std = torch.tensor(config.std, device=device).view(1, 3, 1, 1) * 255.0

    def crop(self, image: np.ndarray, box: Sequence[float] | np.ndarray) -> np.ndarray:
        """The model's RGB input crop of the face at ``box`` in BGR ``image``."""
        return crop_face(image, box, self.margin, self.crop_size)

    def to_batch(self, crops: Sequence[np.ndarray]) -> torch.Tensor:
        """uint8 RGB crops -> a normalised (N, 3, H, W) float tensor on the device, channels-last."""
        batch = torch.from_numpy(np.stack(crops)).to(self.device)
        batch = batch.permute(0, 3, 1, 2).float()
        batch = (batch - self.mean) / self.std
        return batch.contiguous(memory_format=torch.channels_last)

    @torch.inference_mode()
    def encode(self, crops: Sequence[np.ndarray]) -> torch.Tensor:
        """uint8 RGB crops -> float32 (N, C) per-frame features."""
        batch = self.to_batch(crops)
        with torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.float32,
                            enabled=self.autocast_dtype is not None):
            features = self.model.forward_features(batch)
        return features.float()
