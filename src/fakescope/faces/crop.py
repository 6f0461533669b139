"""FaceForensics++-style square face crops."""
from __future__ import annotations

import math

import cv2
import numpy as np


def square_crop_box(box: np.ndarray | list[float], margin: float = 1.3) -> np.ndarray:
    """Square box (float32 x1, y1, x2, y2) of side max(w, h) * margin centred on the box centre.

    This is the FaceForensics++ convention. The result may extend past the frame.
    """
    x1, y1, x2, y2 = (float(value) for value in np.asarray(box, dtype=np.float64).reshape(4))
    width, height = x2 - x1, y2 - y1
    if not all(math.isfinite(value) for value in (x1, y1, x2, y2)) or width <= 0 or height <= 0:
        raise ValueError(f"box must be finite with x2 > x1 and y2 > y1, got {(x1, y1, x2, y2)}")
    if margin <= 0:
        raise ValueError(f"margin must be positive, got {margin}")
    half_side = max(width, height) * margin / 2
    centre_x, centre_y = (x1 + x2) / 2, (y1 + y2) / 2
    return np.array(
        [centre_x - half_side, centre_y - half_side, centre_x + half_side, centre_y + half_side],
        dtype=np.float32,
    )


def _integer_square(box: np.ndarray | list[float], margin: float) -> tuple[int, int, int]:
    """(left, top, side) of the crop square in whole pixels, computed in float64 from the unrounded centre so that
    the crop stays exactly square."""
    x1, y1, x2, y2 = np.asarray(box, dtype=np.float64).reshape(4)
    square = square_crop_box(box, margin).astype(np.float64)
    side = max(1, round(float(square[2] - square[0])))
    left = math.floor((x1 + x2) / 2 - side / 2 + 0.5)
    top = math.floor((y1 + y2) / 2 - side / 2 + 0.5)
    return left, top, side


def crop_geometry(box: np.ndarray | list[float], margin: float = 1.3, size: int = 224) -> tuple[int, int, float]:
    """(left, top, scale) of the crop ``crop_face`` makes: frame point p lands at (p - (left, top)) * scale."""
    left, top, side = _integer_square(box, margin)
    return left, top, size / side


def crop_face(
    image_bgr: np.ndarray, box: np.ndarray | list[float], margin: float = 1.3, size: int = 224
) -> np.ndarray:
    """The square crop of ``box`` (see ``square_crop_box``) resized to size x size, as RGB uint8.

    Parts of the square outside the frame are black, so the face stays centred and unstretched.
    Only the crop region is copied, so this stays cheap on very large frames.
    """
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.dtype != np.uint8:
        raise ValueError(
            f"expected an HxWx3 uint8 BGR image, got shape {image_bgr.shape} dtype {image_bgr.dtype}"
        )
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    frame_height, frame_width = image_bgr.shape[:2]
    left, top, side = _integer_square(box, margin)
    right, bottom = left + side, top + side

    inside_left, inside_top = max(left, 0), max(top, 0)
    inside_right, inside_bottom = min(right, frame_width), min(bottom, frame_height)
    if inside_right <= inside_left or inside_bottom <= inside_top:
        return np.zeros((size, size, 3), dtype=np.uint8)

    region = image_bgr[inside_top:inside_bottom, inside_left:inside_right]
    pad_top, pad_bottom = inside_top - top, bottom - inside_bottom
    pad_left, pad_right = inside_left - left, right - inside_right
    if pad_top or pad_bottom or pad_left or pad_right:
        region = cv2.copyMakeBorder(
            region, pad_top, pad_bottom, pad_left, pad_right, cv2.BORDER_CONSTANT, value=(0, 0, 0)
        )
    if side > size:
        region = cv2.resize(region, (size, size), interpolation=cv2.INTER_AREA)
    elif side < size:
        region = cv2.resize(region, (size, size), interpolation=cv2.INTER_LINEAR)
    return cv2.cvtColor(region, cv2.COLOR_BGR2RGB)
