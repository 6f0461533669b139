"""Property tests (Hypothesis) of every entry point that takes outside data: each input either works or raises the
project's clear error type (MediaError, ValueError, DatasetError, CorpusError), never anything else.

A few examples per property in a normal run (fast, deterministic); ``make fuzz`` runs the same properties for a
fixed time and keeps what fails in tests/fuzz-corpus/ (see tests/fuzzing.py).
"""
from __future__ import annotations

import functools
import json
import math
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from clips import make_clip, make_image
from fakescope.data.corpus import CorpusError, read_file_list
from fakescope.data.datasets import DatasetError, load_dataset
from fakescope.faces import FaceTracker, crop_face
from fakescope.faces.crop import crop_geometry, square_crop_box
from fakescope.faces.detection import Detection
from fakescope.video import FrameSelection, MediaError, MediaInfo, MediaReader, probe
from fakescope.video.media import classify
from fuzzing import deterministic, within_budget

MAX_FRAMES_READ = 40  # enough to cross damage in the small clips; bounds each example's time

SUFFIXES = st.sampled_from([".mp4", ".mkv", ".avi", ".jpg", ".png", ".webp", ".gif", ".bin", ""])


@functools.lru_cache(maxsize=None)
def _valid_media() -> dict[str, bytes]:
    """Small valid files to damage: an H.264 mp4, an MJPEG avi, a JPEG and a PNG (made once per process)."""
    with scratch() as folder:
        return {
            ".mp4": make_clip(folder / "c.mp4", n_frames=12, size=(160, 120), codec="libx264").read_bytes(),
            ".avi": make_clip(folder / "c.avi", n_frames=6, size=(160, 120)).read_bytes(),
            ".jpg": make_image(folder / "f.jpg", size=96).read_bytes(),
            ".png": make_image(folder / "f.png", size=64).read_bytes(),
        }


def _read(path: Path) -> None:
    """Probe and read ``path`` like scan does; only MediaError may come out, and what comes out is sound."""
    try:
        info = probe(path)
    except MediaError as error:
        assert str(error)
        return
    assert info.width > 0 and info.height > 0 and info.fps >= 0 and info.frame_count >= 0
    try:
        reader = MediaReader(path, selection=FrameSelection())
    except MediaError:
        return  # a file may change its mind between probe and open only if damaged; still the clear error
    with reader:
        last = -1
        for count, frame in enumerate(reader):
            assert frame.image.ndim == 3 and frame.image.shape[2] == 3 and frame.image.dtype == np.uint8
            assert frame.index > last and math.isfinite(frame.time_s)
            last = frame.index
            if count >= MAX_FRAMES_READ:
                break
    assert reader.decode_error is None or isinstance(reader.decode_error, str)
    assert all(isinstance(warning, str) for warning in reader.warnings)


@contextmanager
def scratch() -> Iterator[Path]:
    """A folder for one example, removed afterwards (a fuzz run goes through hundreds of thousands)."""
    with tempfile.TemporaryDirectory(prefix="fakescope-fuzz-") as folder:
        yield Path(folder)


def _write(folder: Path, data: bytes, suffix: str) -> Path:
    path = folder / f"input{suffix}"
    path.write_bytes(data)
    return path


@given(data=st.binary(max_size=4096), suffix=SUFFIXES)
@example(data=b"", suffix=".mp4")
@example(data=b"\x00\x00\x00\x18ftypmp42" + bytes(64), suffix=".bin")
@example(data=b"GIF89a" + bytes(20), suffix="")
@example(data=b"\xff\xd8\xff\xe0" + bytes(30), suffix=".jpg")
@deterministic
def test_reader_and_prober_on_random_bytes(data, suffix):
    within_budget("random_bytes")
    with scratch() as folder:
        path = _write(folder, data, suffix)
        try:
            kind, description = classify(path)
        except MediaError:
            pass
        else:
            assert kind in (None, "video", "image", "heif") and description
        _read(path)


@given(source=st.sampled_from([".mp4", ".avi", ".jpg", ".png"]), cut=st.floats(0.0, 1.0),
       flips=st.lists(st.tuples(st.floats(0.0, 1.0, exclude_max=True), st.integers(0, 7)), max_size=24),
       suffix_kept=st.booleans())
@deterministic
def test_reader_on_truncated_and_bit_flipped_media(source, cut, flips, suffix_kept):
    within_budget("damaged_media")
    data = bytearray(_valid_media()[source])
    for position, bit in flips:
        data[int(position * len(data))] ^= 1 << bit
    data = bytes(data[: max(1, int(len(data) * cut))]) if cut < 1.0 else bytes(data)
    with scratch() as folder:
        _read(_write(folder, data, source if suffix_kept else ".bin"))


