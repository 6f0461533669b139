"""Drawing class-activation maps over frames: a JET colour map, only where the map is warm."""
from __future__ import annotations

import cv2
import numpy as np

from ..faces import square_crop_box

WARM_LEVEL = 0.2  # below this (of the map's maximum) a pixel keeps its original colour
OVERLAY_ALPHA = 0.45


def blend_cam(image: np.ndarray, cam: np.ndarray, alpha: float = OVERLAY_ALPHA) -> np.ndarray:
    """Blend ``cam`` (any size, values in [0, 1]) over the whole of BGR ``image`` in place as a JET colormap,
    only where it is warm."""
    height, width = image.shape[:2]
    cam = cv2.resize(np.asarray(cam, dtype=np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    colours = cv2.applyColorMap(np.clip(cam * 255.0, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
    weight = (alpha * np.clip((cam - WARM_LEVEL) / (1.0 - WARM_LEVEL), 0.0, 1.0))[..., None]
    image[:] = (image * (1.0 - weight) + colours * weight).astype(np.uint8)
    return image


def overlay_cam_on_frame(
    image: np.ndarray, cam: np.ndarray, box: tuple[float, float, float, float], margin: float
) -> np.ndarray:
    """Blend ``cam`` over the face's square crop region of ``image`` (in place); parts off the frame are dropped."""
    height, width = image.shape[:2]
    x1, y1, x2, y2 = (int(round(value)) for value in square_crop_box(box, margin))
    if x2 <= x1 or y2 <= y1:
        return image
    full = cv2.resize(np.asarray(cam, dtype=np.float32), (x2 - x1, y2 - y1), interpolation=cv2.INTER_LINEAR)
    left, top, right, bottom = max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)
    if right <= left or bottom <= top:
        return image
    region = image[top:bottom, left:right]
    blend_cam(region, full[top - y1 : bottom - y1, left - x1 : right - x1])
    return image
