"""The scan pipeline end to end on generated media, with a tiny model: Python API and the command line."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
import weakref
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch

from clips import face_image, make_bad_inputs, make_clip, make_image
from fakescope.cli.main import main
from fakescope.faces import create_face_detector
from fakescope.analysis import FaceEncoder, FrameAnalyzer, Scanner, WeightsError
from fakescope.analysis import scanner as scanner_module
from fakescope.outputs import scan_to_folder
from fakescope.timing import StageTimer
from fakescope.models import create_model
from fakescope.video import Frame, FrameSelection, MediaReader


@pytest.fixture(scope="session")
def face_clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clips") / "face.mp4", n_frames=30, size=(640, 480), fps=25.0)


@pytest.fixture(scope="session")
def detector(tiny_weights) -> Scanner:
    return Scanner.load(tiny_weights, device="cpu", allow_untrained=True)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _count_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_untrained_weights_are_refused_without_the_flag(tiny_weights):
    with pytest.raises(WeightsError, match="untrained"):
        Scanner.load(tiny_weights)


def test_without_shipped_weights_the_detector_says_so(monkeypatch):
    monkeypatch.setattr(scanner_module, "default_weights_path", lambda: None)
    with pytest.raises(WeightsError, match="no trained weights"):
        Scanner.load()


def test_scan_writes_every_output_consistently(detector, face_clip, tmp_path):
    result = scan_to_folder(detector, face_clip, tmp_path)
    assert result.verdict in ("real", "fake") and result.reason is None
    assert result.frames_analysed == 30 and result.frames_with_faces == 30
    rows = _read_csv(tmp_path / "predictions.csv")
    assert [int(r["frame_index"]) for r in rows] == list(range(30))
    assert [float(r["time_s"]) for r in rows[:3]] == pytest.approx([0.0, 0.04, 0.08])
    assert {r["track_id"] for r in rows} == {"0"}
    p_fake = [float(r["p_fake"]) for r in rows]
    assert all(0.0 <= p <= 1.0 for p in p_fake)
    assert all(r["label"] == ("fake" if float(r["p_fake"]) >= 0.5 else "real") for r in rows)
    # The input's score is the track's mean (one track), as documented.
    assert result.p_fake == pytest.approx(np.mean(p_fake), abs=1e-4)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["verdict"] == result.verdict and summary["frames_analysed"] == 30
    assert summary["model"]["sha256"] == detector.meta.sha256 and len(summary["model"]["sha256"]) == 64
    assert summary["tracks"][0]["frames"] == 30 and summary["timing"]["analysed_fps"] > 0
    assert any("UNTRAINED" in w for w in summary["warnings"])
    assert _count_frames(tmp_path / "annotated.mp4") == 30
    trend = cv2.imread(str(tmp_path / "trend.png"))
    assert trend is not None and trend.shape[1] > 600


@pytest.mark.slow  # scans and renders several clips
def test_annotated_video_draws_coloured_boxes_on_the_face(tiny_weights, face_clip, tmp_path):
    for threshold, colour in ((0.0, "red"), (1.0, "green")):
        detector = Scanner.load(tiny_weights, device="cpu", allow_untrained=True, threshold=threshold)
        result = scan_to_folder(detector, face_clip, tmp_path / colour)
        first = next(iter(MediaReader(tmp_path / colour / "annotated.mp4"))).image
        x1, y1, x2, y2 = (int(v) for v in result.frames[0].faces[0].box)
        y2 = int(round(result.frames[0].faces[0].box[3]))
        edge = first[y2, x1 + 10 : x2 - 10].astype(float).mean(axis=0)  # along the box's bottom edge
        b, g, r = edge
        if colour == "red":
            assert r > 150 and r > g + 60 and r > b + 60, edge
        else:
            assert g > 120 and g > r + 40, edge


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        (FrameSelection.from_options(every=7), [0, 7, 14, 21, 28]),
        (FrameSelection.from_options(frames=4), [3, 11, 18, 26]),  # centres of 4 equal spans
        (FrameSelection.from_options(fps=5.0), [0, 5, 10, 15, 20, 25]),
    ],
)
def test_frame_selection_decides_which_frames_are_analysed(tiny_weights, face_clip, tmp_path, selection, expected):
    detector = Scanner.load(tiny_weights, device="cpu", allow_untrained=True, selection=selection)
    result = scan_to_folder(detector, face_clip, tmp_path)
    assert [frame.frame_index for frame in result.frames] == expected
    assert _count_frames(tmp_path / "annotated.mp4") == 30  # the annotated video keeps every frame


def test_a_clip_without_faces_is_reported_not_dropped(detector, tmp_path):
    clip = make_clip(tmp_path / "shapes.mp4", n_frames=12, size=(320, 240), face=False)
    result = scan_to_folder(detector, clip, tmp_path / "out")
    assert result.verdict == "no_face" and result.p_fake is None
    assert "no face found in 12 analysed frames" in result.reason
    rows = _read_csv(tmp_path / "out" / "predictions.csv")
    assert len(rows) == 12 and {r["label"] for r in rows} == {"no_face"}


@pytest.mark.slow  # end to end on a generated clip of several faces
def test_every_face_in_a_frame_gets_its_own_track(detector, tmp_path):
    face = cv2.resize(face_image(), (220, 220))
    path = tmp_path / "two.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (640, 360))
    for index in range(10):
        canvas = np.full((360, 640, 3), 90, np.uint8)
        canvas[70:290, 40 + index : 260 + index] = face
        canvas[70:290, 380 - index : 600 - index] = face
        writer.write(canvas)
    writer.release()
    result = detector.scan(path)
    assert [len(frame.faces) for frame in result.frames] == [2] * 10
    assert [track.frames for track in result.tracks] == [10, 10]
    left_track = {face.track_id for frame in result.frames for face in frame.faces if face.box[0] < 320}
    assert len(left_track) == 1  # the person on the left keeps one id


def test_images_are_scanned_as_one_frame(detector, tmp_path):
    image = make_image(tmp_path / "face.webp", size=(400, 300))
    result = scan_to_folder(detector, image, tmp_path / "out")
    assert result.kind == "image" and result.frames_analysed == 1 and result.frames_with_faces == 1
    annotated = cv2.imread(str(tmp_path / "out" / "annotated.jpg"))
    assert annotated.shape == (300, 400, 3)


@pytest.mark.slow  # a whole clip through the analysis loop
def test_analysis_keeps_no_frames_alive(tiny_weights, face_clip):
    """Frames are dropped as soon as they are analysed: memory does not grow with the video's length."""
    model = create_model("tiny_lstm").eval()
    encoder = FaceEncoder(model, torch.device("cpu"), margin=1.3, precision="auto")
    analyzer = FrameAnalyzer(encoder, create_face_detector("yunet"), window=model.config.window, batch_size=4)
    alive: weakref.WeakSet = weakref.WeakSet()
    peak = 0

    def frames():
        nonlocal peak
        for frame in MediaReader(face_clip):
            copy = Frame(frame.index, frame.time_s, frame.image)
            alive.add(copy)
            peak = max(peak, len(alive))
            yield copy
            del copy

    records = analyzer.analyse(frames(), StageTimer())
    assert len(records) == 30 and peak <= 2


