"""Cheaper face finding: the detector runs every few frames and each face's box is followed in between.

Following is template matching: when the detector runs, each face's box is cut from the frame as a small grey
template (about ``TEMPLATE_SIDE`` pixels across the face); on the frames in between, the template is searched for
in a window around the face's last box (normalised cross-correlation) and the box moves by the best match's offset.
The detector runs again at once when following is unsure: a match's correlation falls below ``min_similarity``
(the face turned, was covered, changed size or left), a match lies on the edge of its search window (fast motion,
or the face at the frame's edge), or the whole frame changed a lot (a scene cut: its small grey thumbnail differs
from the previous frame's by more than ``cut_difference`` grey levels on average).

"Every K" counts the video's own frames, not analysed ones: the detector runs when ``every`` or more frames have
passed since it last ran. With sparse sampling (``--frames 32`` of a 400-frame video, frames 12 apart) and a
smaller ``every``, every analysed frame is detected, so following only ever bridges short gaps in time.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import cv2
import numpy as np

from fakescope.faces.detection import Detection, FaceDetector

TEMPLATE_SIDE = 32
"""Pixels across a face's template (the geometric mean of its box's width and height, after downscaling)."""
SEARCH_MARGIN = 0.5
"""The search window is the face's box grown by this many face sides on every side."""
THUMBNAIL_WIDTH = 96
"""Approximate width of the grey thumbnail compared frame to frame to find scene cuts."""

REASONS = ("first", "interval", "cut", "unsure", "no_face")
"""Why the detector ran on a frame: the first frame, ``every`` frames had passed, a scene cut, a face not followed
with confidence, no face to follow (until one is found, every frame is searched)."""


@dataclass
class _FollowedFace:
    """A detected face and what following it needs: its box and template at detection time, and its latest box."""

    detection: Detection  # the latest one (the detector's, or moved by following)
    anchor_box: np.ndarray  # the box when the detector found it (float64)
    template: np.ndarray  # grey, float32
    template_origin: tuple[int, int]  # frame pixel of the template's top-left corner
    step: int  # pixel stride taken before resizing (cheap first reduction of a large face)
    scale: float  # resize factor applied after the stride


class IntervalFaceDetector:
    """A ``FaceDetector`` run at most every ``every`` frames of a video, its faces followed in between.

    One instance per video (it remembers the previous frames); ``detect(image, frame_index)`` returns the faces of
    a frame like ``FaceDetector.detect`` does: the detector's own where it ran, else each face's last detection
    moved to where its template matched (same score, landmarks shifted alike). ``every=1`` is the detector on every
    frame, unchanged. ``detector_runs`` and ``reasons`` count where and why the detector ran.
    """

    def __init__(
        self,
        detector: FaceDetector,
        every: int = 1,
        min_similarity: float = 0.6,
        cut_difference: float = 30.0,
    ) -> None:
        if every < 1:
            raise ValueError(f"every must be a positive number of frames, got {every}")
        if not -1.0 <= min_similarity <= 1.0:
            raise ValueError(f"min_similarity is a correlation, between -1 and 1; got {min_similarity}")
        if cut_difference <= 0:
            raise ValueError(f"cut_difference must be positive, got {cut_difference}")
        self.detector = detector
        self.every = int(every)
        self.min_similarity = float(min_similarity)
        self.cut_difference = float(cut_difference)
        self.frames_seen = 0
        self.detector_runs = 0
        self.reasons: Counter[str] = Counter()
        self._faces: list[_FollowedFace] = []
        self._detected_at: int | None = None
        self._thumbnail: np.ndarray | None = None
        self._must_detect = False  # a face of the last detection could not be followed

    def detect(self, image_bgr: np.ndarray, frame_index: int) -> list[Detection]:
        """The faces in frame ``frame_index`` (HxWx3 uint8 BGR), by the detector or by following."""
        self.frames_seen += 1
        if self.every == 1:
            self.detector_runs += 1
            return self.detector.detect(image_bgr)
        thumbnail = _thumbnail(image_bgr)
        previous_thumbnail, self._thumbnail = self._thumbnail, thumbnail
        if self._detected_at is None:
            return self._run_detector(image_bgr, frame_index, "first")
        if self._must_detect:
            return self._run_detector(image_bgr, frame_index, "unsure")
        if not self._faces:
            # Following only moves faces already found: a face that enters, or that the last run missed, must not
            # wait ``every`` frames to be seen.
            return self._run_detector(image_bgr, frame_index, "no_face")
        if not 0 <= frame_index - self._detected_at < self.every:
            return self._run_detector(image_bgr, frame_index, "interval")
        if previous_thumbnail is None or _mean_difference(previous_thumbnail, thumbnail) > self.cut_difference:
            return self._run_detector(image_bgr, frame_index, "cut")
        followed = [self._follow(face, image_bgr) for face in self._faces]
        if any(detection is None for detection in followed):
            return self._run_detector(image_bgr, frame_index, "unsure")
        for face, detection in zip(self._faces, followed):
            face.detection = detection  # type: ignore[assignment]
        return [face.detection for face in self._faces]

    def _run_detector(self, image_bgr: np.ndarray, frame_index: int, reason: str) -> list[Detection]:
        detections = self.detector.detect(image_bgr)
        self.detector_runs += 1
        self.reasons[reason] += 1
        self._detected_at = frame_index
        self._faces = [face for face in (_start_following(image_bgr, d) for d in detections) if face is not None]
        # A face too small or too flat to cut a template from cannot be followed: detect again on the next frame
        # rather than lose it.
        self._must_detect = len(self._faces) < len(detections)
        return detections

    def _follow(self, face: _FollowedFace, image_bgr: np.ndarray) -> Detection | None:
        """The face's detection moved to where its template matches best now; None when unsure."""
        frame_height, frame_width = image_bgr.shape[:2]
        box = face.detection.box.astype(np.float64)
        side = _box_side(box)
        search_left = max(0, math.floor(box[0] - SEARCH_MARGIN * side))
        search_top = max(0, math.floor(box[1] - SEARCH_MARGIN * side))
        search_right = min(frame_width, math.ceil(box[2] + SEARCH_MARGIN * side))
        search_bottom = min(frame_height, math.ceil(box[3] + SEARCH_MARGIN * side))
        window = _grey_region(image_bgr, search_left, search_top, search_right, search_bottom, face.step, face.scale)
        template_height, template_width = face.template.shape
        if window.shape[0] < template_height + 2 or window.shape[1] < template_width + 2:
            return None
        scores = cv2.matchTemplate(window, face.template, cv2.TM_CCOEFF_NORMED)
        _, best, _, (best_x, best_y) = cv2.minMaxLoc(scores)
        rows, columns = scores.shape
        if best < self.min_similarity or best_x in (0, columns - 1) or best_y in (0, rows - 1):
            return None
        offset_x = best_x + _parabola_peak(scores[best_y, best_x - 1 : best_x + 2])
        offset_y = best_y + _parabola_peak(scores[best_y - 1 : best_y + 2, best_x])
        pixels_per_unit = face.step / face.scale
        shift = np.array([
            search_left + offset_x * pixels_per_unit - face.template_origin[0],
            search_top + offset_y * pixels_per_unit - face.template_origin[1],
        ])
        moved = face.anchor_box + np.tile(shift, 2)
        if moved[0] < 0 or moved[1] < 0 or moved[2] > frame_width or moved[3] > frame_height:
            return None  # leaving the frame: the detector clips such boxes, following cannot
        detection = face.detection
        landmarks = None
        if detection.landmarks is not None:
            previous_shift = moved[:2] - box[:2]
            landmarks = detection.landmarks + previous_shift.astype(np.float32)
        return Detection(box=moved, score=detection.score, landmarks=landmarks)


