"""The corpus builder, the corpus dataset kind, landmark self-blends, the feature cache and cached-head training."""
from __future__ import annotations

import csv
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from clips import face_image, make_clip, make_image
from fakescope.cli.main import main as cli_main
from fakescope.data import load_dataset
from fakescope.data.corpus import CorpusError, build_corpus, git_blob_id, read_file_list
from fakescope.data.preprocess import load_index, preprocess
from fakescope.video import FrameSelection

LIST_HEADER = ["source_repo", "commit", "path", "blob", "bytes", "kind", "label", "dataset", "identity", "method"]


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture()
def mirror(tmp_path: Path) -> tuple[Path, Path, list[dict]]:
    """A git repository ``owner/faces`` (in the fetch tool's layout) holding two photos of two people, a video and a
    landmark table, and the file list that pins them."""
    mirrors = tmp_path / "mirrors"
    work = tmp_path / "work"
    work.mkdir()
    make_image(work / "photos" / "Ann_Lee" / "Ann_Lee_0001.jpg", size=256)
    (work / "photos" / "Bo_Chan").mkdir(parents=True)
    cv2.imwrite(str(work / "photos" / "Bo_Chan" / "Bo_Chan_0001.png"), cv2.resize(face_image(), (200, 200)))
    make_clip(work / "clips" / "talk.mp4", n_frames=12, size=(320, 240))
    (work / "tables").mkdir()
    (work / "tables" / "keypoints.csv").write_text("name,0,1\nAnn_Lee_0001.jpg,1.0,2.0\n")
    _git(work, "init", "-q")
    _git(work, "add", ".")
    _git(work, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "data")
    commit = _git(work, "rev-parse", "HEAD")
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(mirrors / "owner+faces" / "repo")], check=True)
    rows = []
    for path, kind, label, identity in (("photos/Ann_Lee/Ann_Lee_0001.jpg", "photo", "real", "person:Ann_Lee"),
                                        ("photos/Bo_Chan/Bo_Chan_0001.png", "photo", "real", "person:Bo_Chan"),
                                        ("clips/talk.mp4", "video", "real", "talk:speaker"),
                                        ("tables/keypoints.csv", "landmarks", "", "")):
        data = (work / path).read_bytes()
        rows.append({"source_repo": "owner/faces", "commit": commit, "path": path, "blob": git_blob_id(data),
                     "bytes": len(data), "kind": kind, "label": label, "dataset": "mini", "identity": identity,
                     "method": ""})
    file_list = tmp_path / "files.csv"
    _write_list(file_list, rows)
    return mirrors, file_list, rows


def _write_list(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, LIST_HEADER)
        writer.writeheader()
        writer.writerows(rows)


def test_blob_id_matches_git(tmp_path: Path) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(b"hello\n\x00world")
    assert git_blob_id(path.read_bytes()) == subprocess.run(
        ["git", "hash-object", str(path)], check=True, capture_output=True, text=True).stdout.strip()


def test_build_writes_checked_files_and_manifest(mirror, tmp_path: Path) -> None:
    mirrors, file_list, rows = mirror
    out = tmp_path / "corpus"
    report = build_corpus(file_list, mirrors, out, progress=False)
    assert (report.written, report.reused, report.missing_count) == (4, 0, 0)
    for row in rows:
        assert git_blob_id((out / "files" / "mini" / row["path"]).read_bytes()) == row["blob"]
    with (out / "manifest.csv").open(newline="") as handle:
        manifest = {row["path"]: row for row in csv.DictReader(handle)}
    assert manifest["files/mini/photos/Ann_Lee/Ann_Lee_0001.jpg"]["group"] == "person:Ann_Lee"
    assert manifest["files/mini/clips/talk.mp4"]["kind"] == "video"
    assert manifest["files/mini/tables/keypoints.csv"]["kind"] == "landmarks"


