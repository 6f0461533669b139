"""The records of a scan result (frames, faces, tracks, verdict) and how frame scores become a verdict.

Neutral ground: the analysis fills these records, the writers of every output read them."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Verdict = Literal["real", "fake", "no_face", "error", "skipped"]
VERDICTS = ("real", "fake", "no_face", "error", "skipped")
"""``skipped``: an entry of a scanned directory that is not a video or image, listed with its reason."""

AGGREGATIONS = {
    "max_track": "each track scores the mean p_fake of its frames; the input takes its most fake track "
    "(one swapped face makes a video fake). Tracks shorter than a tenth of the longest are ignored as detector noise.",
    "longest_track": "the mean p_fake of the longest track (the main subject).",
    "mean_frames": "the mean p_fake over every analysed face in every frame.",
}
DEFAULT_AGGREGATION = "max_track"
# A track this much shorter than the longest is treated as a spurious detection when aggregating.
MIN_TRACK_FRACTION = 0.1


class ScanFailure(RuntimeError):
    """A failure of one input with a reason for its report (an output that cannot be written, say), not a bug."""


CSV_COLUMNS = ["frame_index", "time_s", "track_id", "x1", "y1", "x2", "y2", "p_fake", "label"]


@dataclass
class FaceRecord:
    """One analysed face in one frame."""

    frame_index: int
    time_s: float
    track_id: int
    box: tuple[float, float, float, float]
    detection_score: float
    p_fake: float | None = None


@dataclass
class FrameRecord:
    """An analysed frame and the faces found in it (none: a no-face frame, recorded as such)."""

    frame_index: int
    time_s: float
    faces: list[FaceRecord] = field(default_factory=list)


@dataclass
class TrackSummary:
    track_id: int
    frames: int
    first_frame: int
    last_frame: int
    p_fake: float
    p_fake_max: float
    label: str
    counted: bool  # whether it took part in the input's verdict

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def label_for(p_fake: float, threshold: float) -> str:
    return "fake" if p_fake >= threshold else "real"


def summarise_tracks(frames: list[FrameRecord], threshold: float) -> list[TrackSummary]:
    per_track: dict[int, list[FaceRecord]] = {}
    for frame in frames:
        for face in frame.faces:
            if face.p_fake is not None:
                per_track.setdefault(face.track_id, []).append(face)
    if not per_track:
        return []
    longest = max(len(faces) for faces in per_track.values())
    min_frames = max(1, math.ceil(MIN_TRACK_FRACTION * longest))
    tracks = []
    for track_id, faces in sorted(per_track.items()):
        scores = [face.p_fake for face in faces]
        mean = sum(scores) / len(scores)
        tracks.append(
            TrackSummary(
                track_id=track_id,
                frames=len(faces),
                first_frame=faces[0].frame_index,
                last_frame=faces[-1].frame_index,
                p_fake=mean,
                p_fake_max=max(scores),
                label=label_for(mean, threshold),
                counted=len(faces) >= min_frames,
            )
        )
    return tracks


def aggregate(frames: list[FrameRecord], tracks: list[TrackSummary], method: str) -> float | None:
    """The input's p_fake from its frames and tracks (None when no face was analysed)."""
    if method not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {method!r}; choose from {', '.join(AGGREGATIONS)}")
    counted = [track for track in tracks if track.counted]
    if not counted:
        return None
    if method == "max_track":
        return max(track.p_fake for track in counted)
    if method == "longest_track":
        return max(counted, key=lambda track: (track.frames, -track.track_id)).p_fake
    scores = [face.p_fake for frame in frames for face in frame.faces if face.p_fake is not None]
    return sum(scores) / len(scores)


def csv_rows(frames: list[FrameRecord], threshold: float) -> list[list[Any]]:
    """Rows for predictions.csv: one per face per analysed frame, one per frame without a face."""
    rows: list[list[Any]] = []
    for frame in frames:
        time_s = round(frame.time_s, 4)
        if not frame.faces:
            rows.append([frame.frame_index, time_s, "", "", "", "", "", "", "no_face"])
            continue
        for face in frame.faces:
            x1, y1, x2, y2 = (round(v, 1) for v in face.box)
            p_fake = "" if face.p_fake is None else round(face.p_fake, 5)
            label = "" if face.p_fake is None else label_for(face.p_fake, threshold)
            rows.append([frame.frame_index, time_s, face.track_id, x1, y1, x2, y2, p_fake, label])
    return rows


@dataclass
class ScanResult:
    """Everything a scan of one input produced: the same data as its summary.json and predictions.csv."""

    input: str
    verdict: Verdict
    reason: str | None = None
    p_fake: float | None = None
    threshold: float = 0.5
    aggregation: str = DEFAULT_AGGREGATION
    kind: str | None = None
    media: dict[str, Any] = field(default_factory=dict)
    selection: str = ""
    frames_decoded: int = 0
    frames_analysed: int = 0
    frames_with_faces: int = 0
    frames_rendered: int = 0
    tracks: list[TrackSummary] = field(default_factory=list)
    model: dict[str, Any] = field(default_factory=dict)
    timing: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)  # paths as strings; lists of them for many files
    options: dict[str, Any] = field(default_factory=dict)  # {"faces": {...}, "analysis": {...}, "outputs": {...}}
    frames: list[FrameRecord] = field(default_factory=list, repr=False)

    @property
    def ok(self) -> bool:
        """Not a failure: scanned (real, fake, no_face), or skipped as not being media."""
        return self.verdict != "error"

    @property
    def scanned(self) -> bool:
        return self.verdict in ("real", "fake", "no_face")

    @property
    def face_ratio(self) -> float:
        return self.frames_with_faces / self.frames_analysed if self.frames_analysed else 0.0

    def to_summary(self) -> dict[str, Any]:
        """The summary.json content (without per-frame records)."""
        return {
            "input": self.input,
            "verdict": self.verdict,
            "reason": self.reason,
            "p_fake": None if self.p_fake is None else round(self.p_fake, 5),
            "threshold": self.threshold,
            "aggregation": self.aggregation,
            "aggregation_rule": AGGREGATIONS.get(self.aggregation, ""),
            "kind": self.kind,
            "media": self.media,
            "selection": self.selection,
            "frames_decoded": self.frames_decoded,
            "frames_analysed": self.frames_analysed,
            "frames_with_faces": self.frames_with_faces,
            "face_ratio": round(self.face_ratio, 4),
            "frames_rendered": self.frames_rendered,
            "tracks": [track.to_dict() for track in self.tracks],
            "model": self.model,
            "timing": self.timing,
            "warnings": self.warnings,
            "outputs": self.outputs,
            "options": self.options,
        }
