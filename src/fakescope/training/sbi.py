"""Self-blended fakes (the SBI idea): blend a real face with a slightly altered copy of itself through a face mask.

The seams, colour and sharpness mismatches left by blending are what face-swap methods leave too, so a detector can
learn them from real videos alone. The same blend is applied to every frame of a clip.
"""
from __future__ import annotations

import cv2
import numpy as np


def face_mask(size: int, rng: np.random.Generator) -> np.ndarray:
    """A soft face-shaped (elliptic, slightly irregular) mask in [0, 1] for a square FaceForensics++-style crop.

    Crops are 1.3x the face box, so the face fills the central ~77% of the crop.
    """
    mask = np.zeros((size, size), np.float32)
    centre = (size * (0.5 + rng.uniform(-0.03, 0.03)), size * (0.54 + rng.uniform(-0.03, 0.03)))
    axes = (size * rng.uniform(0.26, 0.36), size * rng.uniform(0.32, 0.42))
    angle = rng.uniform(-8, 8)
    cv2.ellipse(mask, (int(centre[0]), int(centre[1])), (int(axes[0]), int(axes[1])), angle, 0, 360, 1.0, -1)
    # Irregular outline: erode or dilate a little, then feather the edge.
    kernel_size = int(rng.integers(1, max(2, size // 28)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (kernel_size * 2 + 1, kernel_size * 2 + 1))
    mask = cv2.erode(mask, kernel) if rng.random() < 0.5 else cv2.dilate(mask, kernel)
    blur = int(rng.integers(max(3, size // 20), max(5, size // 7))) | 1
    mask = cv2.GaussianBlur(mask, (blur, blur), 0)
    return np.clip(mask * rng.uniform(0.85, 1.0), 0.0, 1.0)


class SelfBlender:
    """Draws one set of blending parameters and applies it to every frame of a clip."""

    def __init__(self, size: int, rng: np.random.Generator) -> None:
        self.mask = face_mask(size, rng)[..., None]
        self.scale = rng.uniform(0.94, 1.06)
        self.shift = rng.uniform(-0.03, 0.03, size=2) * size
        self.hsv_shift = rng.uniform(-1, 1, size=3) * np.array([6, 20, 20])
        self.contrast = rng.uniform(0.85, 1.15)
        self.sharpen = rng.choice(["blur", "sharpen", "none"])

    def source(self, frame: np.ndarray) -> np.ndarray:
        size = frame.shape[0]
        matrix = cv2.getRotationMatrix2D((size / 2, size / 2), 0.0, self.scale)
        matrix[:, 2] += self.shift
        moved = cv2.warpAffine(frame, matrix, (size, size), borderMode=cv2.BORDER_REFLECT)
        hsv = cv2.cvtColor(moved, cv2.COLOR_RGB2HSV).astype(np.float32) + self.hsv_shift
        hsv[..., 0] %= 180
        altered = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
        altered = (altered - altered.mean()) * self.contrast + altered.mean()
        if self.sharpen == "blur":
            altered = cv2.GaussianBlur(altered, (3, 3), 0)
        elif self.sharpen == "sharpen":
            altered = cv2.addWeighted(altered, 1.5, cv2.GaussianBlur(altered, (0, 0), 2), -0.5, 0)
        return altered

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """Blend one RGB uint8 crop with its altered copy."""
        blended = self.source(frame) * self.mask + frame.astype(np.float32) * (1.0 - self.mask)
        return np.clip(blended, 0, 255).astype(np.uint8)


def self_blend_clip(frames: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    blender = SelfBlender(frames[0].shape[0], rng)
    return [blender(frame) for frame in frames]
