"""Face-crop cache for training: sample frames, detect and track faces, save crops, and index them.

Layout of ``cache_dir``:
  crops/<safe key>/<frame:06d>_t<track>.jpg   face crops (RGB content, JPEG quality 95)
  videos/<safe key>.json                      per-video status, written last: its presence marks the video done
  index.csv                                   one row per crop of this run's videos (see INDEX_COLUMNS)
  preprocess.json                             the arguments and the summary of the last run
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
import multiprocessing
import os
import re
import shutil
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
from tqdm import tqdm

from fakescope.data.datasets import summarise
from fakescope.data.items import VideoItem
from fakescope.faces import FaceDetector, FaceTracker, create_face_detector, crop_face
from fakescope.video import FrameSelection, MediaError, MediaReader

logger = logging.getLogger(__name__)

STATUSES = ("ok", "no_face", "error")
DONE_STATUSES = frozenset({"ok", "no_face"})
INDEX_COLUMNS = (
    "key", "path", "label", "dataset", "method", "group", "split", "source",
    "frame_index", "time_s", "track_id", "x1", "y1", "x2", "y2", "crop", "kind",
)
JPEG_QUALITY = 95
_MAX_SAFE_KEY_LENGTH = 180  # leaves room for ".json" and temp-file affixes under the usual 255-byte name limit

TrackMode = Literal["main", "all"]


@dataclass(frozen=True)
class CropSettings:
    """Everything that determines a video's crops: cached results are reused only when these match."""

    selection: FrameSelection
    margin: float
    size: int
    detector_max_side: int
    tracks: TrackMode

    def to_dict(self) -> dict[str, Any]:
        return {
            "selection": {"mode": self.selection.mode, "value": self.selection.value},
            "margin": self.margin,
            "size": self.size,
            "detector_max_side": self.detector_max_side,
            "tracks": self.tracks,
        }


@dataclass(frozen=True)
class CropRecord:
    """One row of ``index.csv``: a face crop with its video's labels; ``crop`` is absolute."""

    key: str
    path: Path
    label: int
    dataset: str
    method: str
    group: str
    split: str | None
    source: str | None
    frame_index: int
    time_s: float
    track_id: int
    x1: float
    y1: float
    x2: float
    y2: float
    crop: Path
    kind: str = "video"


