"""Self-blended fakes (SBI, Shiohara & Yamasaki, CVPR 2022): blend a real face with an altered copy of itself.

The seams, colour and sharpness mismatches left by blending are what face-swap methods leave too, so a detector can
learn them from real faces alone. Following SBI: the mask is the convex hull of the face's landmarks (where known;
an ellipse otherwise), deformed and feathered; the altered copy gets a colour and
sharpness change (the source here, so that outside the mask the frame is untouched), and it is resized and moved slightly before blending. One draw is applied to every frame of
a clip, so a clip stays consistent in time.
"""
from __future__ import annotations

import cv2
import numpy as np

# Landmarks of the 68-point layout: jaw 0-16, eyebrows 17-26, nose 27-35, eyes 36-47, mouth 48-67.
JAW = slice(0, 17)
BROWS = slice(17, 27)


def ellipse_mask(size: int, rng: np.random.Generator) -> np.ndarray:
    """A face-shaped ellipse (hard-edged, float32 0/1) for a square 1.3x crop, when no landmarks are known.

    Crops are 1.3x the face box, so the face fills the central ~77% of the crop.
    """
    mask = np.zeros((size, size), np.float32)
    centre = (size * (0.5 + rng.uniform(-0.03, 0.03)), size * (0.54 + rng.uniform(-0.03, 0.03)))
    axes = (size * rng.uniform(0.26, 0.36), size * rng.uniform(0.32, 0.42))
    cv2.ellipse(mask, (int(centre[0]), int(centre[1])), (int(axes[0]), int(axes[1])), rng.uniform(-8, 8),
                0, 360, 1.0, -1)
    return mask


def landmark_hull_mask(landmarks: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Convex hull (float32 0/1) of a random face region of 68 landmarks: the whole face with the forehead up to a
    raised brow line (as SBI's 81-point hull), or the face from the brows down, or from the nose bridge down."""
    points = np.asarray(landmarks, np.float32).reshape(-1, 2)
    if points.shape[0] != 68:
        raise ValueError(f"expected 68 landmarks, got {points.shape[0]}")
    region = rng.choice(["forehead", "brows", "lower"], p=[0.5, 0.3, 0.2])
    jaw = points[JAW]
    if region == "forehead":
        # Raise the brows by a share of the brow-to-chin height, as the forehead is not in the 68 points.
        brows = points[BROWS].copy()
        chin = points[8]
        brows[:, 1] -= (chin[1] - brows[:, 1].mean()) * rng.uniform(0.15, 0.3)
        hull_points = np.concatenate([jaw, brows])
    elif region == "brows":
        hull_points = np.concatenate([jaw, points[BROWS]])
    else:
        hull_points = np.concatenate([jaw[2:15], points[27:31], points[36:48]])
    mask = np.zeros((size, size), np.float32)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(hull_points).astype(np.int32)), 1.0)
    return mask


def deform_mask(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A hard mask made irregular (a smooth random warp, then erosion or dilation) and feathered, in [0, 1]."""
    size = mask.shape[0]
    # Smooth random displacement field: coarse noise upsampled, a few percent of the crop at most.
    grid = max(3, size // 32)
    amplitude = size * rng.uniform(0.0, 0.03)
    flow = [cv2.resize(rng.uniform(-1, 1, (grid, grid)).astype(np.float32), (size, size),
                       interpolation=cv2.INTER_CUBIC) * amplitude for _ in range(2)]
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    mask = cv2.remap(mask, xs + flow[0], ys + flow[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    kernel_size = int(rng.integers(1, max(2, size // 28)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (kernel_size * 2 + 1, kernel_size * 2 + 1))
    mask = cv2.erode(mask, kernel) if rng.random() < 0.5 else cv2.dilate(mask, kernel)
    blur = int(rng.integers(max(3, size // 24), max(5, size // 6))) | 1
    mask = cv2.GaussianBlur(mask, (blur, blur), 0)
    if mask.max() > 0:
        mask = mask / mask.max()
    # SBI's blend ratio: often a full blend, sometimes a partial one.
    return np.clip(mask * rng.choice([0.5, 0.75, 1.0, 1.0, 1.0]), 0.0, 1.0)


def face_mask(size: int, rng: np.random.Generator, landmarks: np.ndarray | None = None) -> np.ndarray:
    """The blending mask, (size, size) float32 in [0, 1]: the landmarks' hull when given, else an ellipse."""
    hard = landmark_hull_mask(landmarks, size, rng) if landmarks is not None else ellipse_mask(size, rng)
    if hard.sum() < 16:  # landmarks that collapse (a failed fit) fall back to the ellipse
        hard = ellipse_mask(size, rng)
    return deform_mask(hard, rng)


class SelfBlender:
    """Draws one set of blending parameters and applies it to every frame of a clip."""

    def __init__(self, size: int, rng: np.random.Generator, landmarks: np.ndarray | None = None) -> None:
        self.mask = face_mask(size, rng, landmarks)[..., None]
        self.scale = rng.uniform(0.95, 1.05)
        self.shift = rng.uniform(-0.03, 0.03, size=2) * size
        self.rgb_shift = rng.uniform(-20, 20, size=3)
        self.hsv_shift = rng.uniform(-1, 1, size=3) * np.array([5, 20, 20])
        self.contrast = rng.uniform(0.85, 1.15)
        self.brightness = rng.uniform(-15, 15)
        self.sharpness = rng.choice(["blur", "sharpen", "none"])
        self.resize = rng.uniform(0.5, 1.0) if rng.random() < 0.5 else 1.0

    def _colour_and_sharpness(self, image: np.ndarray) -> np.ndarray:
        hsv = cv2.cvtColor(np.clip(image, 0, 255).astype(np.uint8), cv2.COLOR_RGB2HSV).astype(np.float32)
        hsv += self.hsv_shift
        hsv[..., 0] %= 180
        out = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
        out = out + self.rgb_shift
        out = (out - out.mean()) * self.contrast + out.mean() + self.brightness
        if self.sharpness == "blur":
            out = cv2.GaussianBlur(out, (3, 3), 0)
        elif self.sharpness == "sharpen":
            out = cv2.addWeighted(out, 1.5, cv2.GaussianBlur(out, (0, 0), 2), -0.5, 0)
        return out

    def _resample(self, image: np.ndarray) -> np.ndarray:
        size = image.shape[0]
        if self.resize < 1.0:
            small = max(8, int(size * self.resize))
            image = cv2.resize(cv2.resize(image, (small, small), interpolation=cv2.INTER_AREA), (size, size),
                               interpolation=cv2.INTER_LINEAR)
        matrix = cv2.getRotationMatrix2D((size / 2, size / 2), 0.0, self.scale)
        matrix[:, 2] += self.shift
        return cv2.warpAffine(image, matrix, (size, size), borderMode=cv2.BORDER_REFLECT)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """Blend one RGB uint8 crop with its altered copy."""
        # Only the source is altered, so that the frame outside the mask is left exactly as it was.
        target = frame.astype(np.float32)
        source = self._colour_and_sharpness(self._resample(target))
        blended = source * self.mask + target * (1.0 - self.mask)
        return np.clip(blended, 0, 255).astype(np.uint8)


def self_blend_clip(
    frames: list[np.ndarray], rng: np.random.Generator, landmarks: np.ndarray | None = None
) -> list[np.ndarray]:
    """Self-blend every frame of a clip with one draw; ``landmarks`` (68, 2) of the first frame, in crop pixels."""
    blender = SelfBlender(frames[0].shape[0], rng, landmarks)
    return [blender(frame) for frame in frames]