@given(header=st.sampled_from([b"\xff\xd8\xff\xe0", b"\x89PNG\r\n\x1a\n", b"RIFF\x00\x00\x00\x00WEBPVP8 ",
                               b"BM\x00\x00\x00\x00\x00\x00\x00\x00", b"II*\x00", b"\x00\x00\x00\x1cftypheic"]),
       body=st.binary(max_size=2048), suffix=st.sampled_from([".jpg", ".png", ".webp", ".bmp", ".tiff", ".heic"]))
@deterministic
def test_image_decoding_on_random_bodies(header, body, suffix):
    within_budget("images")
    with scratch() as folder:
        _read(_write(folder, header + body, suffix))


MODES = st.one_of(
    st.just(("all", None)),
    st.tuples(st.just("every"), st.integers(1, 500)),
    st.tuples(st.just("count"), st.integers(1, 500)),
    st.tuples(st.just("fps"), st.floats(0.001, 1000.0)),
)
INFOS = st.builds(
    lambda kind, fps, count: MediaInfo(Path("clip.mp4"), kind, 64, 48, 0.0 if kind == "image" else fps,
                                       1 if kind == "image" else count),
    st.sampled_from(["video", "image"]), st.floats(0.5, 240.0), st.integers(1, 3000),
)


@given(mode=MODES, info=INFOS)
@deterministic
def test_frame_selection_arithmetic(mode, info):
    within_budget("selection")
    selection = FrameSelection(*mode)
    select = selection.selector(info)
    fps = info.fps or 25.0
    chosen = [index for index in range(info.frame_count) if select(index, index / fps)]
    assert chosen == sorted(set(chosen)) and all(0 <= index < info.frame_count for index in chosen)
    if selection.mode == "all":
        assert len(chosen) == info.frame_count
    elif selection.mode == "every":
        assert chosen == list(range(0, info.frame_count, int(selection.value)))
    elif selection.mode == "count":
        assert len(chosen) == min(int(selection.value), info.frame_count)
    else:
        assert chosen and chosen[0] == 0  # the first frame always; then one per 1/F seconds at most
        if selection.value < fps:
            gaps = [(b - a) / fps for a, b in zip(chosen, chosen[1:])]
            assert all(gap >= 1 / selection.value - 1 / fps - 1e-6 for gap in gaps)
    assert selection.describe()


@given(every=st.one_of(st.none(), st.integers(-5, 5), st.floats(allow_nan=True), st.booleans(), st.text(max_size=3)),
       frames=st.one_of(st.none(), st.integers(-5, 5)), fps=st.one_of(st.none(), st.floats(allow_nan=True)))
@deterministic
def test_frame_selection_options_work_or_raise_value_error(every, frames, fps):
    within_budget("selection_options")
    try:
        selection = FrameSelection.from_options(every=every, frames=frames, fps=fps)
    except ValueError as error:
        assert str(error)
    else:
        assert selection.mode in ("all", "every", "count", "fps") and selection.describe()


COORDINATE = st.floats(-2000.0, 4000.0, allow_nan=False, allow_infinity=False)
BOXES = st.lists(st.tuples(COORDINATE, COORDINATE, st.floats(0.0, 800.0), st.floats(0.0, 800.0)), max_size=6)


@given(frames=st.lists(BOXES, max_size=12))
@deterministic
def test_face_tracker_with_random_boxes(frames):
    within_budget("tracker")
    tracker = FaceTracker()
    seen: set[int] = set()
    for boxes in frames:
        detections = [Detection(np.array([x, y, x + w, y + h]), 0.9) for x, y, w, h in boxes]
        tracked = tracker.update(detections)
        assert len(tracked) == len(detections)
        ids = [face.track_id for face in tracked]
        assert len(set(ids)) == len(ids)  # two faces of one frame never share a track
        assert [face.detection for face in tracked] == detections
        seen.update(ids)
        assert set(tracker.pop_finished()) <= seen
    assert set(tracker.finish()) <= seen and tracker.live_track_ids == []


@given(width=st.integers(1, 300), height=st.integers(1, 300),
       box=st.tuples(st.floats(-500, 800), st.floats(-500, 800), st.floats(-500, 800), st.floats(-500, 800)),
       margin=st.floats(0.05, 4.0), size=st.integers(1, 96))
@example(width=1, height=1, box=(0.0, 0.0, 1.0, 1.0), margin=1.3, size=224)
@example(width=200, height=100, box=(190.0, 90.0, 260.0, 300.0), margin=1.3, size=32)  # beyond the corner
@deterministic
def test_crop_geometry_at_and_beyond_the_frame_edges(width, height, box, margin, size):
    within_budget("crop")
    image = np.full((height, width, 3), 77, np.uint8)
    x1, y1, x2, y2 = box
    valid = x2 > x1 and y2 > y1
    if not valid:
        with pytest.raises(ValueError):
            crop_face(image, np.array(box), margin, size)
        return
    crop = crop_face(image, np.array(box), margin, size)
    assert crop.shape == (size, size, 3) and crop.dtype == np.uint8
    square = square_crop_box(box, margin)
    assert square[2] - square[0] == pytest.approx(square[3] - square[1], rel=1e-4, abs=1e-3)
    left, top, scale = crop_geometry(box, margin, size)
    assert scale > 0 and math.isfinite(scale)
    inside = max(0, left) < min(width, left + size / scale) and max(0, top) < min(height, top + size / scale)
    if not inside:
        assert not crop.any()  # entirely outside the frame: black


