"""Drawing predictions onto frames: colour-coded face boxes (green real, red fake) with their scores."""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from ..results import FaceRecord

GREEN = (60, 180, 75)  # BGR
RED = (40, 40, 220)
GREY = (160, 160, 160)


def colour_for(p_fake: float | None, threshold: float) -> tuple[int, int, int]:
    if p_fake is None:
        return GREY
    return RED if p_fake >= threshold else GREEN


def draw_faces(image: np.ndarray, faces: Sequence[FaceRecord], threshold: float) -> np.ndarray:
    """Draw each face's box and label ("FAKE 0.93 #0") on ``image`` in place and return it."""
    scale = max(image.shape[:2]) / 1000.0
    thickness = max(2, int(round(3 * scale)))
    font_scale = max(0.5, 0.8 * scale)
    for face in faces:
        colour = colour_for(face.p_fake, threshold)
        x1, y1, x2, y2 = (int(round(v)) for v in face.box)
        cv2.rectangle(image, (x1, y1), (x2, y2), colour, thickness)
        if face.p_fake is None:
            text = f"? #{face.track_id}"
        else:
            text = f"{'FAKE' if face.p_fake >= threshold else 'REAL'} {face.p_fake:.2f} #{face.track_id}"
        (width, height), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
        top = y1 - height - baseline - 4
        if top < 0:  # no room above the box: put the label inside it
            top = y1
        cv2.rectangle(image, (x1, top), (x1 + width + 6, top + height + baseline + 4), colour, -1)
        cv2.putText(image, text, (x1 + 3, top + height + 2), cv2.FONT_HERSHEY_SIMPLEX, font_scale,
                    (255, 255, 255), thickness, cv2.LINE_AA)
    return image


def draw_banner(image: np.ndarray, text: str, colour: tuple[int, int, int]) -> np.ndarray:
    """A small status line in the top-left corner (e.g. the input's verdict)."""
    scale = max(image.shape[:2]) / 1000.0
    thickness = max(1, int(round(2 * scale)))
    font_scale = max(0.45, 0.7 * scale)
    (width, height), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
    cv2.rectangle(image, (0, 0), (width + 12, height + baseline + 10), colour, -1)
    cv2.putText(image, text, (6, height + 5), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 255),
                thickness, cv2.LINE_AA)
    return image
