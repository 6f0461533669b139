"""Heatmaps of the fake class (``--heatmap``): the maps themselves, the heatmap pass, heatmap.mp4 and the PNGs."""
from __future__ import annotations

import json
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch
from torch import nn

from clips import make_clip, make_image
from fakescope.cli.main import main
from fakescope.faces import square_crop_box
from fakescope.analysis import Scanner
from fakescope.analysis.heatmaps import STORED_CAM_SIZE, TrackGradCam, compute_heatmaps
from fakescope.models import CheckpointMeta, create_model
from fakescope.options import AnalysisOptions, OutputOptions
from fakescope.outputs import scan_to_folder
from fakescope.video import FrameSelection


@pytest.fixture(scope="module")
def face_clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clips") / "face.mp4", n_frames=12, size=(480, 360), fps=25.0)


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="bgr24") for frame in container.decode(video=0)]


class BrightnessBackbone(nn.Module):
    """A backbone whose feature map is the crop's brightness (8x8 pooled): its evidence sits where the crop is
    bright, so a correct CAM must be hot exactly there."""

    num_features = 4

    def forward_features(self, frames: torch.Tensor) -> torch.Tensor:
        brightness = frames.mean(1, keepdim=True).relu()
        return nn.functional.avg_pool2d(brightness, 8).expand(-1, self.num_features, -1, -1)


def _controlled_model() -> nn.Module:
    model = create_model("tiny_lstm").eval()
    model.backbone = BrightnessBackbone()
    model.convs = nn.Identity()
    # Fake logit = total feature mass, so more evidence anywhere means more fake.
    model.forward_temporal = lambda features: torch.stack([-features.sum(-1), features.sum(-1)], -1)
    return model


@pytest.mark.parametrize("method", ["hirescam", "gradcam"])
def test_cam_is_hot_where_the_evidence_is(method):
    frames = torch.full((3, 3, 64, 64), -1.0)
    frames[:, :, 8:24, 40:56] = 2.0  # a bright patch in the top right of every crop
    cams = TrackGradCam(_controlled_model(), method=method)(frames)
    assert cams.shape == (3, 64, 64) and cams.dtype == np.float32
    assert cams.min() >= 0.0 and cams.max() == pytest.approx(1.0)
    for cam in cams:
        assert cam[12:20, 44:52].mean() > 0.9  # the patch, upsampled to the crop's own coordinates
        assert cam[40:, :24].max() < 0.05  # far from it: cold


def test_cam_size_can_be_chosen():
    frames = torch.zeros(2, 3, 64, 64)
    frames[:, :, 32:, 32:] = 2.0
    cams = TrackGradCam(_controlled_model())(frames, size=16)
    assert cams.shape == (2, 16, 16)
    assert cams[:, 10:, 10:].mean() > 0.9 and cams[:, :6, :6].max() < 0.05


@pytest.mark.slow  # backward passes of several models
@pytest.mark.parametrize("overrides", [{}, {"rnn": "gru"}, {"rnn": "gru", "bidirectional": True},
                                       {"bidirectional": True}])
def test_cam_through_real_tiny_models(overrides):
    torch.manual_seed(1)
    model = create_model("tiny_lstm", **overrides).eval()
    grad_cam = TrackGradCam(model)
    frames = torch.randn(6, 3, 64, 64)
    with torch.inference_mode():  # the scan runs under inference mode; the CAM must still get its gradients
        cams = grad_cam(frames)
    assert cams.shape == (6, 64, 64)
    assert np.isfinite(cams).all() and cams.min() >= 0.0 and cams.max() <= 1.0
    raw = grad_cam.attribute(frames)
    assert raw.shape[:2] == (6, 1) and raw.abs().sum() > 0  # the fake logit's gradient reaches the feature map
    # The model is left as found: eval mode, trainable backbone, no gradients accumulated.
    assert not model.training
    assert all(p.requires_grad and p.grad is None for p in model.parameters())


