"""``evaluate_videos`` and ``fakescope evaluate`` on generated clips with a tiny untrained model."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import pytest

from clips import make_clip
from fakescope.cli.evaluate import limit_items
from fakescope.data.items import FAKE, REAL, VideoItem
from fakescope.evaluation import evaluate_videos
from fakescope.evaluation.evaluate import frame_rows_for, video_row_for
from fakescope.analysis import Scanner
from fakescope.results import FaceRecord, FrameRecord, ScanResult, TrackSummary
from fakescope.video import FrameSelection

CLIP = {"n_frames": 8, "size": (320, 240)}
FRAMES = 4


@pytest.fixture(scope="module")
def detector(tiny_weights) -> Scanner:
    return Scanner.load(tiny_weights, device="cpu", allow_untrained=True,
                         selection=FrameSelection.from_options(frames=FRAMES))


def main(argv: list[str]) -> int:
    from fakescope.cli.main import main as fakescope_main  # imported here so that a broken CLI spares the API tests

    return fakescope_main(argv)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _item(path: Path, label: int, method: str, key: str) -> VideoItem:
    return VideoItem(path=path, label=label, dataset="ffpp", method=method, group=key, split="val", key=key)


@pytest.mark.slow  # end to end on generated video (a second or more on a loaded machine)
def test_evaluate_videos_scores_each_level_and_excludes_unscorable_videos(detector, tmp_path):
    clips = tmp_path / "clips"
    broken = clips / "broken.mp4"
    broken.parent.mkdir(parents=True)
    broken.write_text("not a video\n")
    items = [
        _item(make_clip(clips / "r1.mp4", seed=1, **CLIP), REAL, "original", "r1"),
        _item(make_clip(clips / "r2.mp4", seed=2, **CLIP), REAL, "original", "r2"),
        _item(make_clip(clips / "d1.mp4", seed=3, **CLIP), FAKE, "Deepfakes", "d1"),
        _item(make_clip(clips / "f1.mp4", seed=4, **CLIP), FAKE, "Face2Face", "f1"),
        _item(make_clip(clips / "shapes.mp4", face=False, **CLIP), REAL, "original", "shapes"),
        _item(broken, FAKE, "Deepfakes", "broken"),
    ]
    out = tmp_path / "eval"
    result = evaluate_videos(detector, items, progress=False, save_predictions_dir=out)
    paths = result.write_report(out, "test evaluation", {"weights": "tiny.safetensors"})

    metrics = result.metrics
    assert metrics["videos"] == {"total": 6, "scored": 4, "not_scored": 2, "no_face": 1, "failed": 1}
    video, frame = metrics["video_level"], metrics["frame_level"]
    assert (video["n"], video["n_real"], video["n_fake"], video["not_scored"]) == (4, 2, 2, 2)
    # One face on each of the 4 analysed frames of each of the 4 scored clips.
    assert (frame["n"], frame["n_real"], frame["n_fake"], frame["n_videos"]) == (16, 8, 8, 4)
    assert video["by_method"]["Deepfakes"]["n"] == 3  # its one scored fake + the two reals
    assert 0.0 <= video["auc"] <= 1.0 and 0.0 <= frame["auc"] <= 1.0
    reasons = {row["key"]: (row["verdict"], row["reason"]) for row in metrics["not_scored_videos"]}
    assert reasons["shapes"][0] == "no_face" and "no face" in reasons["shapes"][1]
    assert reasons["broken"][0] == "error" and reasons["broken"][1]
    assert [row["key"] for row in result.failed] == ["broken"]

    assert set(result.files) == {"predictions", "videos", "json", "markdown", "roc", "confusion"}
    frame_csv = _read_csv(out / "predictions.csv")
    assert len(frame_csv) == 16 and {row["key"] for row in frame_csv} == {"r1", "r2", "d1", "f1"}
    video_csv = {row["key"]: row for row in _read_csv(out / "videos.csv")}
    assert len(video_csv) == 6
    assert video_csv["broken"]["p_fake"] == "" and video_csv["broken"]["verdict"] == "error"
    for key in ("r1", "d1"):
        # One face track per clip, so the video's score (max_track) is the mean of its frame scores.
        scores = [float(row["p_fake"]) for row in frame_csv if row["key"] == key]
        assert float(video_csv[key]["p_fake"]) == pytest.approx(sum(scores) / len(scores), abs=1e-5)
        assert video_csv[key]["correct"] == str(int(video_csv[key]["verdict"] == ("real" if key == "r1" else "fake")))

    saved = json.loads(paths["json"].read_text())
    assert saved["inputs"] == {"weights": "tiny.safetensors"}
    assert saved["video_level"]["n"] == 4 and saved["frame_level"]["n"] == 16
    markdown = paths["markdown"].read_text()
    assert "| samples | 16 faces from 4 videos | 4 videos |" in markdown
    assert "## Not scored" in markdown and reasons["shapes"][1] in markdown
    for name in ("roc", "confusion"):
        image = cv2.imread(str(paths[name]))
        assert image is not None and image.shape[0] > 400 and image.shape[1] > 600


def _scan_result(verdict: str, p_fake: float | None, reason: str | None = None) -> ScanResult:
    box = (0.0, 0.0, 10.0, 10.0)
    frames = [
        FrameRecord(0, 0.0, [FaceRecord(0, 0.0, 0, box, 0.9, 0.2), FaceRecord(0, 0.0, 1, box, 0.9, 0.8)]),
        FrameRecord(1, 0.04, [FaceRecord(1, 0.04, 0, box, 0.9, 0.4), FaceRecord(1, 0.04, 2, box, 0.9, None)]),
        FrameRecord(2, 0.08, []),  # a frame without a face
    ]
    tracks = [
        TrackSummary(0, 2, 0, 1, 0.3, 0.4, "real", counted=True),
        TrackSummary(1, 1, 0, 0, 0.8, 0.8, "fake", counted=False),
    ]
    return ScanResult(input="x.mp4", verdict=verdict, p_fake=p_fake, reason=reason, frames=frames, tracks=tracks)


def test_frame_rows_come_from_counted_tracks_only():
    item = _item(Path("x.mp4"), FAKE, "FaceSwap", "x")
    rows = frame_rows_for(item, _scan_result("real", 0.3))
    assert [(row["frame_index"], row["track_id"], row["p_fake"]) for row in rows] == [(0, 0, 0.2), (1, 0, 0.4)]
    assert all(row["label"] == FAKE and row["method"] == "FaceSwap" for row in rows)


def test_a_video_that_failed_midway_keeps_no_score():
    item = _item(Path("x.mp4"), REAL, "original", "x")
    # A truncated file can have a p_fake from its decoded part, but its verdict is error: it is not scored.
    failed = video_row_for(item, _scan_result("error", 0.3, reason="decoding stopped at frame 2"))
    assert failed["p_fake"] is None and failed["correct"] is None and failed["reason"].startswith("decoding")
    scored = video_row_for(item, _scan_result("real", 0.3))
    assert scored["p_fake"] == 0.3 and scored["correct"] == 1


def test_limit_alternates_reals_and_fakes_and_takes_methods_in_turn():
    items = [_item(Path(f"{method}{i}.mp4"), REAL if method == "original" else FAKE, method, f"{method}{i}")
             for method, count in (("original", 5), ("Deepfakes", 3), ("Face2Face", 1)) for i in range(count)]
    chosen = limit_items(items, 5)
    assert [item.key for item in chosen] == ["original0", "Deepfakes0", "original1", "Face2Face0", "original2"]
    assert limit_items(items, 50) == items


@pytest.fixture(scope="module")
def folder_dataset(tmp_path_factory) -> Path:
    """``<root>/real/*.mp4`` and ``<root>/fake/*.mp4``, one fake unreadable."""
    root = tmp_path_factory.mktemp("folder")
    for index in range(2):
        make_clip(root / "real" / f"real{index}.mp4", seed=10 + index, **CLIP)
        make_clip(root / "fake" / f"fake{index}.mp4", seed=20 + index, **CLIP)
    (root / "fake" / "zz_broken.mp4").write_bytes(b"")  # sorts last, so --limit 2 takes fake0 and real0
    return root


@pytest.mark.slow  # end to end on generated video (a second or more on a loaded machine)
def test_cli_evaluates_a_folder_dataset_and_reports_failures(tiny_weights, folder_dataset, tmp_path, capsys):
    out = tmp_path / "report"
    code = main(["evaluate", "--weights", str(tiny_weights), "--data", f"folder:{folder_dataset}", "--out", str(out),
                 "--frames", str(FRAMES), "--device", "cpu", "--allow-untrained", "-q"])
    printed = capsys.readouterr().out
    assert code == 1  # the empty file failed; the others are still evaluated
    assert "5 videos: 4 scored, 1 not scored (0 without a face, 1 failed)" in printed
    assert "video-level: AUC" in printed and "frame-level: AUC" in printed
    for name in ("metrics.json", "metrics.md", "roc.png", "confusion.png", "predictions.csv", "videos.csv"):
        assert (out / name).stat().st_size > 0, name
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["video_level"]["n"] == 4 and saved["frame_level"]["n"] == 4 * FRAMES
    assert saved["inputs"]["frame_selection"] == f"{FRAMES} evenly spaced frames"
    assert saved["inputs"]["threshold"] == 0.5 and saved["inputs"]["threshold_source"] == "checkpoint"
    assert saved["inputs"]["data"] == [{"kind": "folder", "root": str(folder_dataset), "options": {}}]


@pytest.mark.slow  # end to end on generated video (a second or more on a loaded machine)
def test_cli_limit_threshold_and_every(tiny_weights, folder_dataset, tmp_path, capsys):
    out = tmp_path / "report"
    code = main(["evaluate", "--weights", str(tiny_weights), "--data", f"folder:{folder_dataset}", "--out", str(out),
                 "--every", "4", "--limit", "2", "--threshold", "0", "--device", "cpu", "--allow-untrained", "-q"])
    assert code == 0, capsys.readouterr()
    videos = _read_csv(out / "videos.csv")
    assert sorted(row["label"] for row in videos) == ["0", "1"]  # one real, one fake
    assert all(row["verdict"] == "fake" for row in videos)  # threshold 0: everything scored is fake
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["threshold"] == 0.0 and saved["inputs"]["threshold_source"] == "--threshold"
    assert saved["frame_level"]["n"] == 2 * 2  # every 4th of 8 frames: 0 and 4
    assert saved["video_level"]["confusion"]["matrix"] == [[0, 1], [0, 1]]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--data", "nonsense"], "KIND:ROOT"),
        (["--data", "folder:/does/not/exist"], "does not exist"),
        (["--split", "test"], "no video of split 'test'"),
    ],
)
def test_cli_usage_errors_exit_2(tiny_weights, folder_dataset, tmp_path, capsys, extra, message):
    argv = ["evaluate", "--weights", str(tiny_weights), "--out", str(tmp_path / "out"), "--allow-untrained"]
    if "--data" not in extra:
        argv += ["--data", f"folder:{folder_dataset}"]
    assert main(argv + extra) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_cli_refuses_untrained_weights_without_the_flag(tiny_weights, folder_dataset, tmp_path, capsys):
    code = main(["evaluate", "--weights", str(tiny_weights), "--data", f"folder:{folder_dataset}",
                 "--out", str(tmp_path / "out")])
    assert code == 2 and "untrained" in capsys.readouterr().err


def test_a_run_where_nothing_could_be_scored_still_reports(detector, tmp_path):
    items = [_item(tmp_path / "missing.mp4", FAKE, "Deepfakes", "missing")]
    result = evaluate_videos(detector, items, progress=False, save_predictions_dir=tmp_path)
    paths = result.write_report(tmp_path, "nothing scored")
    assert result.metrics["video_level"]["n"] == 0 and result.metrics["frame_level"]["n"] == 0
    assert result.metrics["video_level"]["auc"] is None
    assert result.metrics["videos"]["failed"] == 1
    assert all(path.stat().st_size > 0 for path in paths.values())
    assert "missing" in paths["markdown"].read_text()
