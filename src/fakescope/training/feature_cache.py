"""Cached frozen-backbone features: train the trainable part of a model on many faces with a CPU.

When the backbone is frozen, its output for a given (augmented) face crop never changes, so it can be computed once
and stored: the trainable convs, RNN and head then train on the stored maps in a fraction of the time, and
cross-validation folds reuse them. Each clip of crops is stored in a fixed number of variants: as it is, and for a
real clip also as self-blended fakes, each variant with its own clip-consistent flip and re-compression, which
apply to both classes alike (so that compression never tells the classes apart).

Layout of a cache directory:
  shard-00000.npy   float16 (N, C, H, W) backbone maps, frames of whole clips in order
  shard-00000.csv   one row per clip in that shard (CLIP_COLUMNS); written after its .npy, so it marks the shard done
  cache.json        how the cache was made (backbone, stage, settings)

Building resumes: clips found in finished shards are not computed again.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import time
from collections import defaultdict, deque
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import torch
from tqdm import tqdm

from ..data.items import FAKE, REAL, STILL_KINDS
from ..data.preprocess import CropRecord
from .augment import normalise
from .sbi import self_blend_clip

CLIP_COLUMNS = ("clip_id", "key", "label", "variant", "dataset", "kind", "method", "group", "frames", "start",
                "frame_indices")
Landmarks = Callable[[CropRecord, np.ndarray], "np.ndarray | None"]


@dataclass(frozen=True)
class CacheClip:
    """A clip of face crops of one video track (or a single still) to store in the cache."""

    key: str
    label: int
    dataset: str
    kind: str
    method: str
    group: str
    records: tuple[CropRecord, ...]

    @property
    def base_id(self) -> str:
        return f"{self.key}@{self.records[0].frame_index}"


@dataclass
class CacheSettings:
    """How clips become stored maps: the variants of each clip and their post-processing."""

    plain_copies: int = 1  # stored copies of each clip as it is (each with its own flip / compression draw)
    sbi_copies: int = 1  # self-blended copies of each real clip
    flip: float = 0.5
    jpeg_probability: float = 0.5  # re-compression of a whole clip, both classes alike
    jpeg_quality: tuple[int, int] = (60, 95)
    # Down- and up-sampling of a whole clip, both classes alike: faces filmed small or re-scaled are not fakes.
    downscale_probability: float = 0.0
    downscale_range: tuple[float, float] = (0.25, 0.7)  # the factor of the intermediate size
    greyscale_probability: float = 0.0  # black-and-white copies, both classes alike
    # H.264 re-encoding of a whole clip (instead of JPEG), both classes alike: photos then carry the video codec's
    # blocking and 4:2:0 colour as FaceForensics++ videos do, so the codec cannot tell video fakes from photo reals.
    h264_probability: float = 0.0
    h264_crf: tuple[int, int] = (20, 36)
    augment: bool = True  # False: plain copies exactly as cropped (evaluation caches)
    seed: int = 0


def clips_from_records(records: Iterable[CropRecord], length: int) -> list[CacheClip]:
    """Stills become one-frame clips; each video's longest track is cut into clips of ``length`` consecutive
    sampled crops (the last, shorter one kept)."""
    by_track: dict[tuple[str, str, int], list[CropRecord]] = defaultdict(list)
    for record in records:
        by_track[(record.dataset, record.key, record.track_id)].append(record)
    longest: dict[tuple[str, str], list[CropRecord]] = {}
    for (dataset, key, _), rows in by_track.items():
        if (dataset, key) not in longest or len(rows) > len(longest[(dataset, key)]):
            longest[(dataset, key)] = rows
    clips = []
    for (dataset, key), rows in sorted(longest.items()):
        rows = sorted(rows, key=lambda row: row.frame_index)
        first = rows[0]
        step = 1 if first.kind in STILL_KINDS else length
        for start in range(0, len(rows), step):
            chunk = tuple(rows[start : start + step])
            clips.append(CacheClip(key, first.label, dataset, first.kind, first.method, first.group, chunk))
    return clips


def _clip_seed(seed: int, clip_id: str) -> int:
    return int.from_bytes(hashlib.sha1(f"{seed}:{clip_id}".encode()).digest()[:8], "little")


def _read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"cannot read crop {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _jpeg(frame: np.ndarray, quality: int) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _h264(frames: list[np.ndarray], crf: int) -> list[np.ndarray]:
    """``frames`` (RGB, even sides) encoded as one H.264 clip at ``crf`` and decoded again, in memory."""
    height, width = frames[0].shape[:2]
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.time_base = Fraction(1, 25)
    encoder.options = {"crf": str(crf), "preset": "veryfast", "threads": "1"}
    packets = []
    for index, frame in enumerate(frames):
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24").reformat(
            format="yuv420p")
        video_frame.pts = index
        packets.extend(encoder.encode(video_frame))
    packets.extend(encoder.encode(None))
    decoder = av.CodecContext.create("h264", "r")
    decoded = [image.to_ndarray(format="rgb24") for packet in packets for image in decoder.decode(packet)]
    decoded.extend(image.to_ndarray(format="rgb24") for image in decoder.decode(None))
    if len(decoded) != len(frames):
        raise RuntimeError(f"H.264 round trip returned {len(decoded)} of {len(frames)} frames")
    return decoded


def _downscale(frame: np.ndarray, factor: float) -> np.ndarray:
    height, width = frame.shape[:2]
    small = cv2.resize(frame, (max(8, round(width * factor)), max(8, round(height * factor))),
                       interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def make_variants(clip: CacheClip, settings: CacheSettings, size: int,
                  landmarks: Landmarks | None) -> Iterator[tuple[str, int, list[np.ndarray]]]:
    """(variant name, label, RGB frames) for each stored variant of ``clip``."""
    frames = [_read_rgb(record.crop) for record in clip.records]
    frames = [cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) if f.shape[:2] != (size, size) else f
              for f in frames]
    variants: list[tuple[str, int, list[np.ndarray]]] = [
        (f"plain{i}", clip.label, frames) for i in range(settings.plain_copies)]
    if clip.label == REAL:
        points = landmarks(clip.records[0], frames[0]) if landmarks is not None else None
        for i in range(settings.sbi_copies):
            rng = np.random.default_rng(_clip_seed(settings.seed, f"{clip.base_id}/sbi{i}"))
            variants.append((f"sbi{i}", FAKE, self_blend_clip(frames, rng, points)))
    for name, label, variant_frames in variants:
        if settings.augment:
            rng = np.random.default_rng(_clip_seed(settings.seed, f"{clip.base_id}/{name}/post"))
            if rng.random() < settings.flip:
                variant_frames = [np.ascontiguousarray(f[:, ::-1]) for f in variant_frames]
            if settings.downscale_probability and rng.random() < settings.downscale_probability:
                factor = float(rng.uniform(*settings.downscale_range))
                variant_frames = [_downscale(f, factor) for f in variant_frames]
            if settings.greyscale_probability and rng.random() < settings.greyscale_probability:
                variant_frames = [np.repeat(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
                                  for f in variant_frames]
            if settings.h264_probability and rng.random() < settings.h264_probability:
                crf = int(rng.integers(settings.h264_crf[0], settings.h264_crf[1] + 1))
                variant_frames = _h264(variant_frames, crf)
            elif rng.random() < settings.jpeg_probability:
                quality = int(rng.integers(settings.jpeg_quality[0], settings.jpeg_quality[1] + 1))
                variant_frames = [_jpeg(f, quality) for f in variant_frames]
        yield name, label, variant_frames


def _prepared_variants(clips: list[CacheClip], settings: CacheSettings, size: int, mean, std,
                       landmarks_factory: Callable[[], Landmarks] | None,
                       lookahead: int = 32) -> Iterator[dict[str, Any]]:
    """Decode, blend and post-process clips in a helper thread (OpenCV, dlib and numpy release the GIL) while the
    caller runs the backbone; yields one item per variant, or one with ``error`` for an unreadable clip."""
    landmarks = landmarks_factory() if landmarks_factory is not None else None

    def prepare(clip: CacheClip) -> list[dict[str, Any]]:
        try:
            variants = list(make_variants(clip, settings, size, landmarks))
        except OSError as error:
            return [{"clip": clip, "error": str(error)}]
        return [{"clip": clip, "variant": name, "label": label,
                 "frames": normalise(torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2), mean, std)}
                for name, label, frames in variants]

    with ThreadPoolExecutor(1) as pool:
        pending: deque = deque()
        for clip in clips:
            pending.append(pool.submit(prepare, clip))
            if len(pending) >= lookahead:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()


def _finished_clips(cache_dir: Path) -> tuple[set[str], int]:
    done: set[str] = set()
    shards = 0
    for table in sorted(cache_dir.glob("shard-*.csv")):
        if not table.with_suffix(".npy").is_file():
            continue
        shards = max(shards, int(table.stem.split("-")[1]) + 1)
        with table.open(newline="") as handle:
            done.update(row["clip_id"].rsplit("/", 1)[0] for row in csv.DictReader(handle))
    return done, shards


@torch.no_grad()
def build_feature_cache(
    clips: list[CacheClip],
    backbone: torch.nn.Module,
    cache_dir: Path,
    settings: CacheSettings,
    size: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    landmarks_factory: Callable[[], Landmarks] | None = None,
    shard_frames: int = 2048,
    batch_frames: int = 32,
    precision: str = "bf16",
    progress: bool = True,
    describe: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Store the backbone maps of every variant of ``clips`` in ``cache_dir`` (resumable); returns a summary."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    meta = {"settings": asdict(settings), "size": size, "mean": list(mean), "std": list(std), **(describe or {})}
    meta_path = cache_dir / "cache.json"
    if meta_path.is_file():
        previous = json.loads(meta_path.read_text())
        # Settings added since the cache was made count as their defaults.
        previous["settings"] = {**json.loads(json.dumps(asdict(CacheSettings()))), **previous.get("settings", {})}
        if {k: previous.get(k) for k in meta} != json.loads(json.dumps(meta)):
            raise ValueError(f"{cache_dir} holds a cache made with other settings ({meta_path}); use another "
                             "directory")
    else:
        meta_path.write_text(json.dumps(meta, indent=1) + "\n")
    done, next_shard = _finished_clips(cache_dir)
    pending = [clip for clip in clips if clip.base_id not in done]
    started = time.perf_counter()
    backbone = backbone.eval().to(memory_format=torch.channels_last)
    loader = _prepared_variants(pending, settings, size, mean, std, landmarks_factory)
    maps: list[np.ndarray] = []
    rows: list[dict[str, Any]] = []
    queue: list[dict[str, Any]] = []
    queued_frames = 0
    errors: list[str] = []
    bar = tqdm(total=len(clips), initial=len(clips) - len(pending), unit="clip", desc="features",
               disable=not progress)

    def run_queue() -> None:
        nonlocal queue, queued_frames
        if not queue:
            return
        batch = torch.cat([item["frames"] for item in queue]).contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = backbone(batch).float().numpy().astype(np.float16)
        offset = sum(len(m) for m in maps)
        position = 0
        for item in queue:
            count = item["frames"].shape[0]
            clip: CacheClip = item["clip"]
            rows.append({"clip_id": f"{clip.base_id}/{item['variant']}", "key": clip.key, "label": item["label"],
                         "variant": item["variant"], "dataset": clip.dataset, "kind": clip.kind,
                         "method": "self-blended" if item["variant"].startswith("sbi") else clip.method,
                         "group": clip.group, "frames": count, "start": offset + position,
                         "frame_indices": " ".join(str(r.frame_index) for r in clip.records)})
            position += count
        maps.append(out)
        queue, queued_frames = [], 0

    def flush_shard() -> None:
        nonlocal maps, rows, next_shard
        if not rows:
            return
        name = cache_dir / f"shard-{next_shard:05d}"
        temporary = name.with_name(f".{name.name}.{os.getpid()}.tmp.npy")
        np.save(temporary, np.concatenate(maps))
        os.replace(temporary, name.with_suffix(".npy"))
        table = name.with_name(f".{name.name}.{os.getpid()}.tmp.csv")
        with table.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, CLIP_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(table, name.with_suffix(".csv"))
        maps, rows = [], []
        next_shard += 1

    last_clip: str | None = None
    try:
        for item in loader:
            clip: CacheClip = item["clip"]
            if "error" in item:
                errors.append(f"{clip.key}: {item['error']}")
                bar.update()
                continue
            if clip.base_id != last_clip:
                # Shards end between clips only, so a finished shard holds whole clips with all their variants.
                if last_clip is not None:
                    bar.update()
                if sum(len(m) for m in maps) + queued_frames >= shard_frames:
                    run_queue()
                    flush_shard()
                last_clip = clip.base_id
            queue.append(item)
            queued_frames += item["frames"].shape[0]
            if queued_frames >= batch_frames:
                run_queue()
        run_queue()
        flush_shard()
        if last_clip is not None:
            bar.update()
    finally:
        bar.close()
    return {"clips": len(clips), "computed": len(pending), "errors": errors,
            "seconds": round(time.perf_counter() - started, 1)}


@dataclass(frozen=True)
class CachedClip:
    """One stored variant of a clip: where its maps are and what it is."""

    clip_id: str
    key: str
    label: int
    variant: str
    dataset: str
    kind: str
    method: str
    group: str
    shard: int
    start: int
    frames: int


def load_cache_index(cache_dir: Path) -> list[CachedClip]:
    """Every stored clip variant of a cache."""
    clips = []
    for table in sorted(Path(cache_dir).glob("shard-*.csv")):
        shard = int(table.stem.split("-")[1])
        with table.open(newline="") as handle:
            for row in csv.DictReader(handle):
                clips.append(CachedClip(row["clip_id"], row["key"], int(row["label"]), row["variant"],
                                        row["dataset"], row["kind"], row["method"], row["group"], shard,
                                        int(row["start"]), int(row["frames"])))
    return clips


class CacheMaps:
    """Memory-mapped access to a cache's maps: ``maps(clip)`` -> float32 tensor (T, C, H, W)."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = Path(cache_dir)
        self._shards: dict[int, np.ndarray] = {}

    def __call__(self, clip: CachedClip) -> torch.Tensor:
        shard = self._shards.get(clip.shard)
        if shard is None:
            shard = self._shards[clip.shard] = np.load(self.cache_dir / f"shard-{clip.shard:05d}.npy",
                                                       mmap_mode="r")
        return torch.from_numpy(np.asarray(shard[clip.start : clip.start + clip.frames], dtype=np.float32))