CSV_TEXT = st.one_of(
    st.text(max_size=400),
    st.lists(st.lists(st.sampled_from(["path", "label", "split", "group", "real", "fake", "0", "1", "2", "train",
                                       "val", "x.mp4", "", " ", "\"", "a,b", "..", "/etc/passwd", "\x00", "é"]),
                      max_size=6), max_size=8).map(lambda rows: "\n".join(",".join(row) for row in rows)),
    st.binary(max_size=300).map(lambda data: data.decode("latin-1")),
)


@given(text=CSV_TEXT, raw=st.booleans())
@example(text="path,label\nx.mp4,real\n", raw=False)
@example(text="path,label\n\x00,real\n", raw=False)  # found by the first fuzz run: "embedded null byte"
@deterministic
def test_manifest_reader_on_random_csv(text, raw):
    within_budget("manifest")
    with scratch() as folder:
        _check_manifest(folder, text, raw)


def _check_manifest(folder: Path, text: str, raw: bool) -> None:
    (folder / "x.mp4").write_bytes(b"video")
    csv_path = folder / "manifest.csv"
    if raw:
        csv_path.write_bytes(text.encode("utf-8", "surrogatepass")[::-1])  # bytes that need not be UTF-8
    else:
        csv_path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        items = load_dataset(f"manifest:{csv_path}")
    except DatasetError as error:
        assert str(error)
    else:
        assert all(item.label in (0, 1) and item.path.is_file() for item in items)


@given(text=CSV_TEXT)
@example(text="dataset,path,commit,blob,bytes,kind,label,identity\nlfw,a.jpg,c,0,1,photo,real,x\n")
@deterministic
def test_corpus_file_list_on_random_csv(text):
    within_budget("corpus_list")
    with scratch() as folder:
        path = folder / "files.csv"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            files = read_file_list(path)
        except CorpusError as error:
            assert str(error)
        else:
            assert all(len(item.blob) == 40 for item in files)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@given(metadata=st.one_of(JSON_VALUES.map(json.dumps), st.text(max_size=80)),
       entries=st.dictionaries(st.sampled_from(["a.mp4", "b.mp4", "c.txt"]),
                               st.fixed_dictionaries({"label": st.sampled_from(["REAL", "FAKE", "fake", 1, None])},
                                                     optional={"original": st.sampled_from(["a.mp4", "zz.mp4", 3])}),
                               max_size=3))
@example(metadata="null", entries={})  # found by the first fuzz run: an AttributeError
@example(metadata='{"a.mp4": {"label": "FAKE", "original": 3}}', entries={})
@deterministic
def test_dfdc_reader_on_random_json(metadata, entries):
    within_budget("dfdc")
    with scratch() as root:
        _check_dfdc(root, metadata, entries)


def _check_dfdc(root: Path, metadata: str, entries: dict) -> None:
    part = root / "dfdc_train_part_0"
    part.mkdir()
    for name in ("a.mp4", "b.mp4"):
        (part / name).write_bytes(b"video")
    for index, text in enumerate([metadata, json.dumps(entries)]):
        target = part if index == 0 else root / "dfdc_train_part_1"
        target.mkdir(exist_ok=True)
        (target / "metadata.json").write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        items = load_dataset(f"dfdc:{root}")
    except DatasetError as error:
        assert str(error)
    else:
        assert all(item.label in (0, 1) for item in items)


@given(splits=st.one_of(JSON_VALUES.map(json.dumps), st.text(max_size=60)))
@example(splits='[["000", "001"], ["002"]]')
@deterministic
def test_ffpp_splits_reader_on_random_json(splits):
    within_budget("ffpp")
    with scratch() as root:
        _check_ffpp(root, splits)


def _check_ffpp(root: Path, splits: str) -> None:
    videos = root / "original_sequences" / "youtube" / "c23" / "videos"
    videos.mkdir(parents=True)
    for identity in ("000", "001"):
        (videos / f"{identity}.mp4").write_bytes(b"video")
    fakes = root / "manipulated_sequences" / "Deepfakes" / "c23" / "videos"
    fakes.mkdir(parents=True)
    (fakes / "000_001.mp4").write_bytes(b"video")
    (root / "splits").mkdir()
    for split in ("train", "val", "test"):
        (root / "splits" / f"{split}.json").write_text(splits if split == "train" else "[]", encoding="utf-8",
                                                       errors="surrogatepass")
    try:
        items = load_dataset(f"ffpp:{root}")
    except DatasetError as error:
        assert str(error)
    else:
        assert all(item.label in (0, 1) for item in items)
