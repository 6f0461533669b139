"""Detecting every K frames and following faces in between (``IntervalFaceDetector``), alone and inside the scan."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from clips import face_image, make_clip
from fakescope.analysis import Scanner
from fakescope.faces import Detection, IntervalFaceDetector, YuNetDetector, box_iou
from fakescope.video import MediaReader

CANVAS = (480, 640)  # height, width
FACE_SIDE = 300


@pytest.fixture(scope="module")
def yunet() -> YuNetDetector:
    return YuNetDetector()


class CountingDetector:
    """YuNet, counting the frames it is asked about."""

    def __init__(self, detector: YuNetDetector) -> None:
        self.detector = detector
        self.calls = 0

    def detect(self, image_bgr: np.ndarray) -> list[Detection]:
        self.calls += 1
        return self.detector.detect(image_bgr)


def canvas(seed: int = 0) -> np.ndarray:
    """A smooth textured background (blown-up noise), different for each seed."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(70, 190, size=(CANVAS[0] // 40, CANVAS[1] // 40, 3), dtype=np.uint8)
    return cv2.resize(coarse, (CANVAS[1], CANVAS[0]), interpolation=cv2.INTER_CUBIC)


def scene(left: int, top: int, seed: int = 0, face: bool = True) -> np.ndarray:
    """The background of ``seed`` with the astronaut's portrait (FACE_SIDE pixels) at (left, top), light noise."""
    frame = canvas(seed)
    if face:
        portrait = cv2.resize(face_image(), (FACE_SIDE, FACE_SIDE), interpolation=cv2.INTER_AREA)
        frame[top : top + FACE_SIDE, left : left + FACE_SIDE] = portrait
    noise = np.random.default_rng(1000 + left + 7 * top).integers(-4, 5, size=frame.shape, dtype=np.int16)
    return np.clip(frame.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def test_every_1_is_the_detector_on_every_frame(yunet: YuNetDetector) -> None:
    counting = CountingDetector(yunet)
    finder = IntervalFaceDetector(counting, every=1)
    for index in range(5):
        frame = scene(60 + 9 * index, 40)
        found = finder.detect(frame, index)
        expected = yunet.detect(frame)
        assert [d.box.tolist() for d in found] == [d.box.tolist() for d in expected]
        assert [d.score for d in found] == [d.score for d in expected]
    assert counting.calls == finder.detector_runs == 5


def test_boxes_follow_a_moving_face_between_detections(yunet: YuNetDetector) -> None:
    counting = CountingDetector(yunet)
    finder = IntervalFaceDetector(counting, every=8)
    first = finder.detect(scene(60, 40), 0)
    assert len(first) == 1
    for index in range(1, 8):  # 7 px right and 3 px down per frame
        frame = scene(60 + 7 * index, 40 + 3 * index)
        followed = finder.detect(frame, index)
        truth = yunet.detect(frame)[0].box
        assert len(followed) == 1
        assert box_iou(followed[0].box, truth) > 0.8  # the detector's own boxes vary that much frame to frame
        shift = followed[0].box[:2] - first[0].box[:2]
        np.testing.assert_allclose(shift, [7 * index, 3 * index], atol=1.5)
        np.testing.assert_allclose(followed[0].landmarks - first[0].landmarks, [shift] * 5, atol=1e-3)
        assert followed[0].score == first[0].score
    assert counting.calls == finder.detector_runs == 1
    # The 8th frame after a detection: the detector runs again on schedule.
    finder.detect(scene(60 + 7 * 8, 40 + 3 * 8), 8)
    assert counting.calls == 2 and finder.reasons == {"first": 1, "interval": 1}


def test_a_scene_cut_detects_at_once(yunet: YuNetDetector) -> None:
    finder = IntervalFaceDetector(yunet, every=30)
    for index in range(3):
        finder.detect(scene(40, 40, seed=0), index)
    after_cut = scene(320, 150, seed=5)
    found = finder.detect(after_cut, 3)
    assert finder.reasons["cut"] == 1 and finder.detector_runs == 2
    assert [d.box.tolist() for d in found] == [d.box.tolist() for d in yunet.detect(after_cut)]


def test_a_jump_detects_at_once(yunet: YuNetDetector) -> None:
    finder = IntervalFaceDetector(yunet, every=30)
    finder.detect(scene(10, 40), 0)
    finder.detect(scene(14, 40), 1)
    jumped = scene(100, 40)  # the face 86 px further (1.6 face widths): beyond its search window
    found = finder.detect(jumped, 2)
    assert finder.reasons["unsure"] == 1 and finder.detector_runs == 2
    assert len(found) == 1 and box_iou(found[0].box, yunet.detect(jumped)[0].box) == 1.0


def test_a_face_that_disappears_is_dropped_at_once(yunet: YuNetDetector) -> None:
    finder = IntervalFaceDetector(yunet, every=30)
    assert len(finder.detect(scene(60, 40), 0)) == 1
    assert finder.detect(scene(60, 40, face=False), 1) == []
    assert finder.reasons["unsure"] == 1


def test_every_counts_frames_of_the_video_not_analysed_ones(yunet: YuNetDetector) -> None:
    """With frames 12 apart (sparse sampling), K=5 detects every analysed frame, K=30 one in three."""
    frames = [(index, scene(60 + index // 4, 40)) for index in (0, 12, 24, 36, 48, 60)]
    runs = {}
    for every in (5, 30):
        finder = IntervalFaceDetector(yunet, every=every)
        for index, frame in frames:
            assert len(finder.detect(frame, index)) == 1
        runs[every] = finder.detector_runs
    assert runs == {5: 6, 30: 2}


def test_bad_settings_are_refused(yunet: YuNetDetector) -> None:
    with pytest.raises(ValueError, match="every"):
        IntervalFaceDetector(yunet, every=0)
    with pytest.raises(ValueError, match="correlation"):
        IntervalFaceDetector(yunet, every=3, min_similarity=2.0)


@pytest.fixture(scope="module")
def moving_clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("interval") / "face.mkv", n_frames=16, size=(640, 480))


@pytest.fixture(scope="module")
def every_frame_scan(tiny_weights: Path, moving_clip: Path):
    return Scanner.load(tiny_weights, device="cpu", allow_untrained=True, detect_every=1).scan(moving_clip)


def _faces(result) -> list[list]:
    return [[(face.track_id, face.box) for face in frame.faces] for frame in result.frames]


def test_scan_with_k_1_boxes_are_the_detectors_on_every_frame(every_frame_scan, moving_clip: Path,
                                                               yunet: YuNetDetector) -> None:
    with MediaReader(moving_clip) as reader:
        expected = [[tuple(float(v) for v in d.box) for d in yunet.detect(frame.image)] for frame in reader]
    assert [[box for _, box in faces] for faces in _faces(every_frame_scan)] == expected
    assert every_frame_scan.timing["counts"]["detector_runs"] == 16


def test_scan_every_k_finds_the_same_faces_with_a_fifth_of_the_detections(tiny_weights: Path, moving_clip: Path,
                                                                            every_frame_scan) -> None:
    every_5 = Scanner.load(tiny_weights, device="cpu", allow_untrained=True, detect_every=5).scan(moving_clip)
    assert every_5.timing["counts"]["detector_runs"] == 4  # frames 0, 5, 10, 15
    for reference, followed in zip(_faces(every_frame_scan), _faces(every_5), strict=True):
        assert len(reference) == len(followed) == 1
        assert reference[0][0] == followed[0][0]  # one track throughout
        assert box_iou(np.array(reference[0][1]), np.array(followed[0][1])) > 0.85
    assert every_5.verdict == every_frame_scan.verdict


@pytest.mark.slow  # three scans
def test_batch_size_does_not_change_the_scores(tiny_weights: Path, moving_clip: Path) -> None:
    results = [Scanner.load(tiny_weights, device="cpu", allow_untrained=True, batch_size=size).scan(moving_clip)
               for size in (1, 7, 32)]
    scores = [[face.p_fake for frame in result.frames for face in frame.faces] for result in results]
    assert all(value is not None for value in scores[0]) and len(scores[0]) == 16
    for other in scores[1:]:
        np.testing.assert_allclose(other, scores[0], rtol=0, atol=1e-6)


def test_a_face_that_enters_is_found_on_the_frame_it_appears(yunet: YuNetDetector) -> None:
    """With no face to follow the detector runs on every frame: a face entering (or missed by the last run) must not
    wait ``every`` frames to be seen (a rotated phone clip lost its only faces this way)."""
    finder = IntervalFaceDetector(yunet, every=30)
    assert finder.detect(scene(60, 40, face=False), 0) == []
    assert finder.detect(scene(60, 40, face=False), 1) == []
    entered = scene(60, 40)
    found = finder.detect(entered, 2)
    assert finder.reasons["no_face"] == 2 and finder.detector_runs == 3
    assert len(found) == 1 and box_iou(found[0].box, yunet.detect(entered)[0].box) == 1.0
    finder.detect(scene(62, 40), 3)  # and followed from there on
    assert finder.detector_runs == 3
