"""Drawing live frames: each face's box coloured by its smoothed verdict, its current score, and a status banner."""
from __future__ import annotations

import cv2
import numpy as np

from ..analysis.live import LiveFrame, LiveStats
from ..results import FaceRecord, label_for
from .annotate import GREEN, GREY, RED, draw_banner, draw_faces


def banner_text(frame: LiveFrame, stats: LiveStats, untrained: bool = False) -> str:
    latency = f"{1000 * stats.latencies_s[-1]:.0f} ms" if stats.latencies_s else "-"
    text = f"{frame.shown_fps:4.1f} fps shown | {frame.analysis_fps:4.1f} analyses/s | latency {latency}"
    return text + (" | UNTRAINED MODEL" if untrained else "")


def render_live_frame(frame: LiveFrame, threshold: float, banner: str) -> np.ndarray:
    """A copy of the frame with each face's box coloured by its smoothed verdict, its scores, and a status banner."""
    image = frame.image.copy()
    records = [FaceRecord(frame.index, frame.time_s, face.track_id, face.box, face.detection_score, face.p_smooth)
               for face in frame.faces]
    draw_faces(image, records, threshold)
    scale = max(image.shape[:2]) / 1000.0
    font_scale, thickness = max(0.45, 0.6 * scale), max(1, round(2 * scale))
    for face in frame.faces:
        x1, _, _, y2 = (round(v) for v in face.box)
        text = f"now {face.p_fake:.2f} ({label_for(face.p_fake, threshold)})"
        (_, height), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
        bottom = min(image.shape[0] - 4, y2 + height + 6)
        cv2.putText(image, text, (x1 + 3, bottom), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 255),
                    thickness + 2, cv2.LINE_AA)
        cv2.putText(image, text, (x1 + 3, bottom), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (0, 0, 0), thickness,
                    cv2.LINE_AA)
    if not frame.faces:
        colour = GREY
    else:
        colour = RED if any(face.p_smooth >= threshold for face in frame.faces) else GREEN
    return draw_banner(image, banner, colour)