def test_wrong_blob_id_is_refused_and_reported(mirror, tmp_path: Path) -> None:
    mirrors, file_list, rows = mirror
    # A blob id that exists in the mirror but belongs to another file: the bytes do not hash to the listed id.
    rows[0] = {**rows[0], "blob": rows[1]["blob"], "bytes": rows[1]["bytes"]}
    rows[1] = {**rows[1], "blob": "0" * 40}  # not in the mirror at all
    _write_list(file_list, rows)
    out = tmp_path / "corpus"
    report = build_corpus(file_list, mirrors, out, progress=False)
    # Row 0 now names Bo's blob: its bytes are Bo's photo, which hash to that id, so it is accepted as listed;
    # row 1's blob is missing.
    assert report.missing_count == 1
    assert any("blob not in the mirror" in reason for reason in report.missing)
    assert not (out / "files/mini/photos/Bo_Chan/Bo_Chan_0001.png").exists()
    paths = [row["path"] for row in csv.DictReader((out / "manifest.csv").open())]
    assert "files/mini/photos/Bo_Chan/Bo_Chan_0001.png" not in paths


def test_corrupted_copy_is_replaced_and_interrupted_build_resumes(mirror, tmp_path: Path) -> None:
    mirrors, file_list, rows = mirror
    out = tmp_path / "corpus"
    build_corpus(file_list, mirrors, out, datasets=["mini"], progress=False)
    # An interrupted build: one file never written, one half-written.
    (out / "files/mini/clips/talk.mp4").unlink()
    photo = out / "files/mini/photos/Ann_Lee/Ann_Lee_0001.jpg"
    photo.write_bytes(photo.read_bytes()[:100])
    report = build_corpus(file_list, mirrors, out, progress=False)
    assert (report.written, report.reused, report.missing_count) == (2, 2, 0)
    assert git_blob_id(photo.read_bytes()) == rows[0]["blob"]


def test_missing_mirror_and_bad_list_are_clear(mirror, tmp_path: Path) -> None:
    _, file_list, rows = mirror
    empty = tmp_path / "empty"
    empty.mkdir()
    report = build_corpus(file_list, empty, tmp_path / "out", progress=False)
    assert report.missing_count == 4
    assert "fetch github:owner/faces" in next(iter(report.missing))
    _write_list(file_list, [{**rows[0], "path": "../escape.jpg"}])
    with pytest.raises(CorpusError, match="unsafe path"):
        read_file_list(file_list)
    assert cli_main(["corpus", "build", "--list", str(file_list), "--mirrors", str(empty), "--out",
                     str(tmp_path / "o"), "-q"]) == 2


def test_cli_build_exit_status(mirror, tmp_path: Path, capsys) -> None:
    mirrors, file_list, _ = mirror
    assert cli_main(["corpus", "build", "--list", str(file_list), "--mirrors", str(mirrors), "--out",
                     str(tmp_path / "c"), "-q"]) == 0
    assert "4 written" in capsys.readouterr().out


def test_corpus_dataset_reads_photos_and_videos_as_clips(mirror, tmp_path: Path) -> None:
    from fakescope.training.feature_cache import clips_from_records

    mirrors, file_list, _ = mirror
    out = tmp_path / "corpus"
    build_corpus(file_list, mirrors, out, progress=False)
    items = load_dataset(f"corpus:{out}/manifest.csv")
    assert sorted((item.kind, item.group) for item in items) == [
        ("photo", "person:Ann_Lee"), ("photo", "person:Bo_Chan"), ("video", "talk:speaker")]
    assert load_dataset(f"corpus:{out}/manifest.csv?kinds=video")[0].dataset == "mini"
    report = preprocess(items, tmp_path / "crops", FrameSelection.from_options(frames=8), progress=False)
    assert report.counts["ok"] == 3
    records = load_index(tmp_path / "crops")
    by_kind = {kind: [r for r in records if r.kind == kind] for kind in ("photo", "video")}
    assert len(by_kind["photo"]) == 2  # a still is one frame, whatever the frame selection
    assert len(by_kind["video"]) == 8
    clips = clips_from_records(records, length=4)
    assert sorted(len(clip.records) for clip in clips) == [1, 1, 4, 4]


