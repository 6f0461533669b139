"""Linking face detections across analysed frames into tracks with stable ids."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from fakescope.faces.detection import Detection

# Cost given to pairs that may not be matched; larger than any allowed pair's cost.
_FORBIDDEN_COST = 1e6
# Weight of the previous velocity when a track's velocity is updated (smooths detector jitter).
_VELOCITY_SMOOTHING = 0.5


@dataclass
class TrackedFace:
    """A detection together with the id of the track it belongs to."""

    track_id: int
    detection: Detection


@dataclass
class _Track:
    track_id: int
    box: np.ndarray  # last matched box, float64 x1, y1, x2, y2
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))  # centre pixels per analysed frame
    missed: int = 0
    matches: int = 1

    def predicted_box(self) -> np.ndarray:
        """The last box moved by the track's velocity for the frames since it was last seen."""
        shift = self.velocity * (self.missed + 1)
        return self.box + np.concatenate([shift, shift])


def _box_centre(box: np.ndarray) -> np.ndarray:
    return np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])


def _box_side(box: np.ndarray) -> float:
    """Geometric mean of width and height: a scale for distances that ignores aspect ratio."""
    return float(np.sqrt(max(box[2] - box[0], 1e-6) * max(box[3] - box[1], 1e-6)))


def box_iou(box_a: np.ndarray, box_b: np.ndarray) -> float:
    """Intersection over union of two x1, y1, x2, y2 boxes."""
    inter_w = min(box_a[2], box_b[2]) - max(box_a[0], box_b[0])
    inter_h = min(box_a[3], box_b[3]) - max(box_a[1], box_b[1])
    if inter_w <= 0 or inter_h <= 0:
        return 0.0
    intersection = inter_w * inter_h
    area_a = (box_a[2] - box_a[0]) * (box_a[3] - box_a[1])
    area_b = (box_b[2] - box_b[0]) * (box_b[3] - box_b[1])
    return float(intersection / (area_a + area_b - intersection))


class FaceTracker:
    """Links detections frame to frame so each person keeps a stable id (0, 1, 2, ... by first appearance).

    Each live track predicts where its face is now (last box moved at its recent velocity, which keeps
    ids apart when faces cross). A detection may join a track when its IoU with that prediction is at
    least ``iou_threshold`` or, since faces move a lot between sparsely sampled frames, when its centre
    lies within ``max_centre_distance`` face sizes of the predicted centre; in both cases the two boxes'
    sizes must differ by at most ``max_size_ratio``. Among allowed pairs, the assignment minimising
    ``(1 - IoU) + centre distance`` wins (Hungarian). Unmatched detections start new tracks; a track
    survives ``max_missed`` analysed frames without a match and ends on the next miss.
    """

    def __init__(
        self,
        iou_threshold: float = 0.3,
        max_missed: int = 5,
        max_centre_distance: float = 1.0,
        max_size_ratio: float = 2.0,
    ) -> None:
        if max_missed < 0:
            raise ValueError(f"max_missed must be >= 0, got {max_missed}")
        if max_size_ratio < 1:
            raise ValueError(f"max_size_ratio must be >= 1, got {max_size_ratio}")
        self.iou_threshold = float(iou_threshold)
        self.max_missed = int(max_missed)
        self.max_centre_distance = float(max_centre_distance)
        self.max_size_ratio = float(max_size_ratio)
        self._tracks: list[_Track] = []
        self._finished: list[int] = []
        self._next_id = 0

    @property
    def live_track_ids(self) -> list[int]:
        """Ids of the tracks still alive, in order of first appearance."""
        return [track.track_id for track in self._tracks]

    def update(self, detections: list[Detection]) -> list[TrackedFace]:
        """Assign every detection of the next analysed frame to a track; result in the input order."""
        boxes = [np.asarray(detection.box, dtype=np.float64) for detection in detections]
        matches = self._match(boxes)
        matched_tracks = set(matches.values())

        survivors = []
        for track_index, track in enumerate(self._tracks):
            if track_index in matched_tracks:
                survivors.append(track)
                continue
            track.missed += 1
            if track.missed > self.max_missed:
                self._finished.append(track.track_id)
            else:
                survivors.append(track)

        result = []
        for detection_index, (detection, box) in enumerate(zip(detections, boxes)):
            track_index = matches.get(detection_index)
            if track_index is None:
                track = _Track(track_id=self._next_id, box=box)
                self._next_id += 1
                survivors.append(track)
            else:
                track = self._tracks[track_index]
                self._follow(track, box)
            result.append(TrackedFace(track_id=track.track_id, detection=detection))

        self._tracks = survivors  # still in id order: new tracks were appended with increasing ids
        return result

    def pop_finished(self) -> list[int]:
        """Ids of the tracks that ended since the last call (each reported once)."""
        finished, self._finished = self._finished, []
        return finished

    def finish(self) -> list[int]:
        """End of media: end every live track.

        Returns the ids ended but not yet popped, then every still-live id, so that a caller flushing
        per-track buffers only at the end loses none; ``pop_finished`` then returns nothing.
        """
        ended = self._finished + self.live_track_ids
        self._finished = []
        self._tracks = []
        return ended

    def _follow(self, track: _Track, box: np.ndarray) -> None:
        frames_elapsed = track.missed + 1
        step = (_box_centre(box) - _box_centre(track.box)) / frames_elapsed
        if track.matches == 1:
            track.velocity = step
        else:
            track.velocity = _VELOCITY_SMOOTHING * track.velocity + (1 - _VELOCITY_SMOOTHING) * step
        track.box = box
        track.missed = 0
        track.matches += 1

    def _match(self, boxes: list[np.ndarray]) -> dict[int, int]:
        """Detection index -> track index for the allowed pairs of the lowest total cost."""
        if not boxes or not self._tracks:
            return {}
        cost = np.full((len(boxes), len(self._tracks)), _FORBIDDEN_COST)
        for track_index, track in enumerate(self._tracks):
            predicted = track.predicted_box()
            predicted_centre = _box_centre(predicted)
            predicted_side = _box_side(predicted)
            for detection_index, box in enumerate(boxes):
                side = _box_side(box)
                if max(side, predicted_side) > self.max_size_ratio * min(side, predicted_side):
                    continue
                iou = box_iou(predicted, box)
                centre_distance = float(np.linalg.norm(_box_centre(box) - predicted_centre)) / predicted_side
                if iou >= self.iou_threshold or centre_distance <= self.max_centre_distance:
                    cost[detection_index, track_index] = (1.0 - iou) + centre_distance
        detection_indices, track_indices = linear_sum_assignment(cost)
        return {
            int(d): int(t)
            for d, t in zip(detection_indices, track_indices)
            if cost[d, t] < _FORBIDDEN_COST
        }
