"""Tests for fakescope.data.preprocess (the face-crop cache) and the ``fakescope preprocess`` command."""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

import fakescope.data.preprocess as preprocess_module
from clips import face_image, make_clip
from fakescope.data import FAKE, REAL, VideoItem, load_dataset, load_index
from fakescope.data.preprocess import INDEX_COLUMNS, preprocess, safe_key, status_path
from fakescope.faces import YuNetDetector
from fakescope.video import FrameSelection

EVERY_2ND = FrameSelection.from_options(every=2)


@pytest.fixture(scope="module")
def detector() -> YuNetDetector:
    return YuNetDetector()


def item_for(path: Path, label: int = REAL, key: str | None = None) -> VideoItem:
    return VideoItem(path=path.absolute(), label=label, dataset="folder", method="original" if label == REAL else "x",
                     group=path.stem, split="train", key=key or path.name)


def read_index(cache_dir: Path) -> list[dict[str, str]]:
    with (cache_dir / "index.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def read_status(cache_dir: Path, item: VideoItem) -> dict:
    return json.loads(status_path(cache_dir, item).read_text())


def write_two_face_clip(path: Path, n_frames: int, big_face_frames: int, sides: tuple[int, int]) -> Path:
    """A 640x320 mp4: a face of side ``sides[0]`` on the left in every frame, and one of side ``sides[1]`` on the
    right in the first ``big_face_frames`` frames only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (640, 320))
    assert writer.isOpened()
    for index in range(n_frames):
        frame = np.full((320, 640, 3), 120, dtype=np.uint8)
        left = cv2.resize(face_image(), (sides[0], sides[0]), interpolation=cv2.INTER_AREA)
        frame[10 : 10 + sides[0], 10 + index : 10 + index + sides[0]] = left
        if index < big_face_frames:
            right = cv2.resize(face_image(), (sides[1], sides[1]), interpolation=cv2.INTER_AREA)
            frame[5 : 5 + sides[1], 630 - sides[1] : 630] = right
        writer.write(frame)
    writer.release()
    return path


def test_crops_are_faces_and_index_matches_them(tmp_path: Path, detector: YuNetDetector) -> None:
    real = item_for(make_clip(tmp_path / "in" / "a.mp4", n_frames=6, size=(320, 240), seed=1), REAL)
    fake = item_for(make_clip(tmp_path / "in" / "b.mp4", n_frames=5, size=(320, 240), seed=2), FAKE)
    cache = tmp_path / "cache"
    report = preprocess([fake, real], cache, EVERY_2ND, size=160, progress=False)

    assert report.counts == {"ok": 2, "no_face": 0, "error": 0} and report.failures == [] and report.crops == 6
    rows = read_index(cache)
    assert tuple(rows[0]) == INDEX_COLUMNS
    assert [(row["key"], int(row["frame_index"])) for row in rows] == [
        ("a.mp4", 0), ("a.mp4", 2), ("a.mp4", 4), ("b.mp4", 0), ("b.mp4", 2), ("b.mp4", 4)]
    assert {row["label"] for row in rows if row["key"] == "b.mp4"} == {str(FAKE)}
    assert rows[0]["group"] == "a" and rows[0]["split"] == "train" and rows[0]["path"] == str(real.path)
    on_disk = sorted(path.relative_to(cache).as_posix() for path in (cache / "crops").rglob("*.jpg"))
    assert sorted(row["crop"] for row in rows) == on_disk
    assert rows[1]["crop"] == f"crops/{safe_key(real)}/000002_t0.jpg"
    assert float(rows[1]["time_s"]) == pytest.approx(2 / 25)

    for row in rows:
        crop = cv2.imread(str(cache / row["crop"]))
        assert crop.shape == (160, 160, 3)
        assert crop.mean() > 40 and crop.std() > 20  # real image content, not a black pad
        faces = detector.detect(crop)
        assert len(faces) == 1
        # The face sits in the middle of its crop (the square is centred on the face box).
        centre = (faces[0].box[:2] + faces[0].box[2:]) / 2
        assert np.all(np.abs(centre - 80) < 25)
        x1, y1, x2, y2 = (float(row[name]) for name in ("x1", "y1", "x2", "y2"))
        assert 0 <= x1 < x2 <= 320 and 0 <= y1 < y2 <= 240

    status = read_status(cache, real)
    assert (status["status"], status["frames_sampled"], status["faces"], status["crops"]) == ("ok", 3, 3, 3)
    run = json.loads((cache / "preprocess.json").read_text())
    assert run["arguments"]["selection"] == {"mode": "every", "value": 2} and run["summary"]["crops"] == 6

    records = load_index(cache)
    assert len(records) == 6 and all(record.crop.is_absolute() and record.crop.is_file() for record in records)
    assert (records[3].key, records[3].label, records[3].frame_index, records[3].track_id) == ("b.mp4", FAKE, 0, 0)
    assert records[0].split == "train" and records[0].source is None


def test_no_face_and_unreadable_videos_are_recorded_and_the_run_goes_on(tmp_path: Path) -> None:
    no_face = item_for(make_clip(tmp_path / "in" / "shapes.mp4", n_frames=6, size=(320, 240), face=False))
    text = tmp_path / "in" / "notes.mp4"
    text.write_text("This is a text file, not a video.\n" * 20)
    broken = item_for(text)
    face = item_for(make_clip(tmp_path / "in" / "face.mp4", n_frames=4, size=(320, 240)))
    cache = tmp_path / "cache"
    report = preprocess([broken, no_face, face], cache, EVERY_2ND, progress=False)

    assert report.counts == {"ok": 1, "no_face": 1, "error": 1}
    failures = {key: (status, reason) for key, status, reason in report.failures}
    assert failures["shapes.mp4"] == ("no_face", "no face found in 3 sampled frames")
    assert failures["notes.mp4"][0] == "error" and failures["notes.mp4"][1].startswith("not a readable video")
    assert read_status(cache, broken)["status"] == "error"
    assert read_status(cache, broken)["reason"] == failures["notes.mp4"][1]
    assert read_status(cache, no_face)["frames_sampled"] == 3
    assert {row["key"] for row in read_index(cache)} == {"face.mp4"}
    assert not (cache / "crops" / safe_key(broken)).exists()


def test_rerun_skips_finished_videos_and_redoes_the_rest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = item_for(make_clip(tmp_path / "in" / "a.mp4", n_frames=4, size=(320, 240), seed=1))
    second = item_for(make_clip(tmp_path / "in" / "b.mp4", n_frames=4, size=(320, 240), seed=2))
    text = tmp_path / "in" / "bad.mp4"
    text.write_text("not a video")
    broken = item_for(text)
    items = [first, second, broken]
    cache = tmp_path / "cache"

    processed: list[str] = []
    real_process_video = preprocess_module.process_video

    def counting_process_video(item: VideoItem, *args: object) -> dict:
        processed.append(item.key)
        return real_process_video(item, *args)

    monkeypatch.setattr(preprocess_module, "process_video", counting_process_video)
    preprocess(items, cache, EVERY_2ND, progress=False)
    assert sorted(processed) == ["a.mp4", "b.mp4", "bad.mp4"]
    index_before = (cache / "index.csv").read_text()
    status_mtime = status_path(cache, first).stat().st_mtime_ns

    processed.clear()
    report = preprocess(items, cache, EVERY_2ND, progress=False)
    assert processed == ["bad.mp4"]  # errors are retried; finished videos are not
    assert report.reused == 2 and report.counts == {"ok": 2, "no_face": 0, "error": 1}
    assert status_path(cache, first).stat().st_mtime_ns == status_mtime
    assert (cache / "index.csv").read_text() == index_before  # reused videos still fully indexed

    # An interrupted video: crops on disk but no status file. It is redone and its leftovers go.
    status_path(cache, second).unlink()
    leftover = cache / "crops" / safe_key(second) / "000099_t7.jpg"
    leftover.write_bytes(b"partial")
    processed.clear()
    preprocess(items, cache, EVERY_2ND, progress=False)
    assert sorted(processed) == ["b.mp4", "bad.mp4"]
    assert not leftover.exists()
    assert (cache / "index.csv").read_text() == index_before

    # Different crop settings make the cached crops unusable: everything is redone.
    processed.clear()
    preprocess(items, cache, EVERY_2ND, size=128, progress=False)
    assert sorted(processed) == ["a.mp4", "b.mp4", "bad.mp4"]
    assert cv2.imread(str(load_index(cache)[0].crop)).shape == (128, 128, 3)


def test_videos_that_would_share_a_cache_name_are_refused(tmp_path: Path) -> None:
    first = item_for(make_clip(tmp_path / "one" / "a.mp4", n_frames=2, size=(320, 240)))
    second = item_for(make_clip(tmp_path / "two" / "a.mp4", n_frames=2, size=(320, 240)))
    with pytest.raises(ValueError, match="same cache name"):
        preprocess([first, second], tmp_path / "cache", EVERY_2ND, progress=False)
    # The very same video listed twice is simply processed once.
    report = preprocess([first, first], tmp_path / "cache", EVERY_2ND, progress=False)
    assert report.videos == 1 and report.counts["ok"] == 1


@pytest.mark.slow  # spawns worker processes
def test_two_workers_give_the_same_index_as_one(tmp_path: Path) -> None:
    items = [
        item_for(make_clip(tmp_path / "in" / f"{name}.mp4", n_frames=4, size=(320, 240), seed=seed))
        for seed, name in enumerate(("a", "b", "c"))
    ]
    single = preprocess(items, tmp_path / "one", EVERY_2ND, workers=1, progress=False)
    parallel = preprocess(items, tmp_path / "two", EVERY_2ND, workers=2, progress=False)
    assert single.counts == parallel.counts == {"ok": 3, "no_face": 0, "error": 0}
    assert (tmp_path / "one" / "index.csv").read_text() == (tmp_path / "two" / "index.csv").read_text()
    assert len(read_index(tmp_path / "two")) == 6


def test_main_track_versus_all_tracks(tmp_path: Path) -> None:
    # Left face in all 6 frames, bigger right face in 2: the most detections wins over size.
    mostly_small = item_for(write_two_face_clip(tmp_path / "in" / "count.mp4", 6, 2, (240, 300)))
    # Both faces in every frame: the tie goes to the larger face (the right one).
    always_both = item_for(write_two_face_clip(tmp_path / "in" / "area.mp4", 6, 6, (200, 300)))
    every = FrameSelection.from_options(every=1)

    all_report = preprocess([mostly_small, always_both], tmp_path / "all", every, tracks="all", progress=False)
    rows = read_index(tmp_path / "all")
    tracks = {(row["key"], row["track_id"]) for row in rows}
    assert tracks == {("count.mp4", "0"), ("count.mp4", "1"), ("area.mp4", "0"), ("area.mp4", "1")}
    assert all_report.crops == 6 + 2 + 6 + 6

    main_report = preprocess([mostly_small, always_both], tmp_path / "main", every, tracks="main", progress=False)
    main_rows = read_index(tmp_path / "main")
    assert main_report.crops == 12
    for key, expect_left in (("count.mp4", True), ("area.mp4", False)):
        video_rows = [row for row in main_rows if row["key"] == key]
        assert len(video_rows) == 6 and len({row["track_id"] for row in video_rows}) == 1
        centres_x = [(float(row["x1"]) + float(row["x2"])) / 2 for row in video_rows]
        assert all((x < 320) == expect_left for x in centres_x)


@pytest.mark.shared
def test_real_ffpp_video_gives_eight_face_crops(ffpp_dir: Path, tmp_path: Path, detector: YuNetDetector) -> None:
    items = [item for item in load_dataset(f"ffpp:{ffpp_dir}?methods=original")
             if item.key.endswith("youtube/c23/videos/469.mp4")]
    report = preprocess(items, tmp_path / "cache", FrameSelection.from_options(frames=8), progress=False)
    assert report.counts["ok"] == 1 and report.crops == 8
    records = load_index(tmp_path / "cache")
    assert [record.frame_index for record in records] == [25, 77, 129, 181, 232, 284, 336, 388]  # 414 frames / 8
    assert {(record.label, record.group, record.split) for record in records} == {(REAL, "yt:469+yt:481", "train")}
    for record in records:
        assert len(detector.detect(cv2.imread(str(record.crop)))) >= 1


def test_cli_preprocess(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fakescope.cli import preprocess as preprocess_cli
    from fakescope.cli.main import UsageError

    make_clip(tmp_path / "data" / "real" / "a.mp4", n_frames=4, size=(320, 240))
    make_clip(tmp_path / "data" / "fake" / "Swap" / "b.mp4", n_frames=4, size=(320, 240), face=False)
    (tmp_path / "data" / "fake" / "c.mp4").write_text("not a video")
    parser = argparse.ArgumentParser()
    preprocess_cli.add_parser(parser.add_subparsers(dest="command"))

    args = parser.parse_args(["preprocess", "--data", f"folder:{tmp_path / 'data'}", "--cache", str(tmp_path / "c"),
                              "--frames", "2", "--quiet"])
    assert args.run(args) == 1  # one video failed; the others were still processed
    out = capsys.readouterr().out
    assert "3 videos: 1 ok, 1 no_face, 1 error" in out
    assert "fake/Swap/b.mp4: NO FACE (no face found in 2 sampled frames)" in out
    assert "fake/c.mp4: ERROR: not a readable video" in out
    assert [record.key for record in load_index(tmp_path / "c")] == ["real/a.mp4", "real/a.mp4"]

    bad = parser.parse_args(["preprocess", "--data", f"folder:{tmp_path / 'nope'}", "--cache", str(tmp_path / "c")])
    with pytest.raises(UsageError, match="does not exist"):
        bad.run(bad)