@pytest.fixture(scope="module")
def photo_crop() -> tuple[np.ndarray, np.ndarray]:
    """The astronaut's face crop (RGB, 224 px) and its 68 landmarks from the shipped-in-a-package predictor."""
    from fakescope.faces import create_face_detector, crop_face
    from fakescope.faces.landmarks import LandmarkPredictor, face_box_in_crop

    image = face_image()
    detection = create_face_detector("yunet").detect(image)[0]
    crop = crop_face(image, detection.box, 1.3, 224)
    points = LandmarkPredictor()(crop, face_box_in_crop(detection.box, 1.3, 224))
    return crop, points


def test_landmarks_lie_on_the_face(photo_crop) -> None:
    crop, points = photo_crop
    assert points.shape == (68, 2)
    # The face fills the central ~77% of a 1.3x crop: every landmark lies there, the eyes above the mouth.
    assert points.min() > 224 * 0.08 and points.max() < 224 * 0.95
    assert points[36:48, 1].mean() < points[30, 1] < points[48:68, 1].mean()


def test_self_blend_changes_a_photo_only_inside_the_face(photo_crop) -> None:
    from fakescope.training.sbi import SelfBlender

    crop, points = photo_crop
    hull = np.zeros(crop.shape[:2], np.uint8)
    cv2.fillConvexPoly(hull, cv2.convexHull(points.round().astype(np.int32)), 1)
    # The face region: the landmarks' box, widened by a fifth of the face's size and raised by two fifths for the
    # forehead (the 68 points stop at the brows).
    x1, y1 = points.min(0)
    x2, y2 = points.max(0)
    width, height = x2 - x1, y2 - y1
    ys, xs = np.mgrid[0:224, 0:224]
    face_region = ((xs >= x1 - 0.2 * width) & (xs <= x2 + 0.2 * width)
                   & (ys >= y1 - 0.4 * height) & (ys <= y2 + 0.2 * height))
    for seed in range(6):
        blender = SelfBlender(224, np.random.default_rng(seed), points)
        fake = blender(crop)
        changed = np.abs(fake.astype(int) - crop.astype(int)).max(-1) > 0
        mask = blender.mask[..., 0] > 0
        assert changed.sum() > 0.1 * hull.sum(), "the blend must alter the face"
        assert not changed[~mask].any(), "outside the mask the photo must stay exactly as it was"
        assert not mask[~face_region].any(), "the mask must stay on the face"
        assert mask[hull.astype(bool)].mean() > 0.8, "the mask must cover the face"


def photo_crop_records(folder: Path, count: int = 6) -> list:
    """Crop records of ``count`` real photos of different people: shifted copies of a generated face, 96 px."""
    from fakescope.data.preprocess import CropRecord

    image = cv2.resize(face_image(), (96, 96))
    records = []
    for index in range(count):
        crop = folder / f"crop{index}.jpg"
        cv2.imwrite(str(crop), np.roll(image, index * 5, axis=1))
        records.append(CropRecord(key=f"photo{index}.jpg", path=crop, label=0, dataset="photos", method="original",
                                  group=f"person:{index}", split=None, source=None, frame_index=0, time_s=0.0,
                                  track_id=0, x1=10, y1=10, x2=80, y2=80, crop=crop, kind="photo"))
    return records