@pytest.mark.slow  # two scans
def test_predictions_do_not_depend_on_what_follows_the_window(tiny_weights, tmp_path):
    """Windows are independent: the first window's scores are the same in a short and a long clip."""
    short = make_clip(tmp_path / "short.mp4", n_frames=8, size=(480, 360), seed=3)
    long = make_clip(tmp_path / "long.mp4", n_frames=20, size=(480, 360), seed=3)
    detector = Scanner.load(tiny_weights, device="cpu", allow_untrained=True, window=8)
    first = [f.faces[0].p_fake for f in detector.scan(short).frames]
    longer = [f.faces[0].p_fake for f in detector.scan(long).frames[:8]]
    assert first == pytest.approx(longer, abs=1e-5)


@pytest.mark.slow  # a directory of clips and bad inputs through the CLI
def test_cli_scans_directories_and_reports_bad_inputs(tiny_weights, face_clip, tmp_path, capsys):
    inputs = tmp_path / "inputs"
    bad = make_bad_inputs(inputs / "bad")
    make_clip(inputs / "good" / "a.mp4", n_frames=10, size=(320, 240))
    make_clip(inputs / "good" / "nested" / "a.mp4", n_frames=10, size=(320, 240), seed=1)
    (inputs / "good" / "readme.txt").write_text("not media")
    out = tmp_path / "out"
    code = main(["scan", str(inputs), str(tmp_path / "missing.mp4"), "--weights", str(tiny_weights),
                 "--allow-untrained", "--out", str(out), "--quiet", "--no-video"])
    assert code == 1
    report = json.loads((out / "report.json").read_text())
    by_name = {Path(r["input"]).name: r for r in report["results"]}
    assert by_name["missing.mp4"]["verdict"] == "error" and "no such file" in by_name["missing.mp4"]["reason"]
    assert "not a readable video" in by_name[bad["text_as_mp4"].name]["reason"]
    assert "empty file" in by_name[bad["zero_byte"].name]["reason"]
    assert by_name[bad["truncated"].name]["verdict"] == "error"
    assert "truncated" in by_name[bad["truncated"].name]["reason"]
    assert by_name[bad["truncated_moov_at_end"].name]["verdict"] == "error"
    assert by_name[bad["no_face"].name]["verdict"] == "no_face"
    for name in ("gray_image", "large_image", "one_frame"):
        assert by_name[bad[name].name]["verdict"] in ("real", "fake"), by_name[bad[name].name]
    assert by_name["readme.txt"]["verdict"] == "skipped" and "not a video or image" in by_name["readme.txt"]["reason"]
    # Same file name in two folders: outputs stay apart, mirroring the relative path.
    summaries = sorted(p.relative_to(out).as_posix() for p in out.rglob("a.mp4/summary.json"))
    assert summaries == ["inputs/good/a.mp4/summary.json", "inputs/good/nested/a.mp4/summary.json"]
    rows = _read_csv(out / "report.csv")
    assert len(rows) == len(report["results"]) == 13
    assert report["skipped"] == 1 and report["scanned"] == 13 - 1 - report["failed"]
    scanned_fine = {"no_face", "gray_image", "large_image", "one_frame"}
    expected_failures = {"missing.mp4"} | {path.name for name, path in bad.items() if name not in scanned_fine}
    assert {Path(r["input"]).name for r in report["results"] if r["verdict"] == "error"} == expected_failures
    assert report["failed"] == len(expected_failures)