def test_hirescam_stays_where_a_face_pooled_model_looks():
    torch.manual_seed(2)
    # A fine map (32x32 at 128 px) so that the crop's corners lie outside the face ellipse and beyond the reach of
    # the two 3x3 convs after the backbone.
    model = create_model("tiny_lstm", backbone_stage="layer1", input_size=128, pool="face").eval()
    frames = torch.randn(4, 3, 128, 128)
    with torch.inference_mode():  # a scan runs first, under inference mode, and the pool caches its mask
        model(frames[None])
    raw = TrackGradCam(model, method="hirescam").attribute(frames)[:, 0]
    assert raw.shape == (4, 32, 32)
    corner = 4  # cells
    for rows, cols in ((slice(0, corner), slice(0, corner)), (slice(-corner, None), slice(-corner, None))):
        assert raw[:, rows, cols].abs().max() == 0
    assert raw[:, 12:20, 12:20].abs().sum() > 0
    with pytest.raises(ValueError, match="unknown CAM method"):
        TrackGradCam(model, method="saliency")


@pytest.fixture(scope="module")
def heatmap_scan(tiny_weights, face_clip, tmp_path_factory):
    out = tmp_path_factory.mktemp("heatmap_scan")
    detector = Scanner.load(tiny_weights, device="cpu", allow_untrained=True,
                            selection=FrameSelection.from_options(every=2))
    return scan_to_folder(detector, face_clip, out, OutputOptions(heatmap=True)), out


def test_heatmap_pass_covers_every_analysed_face(tiny_weights, face_clip):
    model = create_model("tiny_lstm").eval()
    detector = Scanner(model, CheckpointMeta(), device="cpu")
    result = detector.scan(face_clip)
    heatmaps = compute_heatmaps(detector.encoder, face_clip, result.frames, FrameSelection(), 5)
    assert set(heatmaps) == {(f.frame_index, face.track_id) for f in result.frames for face in f.faces}
    cam = heatmaps[(0, 0)]
    assert cam.shape == (STORED_CAM_SIZE, STORED_CAM_SIZE) and cam.dtype == np.float16


@pytest.mark.slow  # end to end on generated video (a second or more on a loaded machine)
def test_heatmap_video_differs_from_annotated_only_around_the_face(heatmap_scan, face_clip):
    result, out = heatmap_scan
    assert result.outputs["heatmap"] == str(out / "heatmap.mp4")
    annotated, heatmap = _frames(out / "annotated.mp4"), _frames(out / "heatmap.mp4")
    assert len(heatmap) == len(annotated) == 12
    for record in result.frames[:3]:
        face = record.faces[0]
        x1, y1, x2, y2 = (int(round(v)) for v in square_crop_box(face.box, 1.3))
        difference = np.abs(annotated[record.frame_index].astype(int) - heatmap[record.frame_index].astype(int))
        inside = difference[max(y1, 0) + 4 : y2 - 4, max(x1, 0) + 4 : x2 - 4]
        far_outside = np.ones(difference.shape[:2], bool)
        far_outside[max(y1 - 24, 0) : y2 + 24, max(x1 - 24, 0) : x2 + 24] = False
        assert inside.mean() > 5 * max(difference[far_outside].mean(), 0.5)
        assert difference[far_outside].mean() < 2.0  # only codec noise away from the face


def test_heatmap_pngs_of_the_most_fake_frames(heatmap_scan):
    result, out = heatmap_scan
    faces = sorted((face for f in result.frames for face in f.faces), key=lambda f: (-f.p_fake, f.frame_index))
    expected = set()
    for face in faces[:3]:
        expected |= {f"track0_frame{face.frame_index}.png", f"track0_frame{face.frame_index}_crop.png"}
    assert {path.name for path in (out / "heatmaps").iterdir()} == expected
    assert sorted(Path(p).name for p in result.outputs["heatmap_frames"]) == sorted(expected)
    crop = cv2.imread(str(out / "heatmaps" / f"track0_frame{faces[0].frame_index}_crop.png"))
    full = cv2.imread(str(out / "heatmaps" / f"track0_frame{faces[0].frame_index}.png"))
    assert crop.shape == (224, 224, 3) and full.shape == (360, 480, 3)


