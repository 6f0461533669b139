"""Clip augmentation: one random draw per clip, applied identically to all its frames."""
from __future__ import annotations

import torch
from torchvision.transforms import v2

from .config import AugmentSection


def build_clip_augmentation(config: AugmentSection, size: int) -> v2.Transform:
    """A transform for uint8 clips (T, 3, H, W) -> uint8 (T, 3, size, size).

    torchvision's v2 transforms draw their random parameters once per call and apply them to every image in a
    batched tensor, which is exactly clip-consistent augmentation.
    """
    steps: list[v2.Transform] = [v2.RandomResizedCrop(size, scale=config.crop_scale, ratio=(0.9, 1.1), antialias=True)]
    if config.flip > 0:
        steps.append(v2.RandomHorizontalFlip(config.flip))
    if config.rotation > 0:
        steps.append(v2.RandomRotation(config.rotation))
    if config.color_jitter > 0:
        strength = config.color_jitter
        steps.append(v2.ColorJitter(strength, strength, strength, min(0.5, strength / 4)))
    if config.blur > 0:
        steps.append(v2.RandomApply([v2.GaussianBlur(5, sigma=(0.1, 1.5))], p=config.blur))
    if config.jpeg is not None:
        steps.append(v2.RandomApply([v2.JPEG(tuple(config.jpeg))], p=0.5))
    return v2.Compose(steps)


def resize_clip(clip: torch.Tensor, size: int) -> torch.Tensor:
    """Deterministic resize for evaluation clips (T, 3, H, W) uint8."""
    if clip.shape[-1] == size and clip.shape[-2] == size:
        return clip
    return v2.functional.resize(clip, [size, size], antialias=True)


def normalise(clip: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """uint8 (T, 3, H, W) -> float normalised as the backbone expects."""
    mean_t = torch.tensor(mean).view(1, 3, 1, 1)
    std_t = torch.tensor(std).view(1, 3, 1, 1)
    return (clip.float() / 255.0 - mean_t) / std_t