def _start_following(image_bgr: np.ndarray, detection: Detection) -> _FollowedFace | None:
    """A face to follow from its detection, or None when its template would be too small to match."""
    box = detection.box.astype(np.float64)
    side = _box_side(box)
    target_scale = min(1.0, TEMPLATE_SIDE / side)
    step = max(1, int(1 / (2 * target_scale)))  # stride halfway, then resize with area averaging the rest
    scale = target_scale * step
    left, top = math.floor(box[0]), math.floor(box[1])
    right, bottom = math.ceil(box[2]), math.ceil(box[3])
    template = _grey_region(image_bgr, left, top, right, bottom, step, scale)
    if min(template.shape) < 8 or float(template.std()) < 1.0:  # tiny or flat: nothing to match on
        return None
    return _FollowedFace(detection, box, template, (left, top), step, scale)


def _grey_region(image_bgr: np.ndarray, left: int, top: int, right: int, bottom: int, step: int,
                 scale: float) -> np.ndarray:
    """Frame pixels [top:bottom, left:right] taken every ``step`` pixels, resized by ``scale``, grey float32."""
    region = np.ascontiguousarray(image_bgr[top:bottom:step, left:right:step])
    if region.size == 0:
        return np.zeros((0, 0), np.float32)
    if scale != 1.0:
        width = max(1, round(region.shape[1] * scale))
        height = max(1, round(region.shape[0] * scale))
        region = cv2.resize(region, (width, height), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(region, cv2.COLOR_BGR2GRAY).astype(np.float32)


def _thumbnail(image_bgr: np.ndarray) -> np.ndarray:
    """A small grey copy of the whole frame (every n-th pixel), to tell a scene cut."""
    stride = max(1, image_bgr.shape[1] // THUMBNAIL_WIDTH)
    return cv2.cvtColor(np.ascontiguousarray(image_bgr[::stride, ::stride]), cv2.COLOR_BGR2GRAY)


def _mean_difference(before: np.ndarray, after: np.ndarray) -> float:
    """Mean absolute grey difference of two thumbnails (infinite when their sizes differ)."""
    if before.shape != after.shape:
        return math.inf
    return float(cv2.absdiff(before, after).mean())


def _parabola_peak(values: np.ndarray) -> float:
    """Sub-pixel offset (-0.5..0.5) of the top of the parabola through three scores around a maximum."""
    left, centre, right = (float(value) for value in values)
    curvature = left - 2 * centre + right
    if curvature >= 0:
        return 0.0
    return float(np.clip(0.5 * (left - right) / curvature, -0.5, 0.5))


def _box_side(box: np.ndarray) -> float:
    """Geometric mean of a box's width and height."""
    return float(math.sqrt(max(box[2] - box[0], 1e-6) * max(box[3] - box[1], 1e-6)))