@pytest.mark.slow  # end to end on generated video (a second or more on a loaded machine)
def test_heatmap_for_an_image(tiny_weights, tmp_path):
    image = make_image(tmp_path / "face.png", size=(400, 300))
    stale = tmp_path / "out" / "heatmaps" / "track3_frame40.png"  # left by an earlier scan into the same folder
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    detector = Scanner.load(tiny_weights, device="cpu", allow_untrained=True)
    result = scan_to_folder(detector, image, tmp_path / "out", OutputOptions(heatmap=True))
    assert result.outputs["heatmap"] == str(tmp_path / "out" / "heatmap.jpg")
    assert cv2.imread(result.outputs["heatmap"]).shape == (300, 400, 3)
    assert sorted(p.name for p in stale.parent.iterdir()) == ["track0_frame0.png", "track0_frame0_crop.png"]


@pytest.mark.slow  # end to end on generated video (a second or more on a loaded machine)
@pytest.mark.parametrize("overrides", [{"rnn": "gru"}, {"rnn": "gru", "bidirectional": True}])
def test_heatmap_scan_with_other_rnns(overrides, face_clip, tmp_path):
    torch.manual_seed(0)
    analysis = AnalysisOptions(selection=FrameSelection.from_options(frames=6))
    detector = Scanner(create_model("tiny_lstm", **overrides), CheckpointMeta(), analysis=analysis, device="cpu")
    result = scan_to_folder(detector, face_clip, tmp_path, OutputOptions(heatmap=True))
    assert result.verdict in ("real", "fake"), result.reason
    assert len(_frames(tmp_path / "heatmap.mp4")) == 12
    assert len(result.outputs["heatmap_frames"]) == 6


@pytest.mark.slow  # end to end on generated video (a second or more on a loaded machine)
def test_cli_heatmap_flag(tiny_weights, face_clip, tmp_path):
    out = tmp_path / "out"
    code = main(["scan", str(face_clip), "--weights", str(tiny_weights), "--allow-untrained", "--out", str(out),
                 "--quiet", "--frames", "4", "--heatmap"])
    assert code == 0
    summary = json.loads((out / "face.mp4" / "summary.json").read_text())
    assert Path(summary["outputs"]["heatmap"]).is_file()
    assert all(Path(path).is_file() for path in summary["outputs"]["heatmap_frames"])
    without = tmp_path / "without"
    assert main(["scan", str(face_clip), "--weights", str(tiny_weights), "--allow-untrained", "--out",
                 str(without), "--quiet", "--frames", "4"]) == 0
    assert not (without / "face.mp4" / "heatmap.mp4").exists()
    assert not (without / "face.mp4" / "heatmaps").exists()


@pytest.mark.slow  # end to end on generated video (a second or more on a loaded machine)
def test_cli_heatmap_method_is_passed_through_and_checked(tiny_weights, face_clip, tmp_path, monkeypatch, capsys):
    import fakescope.analysis.heatmaps as gradcam

    used = []
    original = gradcam.TrackGradCam.__init__

    def recording_init(self, model, layer=None, method="hirescam"):
        used.append(method)
        original(self, model, layer, method)

    monkeypatch.setattr(gradcam.TrackGradCam, "__init__", recording_init)
    out = tmp_path / "out"
    assert main(["scan", str(face_clip), "--weights", str(tiny_weights), "--allow-untrained", "--out", str(out),
                 "--quiet", "--frames", "3", "--no-video", "--heatmap", "--heatmap-method", "gradcam"]) == 0
    assert used == ["gradcam"]
    with pytest.raises(SystemExit):
        main(["scan", str(face_clip), "--heatmap", "--heatmap-method", "saliency"])
    assert "invalid choice" in capsys.readouterr().err