@dataclass
class PreprocessReport:
    """What a run did. ``failures`` lists (key, status, reason) for every video not "ok" (no_face and error)."""

    cache_dir: Path
    videos: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    reused: int = 0  # videos whose finished results from an earlier run were kept
    crops: int = 0
    failures: list[tuple[str, str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def index_path(self) -> Path:
        return self.cache_dir / "index.csv"

    def to_dict(self) -> dict[str, Any]:
        return {
            "videos": self.videos,
            "counts": dict(self.counts),
            "reused": self.reused,
            "crops": self.crops,
            "failures": [{"key": key, "status": status, "reason": reason} for key, status, reason in self.failures],
            "seconds": round(self.seconds, 2),
        }


def safe_key(item: VideoItem) -> str:
    """A file-name-safe, readable id for a video: dataset and key with "/" as "__"."""
    text = f"{item.dataset}__{item.key.replace('/', '__')}"
    text = re.sub(r"[^A-Za-z0-9._-]", "_", text)
    if len(text) > _MAX_SAFE_KEY_LENGTH:
        digest = hashlib.sha1(text.encode()).hexdigest()[:12]
        text = f"{text[: _MAX_SAFE_KEY_LENGTH - 13]}-{digest}"
    return text


def status_path(cache_dir: Path, item: VideoItem) -> Path:
    return cache_dir / "videos" / f"{safe_key(item)}.json"


# ---------------------------------------------------------------------------------------------------------------
# One video


@dataclass
class _Face:
    frame_index: int
    time_s: float
    track_id: int
    box: tuple[float, float, float, float]
    jpeg: bytes


def _collect_faces(path: Path, settings: CropSettings, detector: FaceDetector) -> tuple[int, list[_Face]]:
    """Stream the selected frames, detect and track faces, and JPEG-encode a crop of each (kept in memory so that
    only the chosen tracks ever reach the disk). Returns (frames sampled, faces)."""
    faces: list[_Face] = []
    sampled = 0
    tracker = FaceTracker()
    with MediaReader(path, selection=settings.selection, decode_all=False) as reader:
        for frame in reader:
            sampled += 1
            for tracked in tracker.update(detector.detect(frame.image)):
                box = tracked.detection.box
                crop_rgb = crop_face(frame.image, box, margin=settings.margin, size=settings.size)
                ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(crop_rgb, cv2.COLOR_RGB2BGR),
                                           [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
                if not ok:
                    raise RuntimeError(f"JPEG encoding failed for frame {frame.index}")
                faces.append(_Face(frame.index, frame.time_s, tracked.track_id,
                                   tuple(float(value) for value in box), encoded.tobytes()))
        if reader.decode_error:
            raise MediaError(reader.decode_error)
    tracker.finish()
    return sampled, faces


def _main_track(faces: list[_Face]) -> int:
    """The track with the most detections; ties go to the largest mean box area, then the lowest id."""
    counts: Counter[int] = Counter()
    areas: defaultdict[int, float] = defaultdict(float)
    for face in faces:
        x1, y1, x2, y2 = face.box
        counts[face.track_id] += 1
        areas[face.track_id] += (x2 - x1) * (y2 - y1)
    return max(counts, key=lambda track: (counts[track], areas[track] / counts[track], -track))


def process_video(item: VideoItem, cache_dir: Path, settings: CropSettings, detector: FaceDetector) -> dict[str, Any]:
    """Crop one video into the cache from scratch and write its status file last; never raises for a bad video.

    Returns the status record: key, status, reason, frames_sampled, faces, tracks, crops, settings, seconds and
    ``rows`` (one per crop: frame_index, time_s, track_id, x1..y2, crop relative to ``cache_dir``).
    """
    started = time.perf_counter()
    name = safe_key(item)
    crops_dir = cache_dir / "crops" / name
    # Leftovers of an interrupted or outdated run would otherwise mix with the new crops.
    shutil.rmtree(crops_dir, ignore_errors=True)
    record: dict[str, Any] = {
        "key": item.key, "dataset": item.dataset, "path": str(item.path), "status": "ok", "reason": "",
        "frames_sampled": 0, "faces": 0, "tracks": 0, "crops": 0, "settings": settings.to_dict(), "rows": [],
    }
    try:
        sampled, faces = _collect_faces(item.path, settings, detector)
        record.update(frames_sampled=sampled, faces=len(faces), tracks=len({face.track_id for face in faces}))
        if sampled == 0:
            raise MediaError("no frame could be decoded")
        if not faces:
            record.update(status="no_face", reason=f"no face found in {sampled} sampled frames")
        else:
            if settings.tracks == "main":
                kept_track = _main_track(faces)
                record["main_track"] = kept_track
                faces = [face for face in faces if face.track_id == kept_track]
            crops_dir.mkdir(parents=True, exist_ok=True)
            for face in sorted(faces, key=lambda face: (face.frame_index, face.track_id)):
                crop_name = f"{face.frame_index:06d}_t{face.track_id}.jpg"
                (crops_dir / crop_name).write_bytes(face.jpeg)
                x1, y1, x2, y2 = (round(value, 2) for value in face.box)
                record["rows"].append({
                    "frame_index": face.frame_index, "time_s": round(face.time_s, 6), "track_id": face.track_id,
                    "x1": x1, "y1": y1, "x2": x2, "y2": y2, "crop": f"crops/{name}/{crop_name}",
                })
            record["crops"] = len(record["rows"])
    except Exception as error:  # noqa: BLE001 - any failure is this video's result, never the run's end
        logger.debug("preprocessing %s failed", item.path, exc_info=True)
        reason = str(error) if isinstance(error, MediaError) else f"{type(error).__name__}: {error}"
        shutil.rmtree(crops_dir, ignore_errors=True)
        record.update(status="error", reason=reason or type(error).__name__, crops=0, rows=[])
    record["seconds"] = round(time.perf_counter() - started, 3)
    _write_atomically(status_path(cache_dir, item), json.dumps(record, indent=1))
    return record


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def _finished_record(cache_dir: Path, item: VideoItem, settings: CropSettings) -> dict[str, Any] | None:
    """The status record of an earlier run if it finished this video with the same settings and its crops are
    all still there; else None (the video is then redone)."""
    path = status_path(cache_dir, item)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if (
        record.get("status") not in DONE_STATUSES
        or record.get("key") != item.key
        or record.get("dataset") != item.dataset
        or record.get("settings") != settings.to_dict()
    ):
        return None
    if not all((cache_dir / row["crop"]).is_file() for row in record.get("rows", [])):
        return None
    return record


# ---------------------------------------------------------------------------------------------------------------
# Worker processes

_worker_detector: FaceDetector | None = None
_worker_start_error: str | None = None


def _init_worker(detector_max_side: int) -> None:
    global _worker_detector, _worker_start_error
    # Each worker is one of N parallel processes: OpenCV's and FFmpeg's own threads would only oversubscribe the
    # cores. FFmpeg's decoder thread count is read from the environment when a video is opened.
    cv2.setNumThreads(1)
    os.environ.setdefault("OPENCV_FFMPEG_THREADS", "1")
    try:
        _worker_detector = create_face_detector("yunet", max_side=detector_max_side)
    except Exception as error:  # noqa: BLE001 - raising here would make the pool restart workers forever
        _worker_start_error = f"{type(error).__name__}: {error}"


def _work(task: tuple[VideoItem, Path, CropSettings]) -> dict[str, Any]:
    item, cache_dir, settings = task
    if _worker_detector is None:
        raise RuntimeError(f"the face detector could not be created in a worker process: {_worker_start_error}")
    return process_video(item, cache_dir, settings, _worker_detector)


# ---------------------------------------------------------------------------------------------------------------
# The run


def preprocess(
    items: list[VideoItem],
    cache_dir: Path,
    selection: FrameSelection,
    workers: int = 1,
    margin: float = 1.3,
    size: int = 224,
    detector_max_side: int = 640,
    tracks: TrackMode = "main",
    progress: bool = True,
) -> PreprocessReport:
    """Crop the faces of ``items`` into ``cache_dir`` (resumable) and write ``index.csv`` and ``preprocess.json``.

    Videos already finished (ok or no_face) with the same settings are skipped; a failing video is recorded as
    "error" with its reason and the run goes on. ``tracks="main"`` keeps only each video's main face track.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if tracks not in ("main", "all"):
        raise ValueError(f"tracks must be 'main' or 'all', got {tracks!r}")
    started = time.perf_counter()
    cache_dir = Path(cache_dir).absolute()
    items = sorted(set(items), key=lambda item: (item.dataset, item.key))
    _check_unique_names(items)
    settings = CropSettings(selection, float(margin), int(size), int(detector_max_side), tracks)
    records, pending = _reusable_records(items, cache_dir, settings)
    report = PreprocessReport(cache_dir=cache_dir, videos=len(items), reused=len(records))
    _crop_pending(pending, records, len(items), cache_dir, settings, workers, progress)
    ordered = [records[safe_key(item)] for item in items]
    _count(report, ordered)
    _write_index(cache_dir, items, ordered)
    report.seconds = time.perf_counter() - started
    _write_run_description(cache_dir, items, settings, workers, report)
    return report


def _reusable_records(items: list[VideoItem], cache_dir: Path,
                      settings: CropSettings) -> tuple[dict[str, dict[str, Any]], list[VideoItem]]:
    """The records of videos already finished with these settings (by safe key), and the videos still to crop."""
    records: dict[str, dict[str, Any]] = {}
    pending: list[VideoItem] = []
    for item in items:
        record = _finished_record(cache_dir, item, settings)
        if record is None:
            pending.append(item)
        else:
            records[safe_key(item)] = record
    return records, pending


def _crop_pending(pending: list[VideoItem], records: dict[str, dict[str, Any]], total: int, cache_dir: Path,
                  settings: CropSettings, workers: int, progress: bool) -> None:
    """Crop the faces of ``pending`` (in this process, or in ``workers`` spawned ones), adding their records."""
    bar = tqdm(total=total, initial=len(records), unit="video", desc="preprocess", disable=not progress)
    status_counts = Counter(record["status"] for record in records.values())

    def finished(item_name: str, record: dict[str, Any]) -> None:
        records[item_name] = record
        status_counts[record["status"]] += 1
        bar.set_postfix({status: status_counts[status] for status in STATUSES}, refresh=False)
        bar.update()

    try:
        if pending and workers == 1:
            detector = create_face_detector("yunet", max_side=settings.detector_max_side)
            for item in pending:
                finished(safe_key(item), process_video(item, cache_dir, settings, detector))
        elif pending:
            _crop_in_workers(pending, cache_dir, settings, workers, finished)
    finally:
        bar.close()


def _crop_in_workers(pending: list[VideoItem], cache_dir: Path, settings: CropSettings, workers: int,
                     finished: Callable[[str, dict[str, Any]], None]) -> None:
    # Spawn, not fork: forking a process that has OpenCV/torch threads running can deadlock the child.
    context = multiprocessing.get_context("spawn")
    names = {(item.dataset, item.key): safe_key(item) for item in pending}
    tasks = [(item, cache_dir, settings) for item in pending]
    # An executor, unlike multiprocessing.Pool, fails loudly when a worker dies instead of waiting forever.
    with ProcessPoolExecutor(min(workers, len(pending)), mp_context=context, initializer=_init_worker,
                             initargs=(settings.detector_max_side,)) as pool:
        futures = [pool.submit(_work, task) for task in tasks]
        try:
            for future in as_completed(futures):
                record = future.result()
                finished(names[(record["dataset"], record["key"])], record)
        except BrokenProcessPool as error:
            raise RuntimeError(
                "a preprocessing worker process died (out of memory?); finished videos are kept in the "
                "cache: run the same command again to resume"
            ) from error


def _count(report: PreprocessReport, records: list[dict[str, Any]]) -> None:
    for record in records:
        report.counts[record["status"]] += 1
        report.crops += record["crops"]
        if record["status"] != "ok":
            report.failures.append((record["key"], record["status"], record["reason"]))


def _write_run_description(cache_dir: Path, items: list[VideoItem], settings: CropSettings, workers: int,
                           report: PreprocessReport) -> None:
    """preprocess.json: the settings, the data and the summary of this run."""
    run_description = {
        "arguments": {
            **settings.to_dict(),
            "selection_description": settings.selection.describe(),
            "workers": workers,
            "cache_dir": str(cache_dir),
        },
        "data": summarise(items) if items else {},
        "summary": report.to_dict(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    _write_atomically(cache_dir / "preprocess.json", json.dumps(run_description, indent=1))


def _check_unique_names(items: list[VideoItem]) -> None:
    seen: dict[str, VideoItem] = {}
    for item in items:
        name = safe_key(item)
        other = seen.setdefault(name, item)
        if other != item:
            raise ValueError(f"two videos map to the same cache name {name!r}: {other.path} and {item.path}")


def _write_index(cache_dir: Path, items: list[VideoItem], records: list[dict[str, Any]]) -> None:
    """Rewrite index.csv from the videos' status records, with each video's current labels and split."""
    path = cache_dir / "index.csv"
    cache_dir.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temporary.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(INDEX_COLUMNS)
        for item, record in zip(items, records):
            video = [item.key, str(item.path), item.label, item.dataset, item.method, item.group,
                     item.split or "", item.source or ""]
            for row in record["rows"]:
                writer.writerow([*video, row["frame_index"], row["time_s"], row["track_id"],
                                 row["x1"], row["y1"], row["x2"], row["y2"], row["crop"], item.kind])
    os.replace(temporary, path)


def load_index(cache_dir: Path) -> list[CropRecord]:
    """The crops listed in ``cache_dir/index.csv``, with absolute crop paths."""
    cache_dir = Path(cache_dir).absolute()
    records = []
    with (cache_dir / "index.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            records.append(CropRecord(
                key=row["key"], path=Path(row["path"]), label=int(row["label"]), dataset=row["dataset"],
                method=row["method"], group=row["group"], split=row["split"] or None, source=row["source"] or None,
                frame_index=int(row["frame_index"]), time_s=float(row["time_s"]), track_id=int(row["track_id"]),
                x1=float(row["x1"]), y1=float(row["y1"]), x2=float(row["x2"]), y2=float(row["y2"]),
                crop=cache_dir / row["crop"], kind=row.get("kind") or "video",
            ))
    return records


__all__ = [
    "INDEX_COLUMNS",
    "CropRecord",
    "CropSettings",
    "PreprocessReport",
    "load_index",
    "preprocess",
    "process_video",
    "safe_key",
]