@pytest.mark.slow  # a feature cache and a training step
def test_feature_cache_and_training_step_on_photo_clips(tmp_path: Path) -> None:
    from fakescope.models import create_model
    from fakescope.training.cached_head import SourcedClip, score_cached_videos, train_cached_head
    from fakescope.training.feature_cache import (
        CacheSettings, build_feature_cache, clips_from_records, load_cache_index)

    torch.manual_seed(0)
    model = create_model("tiny_lstm")
    clips = clips_from_records(photo_crop_records(tmp_path), length=4)
    cache = tmp_path / "cache"
    summary = build_feature_cache(clips, model.backbone, cache, CacheSettings(sbi_copies=1), 64,
                                  model.config.mean, model.config.std, shard_frames=5, progress=False)
    assert summary["computed"] == 6 and not summary["errors"]
    stored = load_cache_index(cache)
    assert sorted({(c.variant, c.label) for c in stored}) == [("plain0", 0), ("sbi0", 1)]
    assert len(stored) == 12 and all(c.frames == 1 for c in stored)
    assert len(list(cache.glob("shard-*.npy"))) > 1
    # Resuming computes nothing again.
    again = build_feature_cache(clips, model.backbone, cache, CacheSettings(sbi_copies=1), 64,
                                model.config.mean, model.config.std, progress=False)
    assert again["computed"] == 0

    before = {k: v.clone() for k, v in model.state_dict().items()}
    trained = train_cached_head(model, [SourcedClip(cache, c) for c in stored], steps=2, still_batch=4,
                                video_batch=2, progress=False, out_dir=tmp_path / "run",
                                num_workers=0, feature_noise=0.2, mix_statistics=1.0,  # both augmentations on
                                paired_batches=True)  # each photo beside its own self-blended copy
    after = trained.state_dict()
    assert not torch.equal(before["convs.0.0.weight"], after["convs.0.0.weight"]), "the neck must train"
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("backbone.")), "backbone is frozen"
    scores = score_cached_videos(trained, [SourcedClip(cache, c) for c in stored])
    assert len(scores) == 12 and all(0.0 <= s["p_fake"] <= 1.0 for s in scores.values())


@pytest.mark.slow  # a feature cache and three short trainings
def test_weight_averaging_returns_averaged_weights_and_keeps_the_last_steps(tmp_path: Path) -> None:
    import copy

    from fakescope.models import create_model
    from fakescope.training.cached_head import SourcedClip, train_cached_head
    from fakescope.training.feature_cache import (
        CacheSettings, build_feature_cache, clips_from_records, load_cache_index)

    torch.manual_seed(0)
    model = create_model("tiny_lstm")
    cache = tmp_path / "cache"
    build_feature_cache(clips_from_records(photo_crop_records(tmp_path), length=1), model.backbone, cache, CacheSettings(sbi_copies=1),
                        64, model.config.mean, model.config.std, progress=False)
    stored = [SourcedClip(cache, c) for c in load_cache_index(cache)]

    def train(**averaging):
        return train_cached_head(copy.deepcopy(model), stored, steps=4, still_batch=4, progress=False,
                                 num_workers=0, precision="32-true", out_dir=tmp_path / "run", **averaging)

    plain = train().state_dict()
    averaged = train(ema_decay=0.5, ema_start=1)
    last_step = averaged.last_step_state
    # Averaging only watches: the last step's weights are those of the same training without it.
    assert last_step.keys() == plain.keys() and all(torch.equal(last_step[k], plain[k]) for k in plain)
    weights = averaged.state_dict()
    assert not torch.equal(weights["convs.0.0.weight"], last_step["convs.0.0.weight"]), "averaged, not the last"
    assert all(torch.equal(weights[k], plain[k]) for k in plain if k.startswith("backbone.")), "backbone frozen"
    # Averaging that starts at the last step holds that step's weights alone.
    only_last = train(ema_decay=0.5, ema_start=3).state_dict()
    assert all(torch.allclose(only_last[k].float(), plain[k].float()) for k in plain)