def test_cli_json_goes_to_stdout_alone(tiny_weights, face_clip, tmp_path, capsys):
    code = main(["scan", str(face_clip), "--weights", str(tiny_weights), "--allow-untrained",
                 "--out", str(tmp_path), "--quiet", "--json", "--no-video", "--frames", "5"])
    assert code == 0
    captured = capsys.readouterr()
    summaries = json.loads(captured.out)
    assert len(summaries) == 1 and summaries[0]["frames_analysed"] == 5
    assert "face.mp4" in captured.err


@pytest.mark.parametrize(
    "args",
    [["--every", "0"], ["--every", "2", "--frames", "3"], ["--threshold", "1.5"], ["--aggregate", "median"]],
)
def test_cli_usage_errors_exit_2(tiny_weights, face_clip, args, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["scan", str(face_clip), "--weights", str(tiny_weights), "--out", str(tmp_path), *args])
    assert exit_info.value.code == 2


def test_cli_without_usable_weights_says_so_and_exits_2(tiny_weights, face_clip, tmp_path, capsys):
    assert main(["scan", str(face_clip), "--weights", str(tiny_weights), "--out", str(tmp_path)]) == 2
    assert "untrained" in capsys.readouterr().err
    assert main(["scan", str(face_clip), "--weights", str(tmp_path / "nope.safetensors"),
                 "--out", str(tmp_path)]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    assert not (tmp_path / "face.mp4").exists()


@pytest.mark.slow  # runs the console script in subprocesses
def test_console_script_shows_help_and_never_a_traceback(tiny_weights, tmp_path):
    script = Path(sys.executable).with_name("fakescope")
    help_text = subprocess.run([str(script), "scan", "--help"], capture_output=True, text=True, check=True).stdout
    assert "predictions.csv" in help_text and "--every" in help_text and "Exit status" in help_text
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    run = subprocess.run([str(script), "scan", str(bad), "--weights", str(tiny_weights), "--allow-untrained",
                          "--out", str(tmp_path / "out"), "--quiet"], capture_output=True, text=True)
    assert run.returncode == 1
    assert "Traceback" not in run.stderr + run.stdout
    assert "not a readable video" in run.stdout
