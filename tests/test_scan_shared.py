"""Scanning real FaceForensics++ clips from ../shared (skipped where ../shared is absent, failing under CI=true)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import av
import pytest

from fakescope.cli.main import main
from fakescope.analysis import Scanner
from fakescope.models import create_model, save_checkpoint
from fakescope.video import FrameSelection

pytestmark = pytest.mark.slow  # whole FaceForensics++ videos scanned with every output


def _labels(ffpp_dir: Path) -> dict[str, dict[str, str]]:
    with open(ffpp_dir / "labels.csv", newline="") as handle:
        return {row["path"]: row for row in csv.DictReader(handle)}


@pytest.mark.parametrize("which", ["real_video", "fake_video"])
def test_scan_of_a_real_and_a_fake_ffpp_video_writes_all_outputs(which, request, ffpp_dir, tiny_weights, tmp_path):
    video: Path = request.getfixturevalue(which)
    expected_frames = int(_labels(ffpp_dir)[video.relative_to(ffpp_dir).as_posix()]["frames"])
    out = tmp_path / "out"
    code = main(["scan", str(video), "--weights", str(tiny_weights), "--allow-untrained", "--out", str(out), "-q"])
    assert code == 0
    folder = out / video.name
    assert {p.name for p in folder.iterdir()} >= {"predictions.csv", "summary.json", "annotated.mp4", "trend.png"}
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["frames_analysed"] == expected_frames
    assert summary["frames_with_faces"] >= 0.95 * expected_frames
    # One person in these clips: the main track covers nearly every frame.
    assert max(track["frames"] for track in summary["tracks"]) >= 0.9 * expected_frames
    with av.open(str(folder / "annotated.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
        assert sum(1 for _ in container.decode(video=0)) == expected_frames


def test_design_model_with_the_shared_imagenet_backbone_scans(real_video, backbone_weights, tmp_path):
    model = create_model("xception_lstm", backbone_weights=backbone_weights)
    weights = save_checkpoint(tmp_path / "xception.safetensors", model, half=True)
    assert weights.stat().st_size < 60 * 1024 * 1024
    detector = Scanner.load(weights, device="cpu", allow_untrained=True,
                             selection=FrameSelection.from_options(frames=8))
    result = detector.scan(real_video)
    assert result.frames_analysed == 8 and result.frames_with_faces == 8
    assert all(0.0 <= face.p_fake <= 1.0 for frame in result.frames for face in frame.faces)
