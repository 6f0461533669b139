"""Scanning labelled videos with a detector and measuring it: what ``fakescope evaluate`` runs."""
from __future__ import annotations

import csv
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from ..data.items import VideoItem
from .metrics import evaluate_predictions
from .report import write_evaluation_report

if TYPE_CHECKING:
    from ..analysis import Scanner
    from ..results import ScanResult

FRAME_COLUMNS = ["key", "dataset", "method", "label", "frame_index", "time_s", "track_id", "p_fake"]
VIDEO_COLUMNS = [
    "key", "dataset", "method", "label", "verdict", "p_fake", "correct", "frames_analysed", "frames_with_faces",
    "reason", "path",
]
SCORED_VERDICTS = ("real", "fake")


@dataclass
class EvaluationResult:
    """Metrics of one evaluation run and the per-frame and per-video rows they were computed from."""

    metrics: dict[str, Any]
    frame_rows: list[dict[str, Any]]  # one per analysed face of the scored videos: the frame-level samples
    video_rows: list[dict[str, Any]]  # one per video; p_fake is None for a video that was not scored
    threshold: float
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def not_scored(self) -> list[dict[str, Any]]:
        return [row for row in self.video_rows if row["p_fake"] is None]

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [row for row in self.video_rows if row["verdict"] == "error"]

    def roc_data(self) -> dict[str, tuple[list[int], list[float]]]:
        """Labels and scores of the scored samples per level, for ROC curves."""
        videos = [row for row in self.video_rows if row["p_fake"] is not None]
        return {
            "frame_level": ([row["label"] for row in self.frame_rows], [row["p_fake"] for row in self.frame_rows]),
            "video_level": ([row["label"] for row in videos], [row["p_fake"] for row in videos]),
        }

    def write_report(self, out_dir: str | Path, title: str, inputs: dict[str, Any] | None = None) -> dict[str, Path]:
        """Write metrics.json, metrics.md, roc.png and confusion.png into ``out_dir``."""
        paths = write_evaluation_report(self.metrics, Path(out_dir), self.roc_data(), title, inputs)
        self.files.update(paths)
        return paths


def _video_key(item: VideoItem) -> str:
    return item.key or str(item.path)


def frame_rows_for(item: VideoItem, result: ScanResult) -> list[dict[str, Any]]:
    """A row per analysed face of the tracks that counted in the verdict, labelled with the video's label."""
    counted = {track.track_id for track in result.tracks if track.counted}
    rows = []
    for frame in result.frames:
        for face in frame.faces:
            if face.p_fake is None or face.track_id not in counted:
                continue
            rows.append({
                "key": _video_key(item), "dataset": item.dataset, "method": item.method, "label": item.label,
                "frame_index": frame.frame_index, "time_s": round(frame.time_s, 4), "track_id": face.track_id,
                "p_fake": float(face.p_fake),
            })
    return rows


def video_row_for(item: VideoItem, result: ScanResult) -> dict[str, Any]:
    """The video's row; only a real/fake verdict gives it a score (a file that failed midway keeps none)."""
    scored = result.verdict in SCORED_VERDICTS and result.p_fake is not None
    return {
        "key": _video_key(item), "dataset": item.dataset, "method": item.method, "label": item.label,
        "verdict": result.verdict,
        "p_fake": float(result.p_fake) if scored else None,
        "correct": int(result.verdict == item.label_name) if scored else None,
        "frames_analysed": result.frames_analysed, "frames_with_faces": result.frames_with_faces,
        "reason": result.reason, "path": str(item.path),
    }


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return round(value, 6)
    return value


def evaluate_videos(
    detector: Scanner,
    items: Sequence[VideoItem],
    progress: bool = True,
    save_predictions_dir: Path | None = None,
) -> EvaluationResult:
    """Scan every item (without per-video output files) and measure the detector at frame and video level.

    Videos whose verdict is no_face or error are left out of the metrics (both levels), listed with their reason
    and counted as not scored. With ``save_predictions_dir``, ``predictions.csv`` (frame level) and ``videos.csv``
    (video level) are written there as the scans go, so an interrupted run keeps what it did.
    """
    threshold = detector.threshold
    frame_rows: list[dict[str, Any]] = []
    video_rows: list[dict[str, Any]] = []
    files: dict[str, Path] = {}
    with ExitStack() as stack:
        writers: dict[str, csv.DictWriter] = {}
        if save_predictions_dir is not None:
            out = Path(save_predictions_dir)
            out.mkdir(parents=True, exist_ok=True)
            for name, filename, columns in (
                ("predictions", "predictions.csv", FRAME_COLUMNS), ("videos", "videos.csv", VIDEO_COLUMNS)
            ):
                files[name] = out / filename
                handle = stack.enter_context(open(files[name], "w", newline="", encoding="utf-8"))
                writers[name] = csv.DictWriter(handle, fieldnames=columns)
                writers[name].writeheader()

        bar = stack.enter_context(tqdm(items, desc="evaluate", unit="video", disable=not progress))
        for item in bar:
            result = detector.scan(item.path)
            video_row = video_row_for(item, result)
            new_frame_rows = frame_rows_for(item, result) if video_row["p_fake"] is not None else []
            video_rows.append(video_row)
            frame_rows.extend(new_frame_rows)
            if writers:
                writers["predictions"].writerows([{k: _csv_value(v) for k, v in row.items()} for row in new_frame_rows])
                writers["videos"].writerow({k: _csv_value(v) for k, v in video_row.items()})
            bar.set_postfix(not_scored=sum(row["p_fake"] is None for row in video_rows), refresh=False)

    metrics = evaluate_predictions(frame_rows, video_rows, threshold)
    not_scored = [row for row in video_rows if row["p_fake"] is None]
    metrics["videos"] = {
        "total": len(video_rows),
        "scored": len(video_rows) - len(not_scored),
        "not_scored": len(not_scored),
        "no_face": sum(row["verdict"] == "no_face" for row in not_scored),
        "failed": sum(row["verdict"] == "error" for row in not_scored),
    }
    metrics["not_scored_videos"] = [
        {name: row[name] for name in ("key", "dataset", "method", "label", "verdict", "reason", "path")}
        for row in not_scored
    ]
    return EvaluationResult(metrics, frame_rows, video_rows, threshold, files)
