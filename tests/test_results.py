"""From frame scores to track scores and a verdict, and the CSV rows."""
from __future__ import annotations

import pytest

from fakescope.results import (
    FaceRecord,
    FrameRecord,
    aggregate,
    csv_rows,
    summarise_tracks,
)


def _frames(scores_by_track: dict[int, list[float]], no_face_frames: int = 0) -> list[FrameRecord]:
    length = max(len(scores) for scores in scores_by_track.values())
    frames = []
    for index in range(length):
        frame = FrameRecord(index, index / 25.0)
        for track_id, scores in scores_by_track.items():
            if index < len(scores):
                frame.faces.append(FaceRecord(index, index / 25.0, track_id, (0, 0, 10, 10), 0.9, scores[index]))
        frames.append(frame)
    for extra in range(no_face_frames):
        frames.append(FrameRecord(length + extra, (length + extra) / 25.0))
    return frames


def test_track_scores_are_means_and_video_takes_the_most_fake_track():
    frames = _frames({0: [0.1, 0.2, 0.3, 0.2], 1: [0.9, 0.7, 0.8, 0.6]})
    tracks = summarise_tracks(frames, threshold=0.5)
    assert [round(t.p_fake, 4) for t in tracks] == [0.2, 0.75]
    assert [t.label for t in tracks] == ["real", "fake"]
    assert tracks[1].p_fake_max == 0.9
    assert aggregate(frames, tracks, "max_track") == pytest.approx(0.75)
    assert aggregate(frames, tracks, "mean_frames") == pytest.approx(0.475)


def test_spurious_short_tracks_do_not_decide_the_verdict():
    frames = _frames({0: [0.1] * 40, 1: [0.99, 0.99]})
    tracks = summarise_tracks(frames, threshold=0.5)
    assert [t.counted for t in tracks] == [True, False]
    assert aggregate(frames, tracks, "max_track") == pytest.approx(0.1)
    assert aggregate(frames, tracks, "longest_track") == pytest.approx(0.1)


def test_no_faces_gives_no_score_and_unknown_method_fails():
    frames = [FrameRecord(0, 0.0), FrameRecord(1, 0.04)]
    assert summarise_tracks(frames, 0.5) == []
    assert aggregate(frames, [], "max_track") is None
    with pytest.raises(ValueError, match="unknown aggregation"):
        aggregate(frames, [], "median")


def test_csv_rows_mark_frames_without_a_face():
    frames = _frames({0: [0.2, 0.8]}, no_face_frames=1)
    rows = csv_rows(frames, threshold=0.5)
    assert [row[-1] for row in rows] == ["real", "fake", "no_face"]
    assert rows[2][0] == 2 and rows[2][2:8] == ["", "", "", "", "", ""]
    assert rows[1][:3] == [1, 0.04, 0]