@pytest.mark.slow  # caches maps and fine-tunes
def test_maps_cached_before_the_last_stage_fine_tune_the_stages_after_it(tmp_path: Path) -> None:
    """A cache cut at an earlier backbone stage: scoring runs the remaining stages (and agrees with the whole
    model on the crops), training moves them and nothing before them."""
    from fakescope.data.preprocess import CropRecord
    from fakescope.models import create_model
    from fakescope.models.backbone import StageBackbone
    from fakescope.training.augment import normalise
    from fakescope.training.cached_head import SourcedClip, score_cached_videos, train_cached_head
    from fakescope.training.feature_cache import CacheSettings, build_feature_cache, clips_from_records, load_cache_index

    torch.manual_seed(0)
    model = create_model("tiny_lstm", backbone_stage="layer4").eval()
    image = cv2.resize(face_image(), (64, 64))
    records = []
    for index in range(4):
        crop = tmp_path / f"crop{index}.png"
        cv2.imwrite(str(crop), np.roll(image, index * 7, axis=0))
        records.append(CropRecord(key=f"photo{index}.png", path=crop, label=index % 2, dataset="photos",
                                  method="original", group=f"person:{index}", split=None, source=None, frame_index=0,
                                  time_s=0.0, track_id=0, x1=0, y1=0, x2=64, y2=64, crop=crop, kind="photo"))
    cache = tmp_path / "cache"
    build_feature_cache(clips_from_records(records, length=1), StageBackbone(model.backbone, "layer2"), cache,
                        CacheSettings(augment=False, jpeg_probability=0.0, flip=False), 64, model.config.mean,
                        model.config.std, precision="fp32", progress=False)
    stored = [SourcedClip(cache, clip) for clip in load_cache_index(cache)]
    scores = score_cached_videos(model, stored, cache_stage="layer2")
    with torch.no_grad():
        for index, record in enumerate(records):
            rgb = cv2.cvtColor(cv2.imread(str(record.crop)), cv2.COLOR_BGR2RGB)
            frame = normalise(torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0), model.config.mean,
                              model.config.std)
            whole = model.predict_track(model.forward_features(frame), window=1)
            assert scores[record.key]["p_fake"] == pytest.approx(float(whole[0]), abs=1e-3)

    before = {k: v.clone() for k, v in model.state_dict().items()}
    trained = train_cached_head(model, stored, steps=2, still_batch=4, video_batch=2, progress=False,
                                out_dir=tmp_path / "run", num_workers=0, cache_stage="layer2", precision="32-true")
    after = trained.state_dict()
    tuned = [k for k in before if k.startswith(("backbone.layer3.", "backbone.layer4.")) and "weight" in k
             and "bn" not in k]
    assert tuned and all(not torch.equal(before[k], after[k]) for k in tuned), "the stages after the cache train"
    frozen = [k for k in before if k.startswith(("backbone.conv1", "backbone.layer1.", "backbone.layer2."))]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen), "the cached stages stay frozen"
    # BatchNorm statistics of the tuned stages stay as they were (see CachedHeadModule.train).
    assert all(torch.equal(before[k], after[k]) for k in before if k.endswith(("running_mean", "running_var")))


def test_downscaling_and_greyscale_apply_to_real_and_self_blended_copies_alike(tmp_path: Path) -> None:
    from fakescope.data.preprocess import CropRecord
    from fakescope.training.feature_cache import CacheSettings, clips_from_records, make_variants

    crop = tmp_path / "crop.png"
    image = cv2.resize(face_image(), (128, 128))
    cv2.imwrite(str(crop), image)
    record = CropRecord(key="photo.png", path=crop, label=0, dataset="photos", method="original", group="person:0",
                        split=None, source=None, frame_index=0, time_s=0.0, track_id=0, x1=0, y1=0, x2=128,
                        y2=128, crop=crop, kind="photo")
    (clip,) = clips_from_records([record], length=1)

    def sharpness(frame: np.ndarray) -> float:
        return float(cv2.Laplacian(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())

    plain = dict((name, frames) for name, _, frames in make_variants(
        clip, CacheSettings(sbi_copies=1, flip=0.0, jpeg_probability=0.0), 128, None))
    small = dict((name, frames) for name, _, frames in make_variants(
        clip, CacheSettings(sbi_copies=1, flip=0.0, jpeg_probability=0.0, downscale_probability=1.0,
                            downscale_range=(0.3, 0.3)), 128, None))
    assert plain.keys() == small.keys() == {"plain0", "sbi0"}
    for name in plain:
        assert small[name][0].shape == plain[name][0].shape
        assert sharpness(small[name][0]) < 0.5 * sharpness(plain[name][0]), f"{name} must lose detail"
    grey = dict((name, frames) for name, _, frames in make_variants(
        clip, CacheSettings(sbi_copies=1, flip=0.0, jpeg_probability=0.0, greyscale_probability=1.0), 128, None))
    for name, frames in grey.items():
        assert np.array_equal(frames[0][..., 0], frames[0][..., 2]) and frames[0][..., 0].std() > 10, name
        assert not np.array_equal(plain[name][0][..., 0], plain[name][0][..., 2])


def test_h264_recompression_applies_to_real_and_self_blended_copies_alike(tmp_path: Path) -> None:
    from fakescope.data.preprocess import CropRecord
    from fakescope.training.feature_cache import CacheSettings, clips_from_records, make_variants

    crop = tmp_path / "crop.png"
    cv2.imwrite(str(crop), cv2.resize(face_image(), (128, 128)))
    record = CropRecord(key="photo.png", path=crop, label=0, dataset="photos", method="original", group="person:0",
                        split=None, source=None, frame_index=0, time_s=0.0, track_id=0, x1=0, y1=0, x2=128,
                        y2=128, crop=crop, kind="photo")
    (clip,) = clips_from_records([record], length=1)

    def variants(**settings) -> dict[str, np.ndarray]:
        return {name: frames[0] for name, _, frames in make_variants(
            clip, CacheSettings(sbi_copies=1, flip=0.0, jpeg_probability=0.0, **settings), 128, None)}

    plain = variants()
    mild, strong = variants(h264_probability=1.0, h264_crf=(18, 18)), variants(h264_probability=1.0, h264_crf=(36, 36))
    assert plain.keys() == mild.keys() == strong.keys() == {"plain0", "sbi0"}
    for name in plain:
        assert strong[name].shape == plain[name].shape and strong[name].dtype == np.uint8
        error_mild = np.abs(mild[name].astype(int) - plain[name]).mean()
        error_strong = np.abs(strong[name].astype(int) - plain[name]).mean()
        # The codec changes the face, more at a higher CRF, but keeps it (a round trip, not noise).
        assert 0 < error_mild < error_strong < 30, (name, error_mild, error_strong)


def test_held_out_identities_split_into_two_halves_by_name() -> None:
    from fakescope.data.corpus import is_calibration_identity

    groups = [f"person:{i}" for i in range(400)]
    calibration = {g for g in groups if is_calibration_identity(g)}
    assert 150 < len(calibration) < 250, "about half of the identities choose the threshold"
    # The split depends on the name alone: the same person lands in the same half in every run and script.
    assert calibration == {g for g in reversed(groups) if is_calibration_identity(g)}


def test_held_out_roles_keep_the_test_half_and_split_the_calibration_half() -> None:
    from fakescope.data.corpus import held_out_role, is_calibration_identity

    groups = [f"person:{i}" for i in range(600)]
    roles = {g: held_out_role(g) for g in groups}
    # The test half is exactly the test half of the two-way split, so a recipe that trains on "fit" identities is
    # measured on the same videos as one that trains on none.
    assert {g for g, r in roles.items() if r == "test"} == {g for g in groups if not is_calibration_identity(g)}
    calibration = [g for g in groups if is_calibration_identity(g)]
    threshold = sum(roles[g] == "threshold" for g in calibration)
    assert 0.2 < threshold / len(calibration) < 0.45, "about a third of the calibration half chooses the threshold"
    assert {roles[g] for g in calibration} == {"fit", "threshold"}
