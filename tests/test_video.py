"""Tests for fakescope.video: probing, reading, frame selection, discovery and mp4 writing."""
from __future__ import annotations

import csv
import dataclasses
import gc
import re
import threading
import time
import weakref
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from clips import make_bad_inputs, make_clip, make_exif_image, make_image, render_frame
from fakescope.video import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    Frame,
    FrameSelection,
    MediaError,
    MediaInfo,
    MediaReader,
    VideoWriter,
    find_media,
    probe,
)


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def clip30(media_dir: Path) -> Path:
    """30 frames, 320x240, 25 fps, with a face."""
    return make_clip(media_dir / "clip30.mp4", n_frames=30, size=(320, 240), fps=25.0)


@pytest.fixture(scope="session")
def bad_inputs(media_dir: Path) -> dict[str, Path]:
    return make_bad_inputs(media_dir / "bad")


def read_all(path: Path, **reader_options: object) -> list[Frame]:
    with MediaReader(path, **reader_options) as reader:
        return list(reader)


def decode_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("decode:")]


# --- probe and reading ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", sorted(VIDEO_EXTENSIONS))
def test_every_video_extension_probes_and_reads(media_dir: Path, suffix: str) -> None:
    path = make_clip(media_dir / f"ext{suffix}", n_frames=12, size=(160, 120), fps=25.0)
    info = probe(path)
    assert (info.kind, info.width, info.height, info.frame_count) == ("video", 160, 120, 12)
    assert info.fps == pytest.approx(25.0)
    assert info.duration_s == pytest.approx(12 / 25)
    frames = read_all(path)
    assert [frame.index for frame in frames] == list(range(12))
    assert all(frame.image.shape == (120, 160, 3) and frame.image.dtype == np.uint8 for frame in frames)


def test_vp9_webm_reads(media_dir: Path) -> None:
    path = make_clip(media_dir / "vp9.webm", n_frames=8, size=(160, 120), codec="vp9")
    assert len(read_all(path)) == 8


@pytest.mark.parametrize("suffix", sorted(IMAGE_EXTENSIONS))
def test_every_image_extension_probes_and_reads(media_dir: Path, suffix: str) -> None:
    path = make_image(media_dir / f"face{suffix}", size=(200, 150))
    info = probe(path)
    assert info == MediaInfo(path=path, kind="image", width=200, height=150, fps=0.0, frame_count=1)
    assert info.duration_s == 0.0
    with MediaReader(path) as reader:
        frames = list(reader)
        assert reader.frames_decoded == 1 and reader.decode_error is None
    assert len(frames) == 1
    assert (frames[0].index, frames[0].time_s, frames[0].image.shape) == (0, 0.0, (150, 200, 3))
    # The content is the face photo, not garbage: compare with the source resized the same way.
    expected = cv2.resize(cv2.imread(str(make_image(media_dir / "reference.png", size=(200, 150)))), (200, 150))
    assert np.abs(frames[0].image.astype(int) - expected).mean() < 6


def test_frame_indices_and_timestamps(clip30: Path) -> None:
    frames = read_all(clip30)
    assert [frame.index for frame in frames] == list(range(30))
    assert [frame.time_s for frame in frames] == pytest.approx([index / 25 for index in range(30)])


def test_ntsc_frame_rate(media_dir: Path) -> None:
    path = make_clip(media_dir / "ntsc.mp4", n_frames=10, size=(160, 120), fps=30000 / 1001)
    info = probe(path)
    assert info.fps == pytest.approx(29.97, abs=0.001)
    assert read_all(path)[9].time_s == pytest.approx(9 * 1001 / 30000, abs=1e-4)


def test_frames_match_what_was_encoded(clip30: Path) -> None:
    frames = read_all(clip30)
    for index in (0, 17, 29):
        source = render_frame(index, 30, (320, 240))
        assert np.abs(frames[index].image.astype(int) - source).mean() < 8, index


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("text_as_mp4", "not a readable video: Invalid data found when processing input"),
        ("zero_byte", "empty file (0 bytes)"),
        ("truncated_moov_at_end", "not a readable video: Invalid data found when processing input: moov atom not found"),
        ("no_decodable_frame", "no decodable video frame"),
    ],
)
def test_probe_rejects_bad_inputs(bad_inputs: dict[str, Path], name: str, reason: str) -> None:
    with pytest.raises(MediaError) as raised:
        probe(bad_inputs[name])
    assert str(raised.value).startswith(reason)
    with pytest.raises(MediaError):
        MediaReader(bad_inputs[name])


def test_probe_rejects_bad_paths(tmp_path: Path) -> None:
    cases = {
        tmp_path / "missing.mp4": "no such file",
        tmp_path: "is a directory",
        tmp_path / "notes.txt": "unsupported file type '.txt'",
        tmp_path / "README": "unsupported file type (no extension)",
        tmp_path / "broken.jpg": "not a readable image",
    }
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "README").write_text("hello")
    (tmp_path / "broken.jpg").write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    for path, reason in cases.items():
        with pytest.raises(MediaError, match=re.escape(reason)):
            probe(path)


def test_valid_awkward_inputs(bad_inputs: dict[str, Path]) -> None:
    assert probe(bad_inputs["no_face"]).frame_count == 20
    assert len(read_all(bad_inputs["no_face"])) == 20

    one = probe(bad_inputs["one_frame"])
    assert (one.kind, one.frame_count) == ("video", 1)
    assert [frame.index for frame in read_all(bad_inputs["one_frame"])] == [0]

    gray = read_all(bad_inputs["gray_image"])[0].image
    assert gray.shape == (256, 256, 3) and gray.dtype == np.uint8

    large = read_all(bad_inputs["large_image"])[0].image
    assert large.shape == (8000, 8000, 3) and large.dtype == np.uint8


def test_sixteen_bit_and_alpha_images_become_8bit_bgr(tmp_path: Path) -> None:
    deep = np.zeros((40, 60, 3), np.uint16)
    deep[..., 2] = 65535  # pure red at full 16-bit scale
    cv2.imwrite(str(tmp_path / "deep.png"), deep)
    image = read_all(tmp_path / "deep.png")[0].image
    assert image.dtype == np.uint8 and image.shape == (40, 60, 3)
    assert image[0, 0].tolist() == [0, 0, 255]

    gray16 = np.full((40, 60), 32896, np.uint16)  # 128.5 * 256
    cv2.imwrite(str(tmp_path / "gray16.png"), gray16)
    image = read_all(tmp_path / "gray16.png")[0].image
    assert image.shape == (40, 60, 3) and abs(int(image[0, 0, 0]) - 128) <= 1

    with_alpha = np.zeros((40, 60, 4), np.uint8)
    with_alpha[..., 1] = 200
    with_alpha[..., 3] = 0  # fully transparent: colour is still read, alpha dropped
    cv2.imwrite(str(tmp_path / "alpha.png"), with_alpha)
    cv2.imwrite(str(tmp_path / "alpha.webp"), with_alpha, [cv2.IMWRITE_WEBP_QUALITY, 101])
    for name in ("alpha.png", "alpha.webp"):
        image = read_all(tmp_path / name)[0].image
        assert image.shape == (40, 60, 3), name


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    # Stored sideways (320 wide, 200 high) with orientation 6 = rotate 90 degrees clockwise to display.
    path = make_exif_image(tmp_path / "phone.jpg", orientation=6, size=(320, 200))
    info = probe(path)
    assert (info.width, info.height) == (200, 320)
    image = read_all(path)[0].image
    assert image.shape == (320, 200, 3)
    # The stored top-left red block ends up top-right after a clockwise turn.
    top_right, top_left = image[10, 190], image[10, 10]
    assert top_right[2] > 200 and top_right[:2].max() < 60
    assert not (top_left[2] > 200 and top_left[:2].max() < 60)


@pytest.mark.parametrize(
    ("rotation", "upright"),
    [(90, cv2.ROTATE_90_COUNTERCLOCKWISE), (-90, cv2.ROTATE_90_CLOCKWISE), (180, cv2.ROTATE_180)],
)
def test_video_rotation_metadata_is_applied(tmp_path: Path, rotation: int, upright: int) -> None:
    plain = make_clip(tmp_path / "plain.mp4", n_frames=3, size=(320, 240), codec="libx264")
    rotated = make_clip(tmp_path / "rotated.mp4", n_frames=3, size=(320, 240), codec="libx264", rotation=rotation)
    with av.open(str(rotated)) as container:  # the tag really is in the file (display matrix side data)
        assert next(container.decode(video=0)).rotation % 360 == rotation % 360

    info = probe(rotated)
    expected_shape = (320, 240, 3) if rotation % 180 else (240, 320, 3)
    assert (info.height, info.width, 3) == expected_shape
    rotated_frame = read_all(rotated)[1].image
    expected = cv2.rotate(read_all(plain)[1].image, upright)
    assert rotated_frame.shape == expected.shape
    assert np.abs(rotated_frame.astype(int) - expected).mean() < 2
    if rotation % 180:  # and not the opposite turn
        wrong = cv2.rotate(read_all(plain)[1].image, cv2.ROTATE_90_CLOCKWISE if rotation == 90 else
                           cv2.ROTATE_90_COUNTERCLOCKWISE)
        assert np.abs(rotated_frame.astype(int) - wrong).mean() > 20


@pytest.mark.slow  # decodes a real clip
def test_real_clip_matches_labels(real_video: Path, ffpp_dir: Path) -> None:
    with open(ffpp_dir / "labels.csv", newline="") as labels:
        row = next(r for r in csv.DictReader(labels) if r["path"] == "original_sequences/youtube/c23/videos/469.mp4")
    info = probe(real_video)
    assert info.frame_count == int(row["frames"]) == 414
    assert (info.width, info.height) == (int(row["width"]), int(row["height"])) == (854, 480)
    assert info.fps == pytest.approx(float(row["fps"]), abs=0.01)
    count = 0
    with MediaReader(real_video) as reader:
        for frame in reader:
            assert frame.image.shape == (480, 854, 3)
            count += 1
        assert reader.decode_error is None
    assert count == 414


# --- truncation, threads, memory --------------------------------------------------------------------------------


def test_truncated_file_sets_decode_error(bad_inputs: dict[str, Path]) -> None:
    path = bad_inputs["truncated"]
    assert probe(path).frame_count == 90  # the intact index still declares every frame
    with MediaReader(path) as reader:
        frames = list(reader)
        decoded = reader.frames_decoded
        error = reader.decode_error
    assert 10 < len(frames) == decoded < 60
    assert error == f"decoding stopped at frame {decoded} of 90 declared: file is truncated or corrupt"


def test_complete_file_has_no_decode_error(clip30: Path) -> None:
    with MediaReader(clip30) as reader:
        assert reader.decode_error is None
        assert len(list(reader)) == 30
        assert reader.frames_decoded == 30
        assert reader.decode_error is None


def test_small_frame_count_shortfall_is_tolerated(clip30: Path) -> None:
    """OpenCV's declared counts are approximate: a couple of missing frames is not an error, many are."""
    for declared, expect_error in ((32, False), (40, True)):
        with MediaReader(clip30) as reader:
            reader.info = dataclasses.replace(reader.info, frame_count=declared)
            list(reader)
            assert (reader.decode_error is not None) == expect_error, declared


def test_reader_is_single_pass(clip30: Path) -> None:
    with MediaReader(clip30) as reader:
        list(reader)
        with pytest.raises(RuntimeError, match="only once"):
            list(reader)


def test_close_mid_iteration_stops_thread(media_dir: Path) -> None:
    path = make_clip(media_dir / "long.mp4", n_frames=120, size=(160, 120))
    before = set(decode_threads())
    reader = MediaReader(path, prefetch=2)
    frames = reader.iter_frames()
    for _ in range(3):
        next(frames)
    assert len(set(decode_threads()) - before) == 1
    reader.close()
    assert set(decode_threads()) - before == set()
    assert reader.frames_decoded < 120


def test_abandoned_reader_stops_thread_when_collected(media_dir: Path) -> None:
    path = make_clip(media_dir / "long.mp4", n_frames=120, size=(160, 120))
    before = set(decode_threads())
    reader = MediaReader(path, prefetch=2)
    frames = iter(reader)
    next(frames)
    thread = next(iter(set(decode_threads()) - before))
    del frames, reader
    gc.collect()
    thread.join(timeout=5)
    assert not thread.is_alive()


def test_breaking_out_of_with_block_stops_thread(media_dir: Path) -> None:
    path = make_clip(media_dir / "long.mp4", n_frames=120, size=(160, 120))
    before = set(decode_threads())
    with MediaReader(path, prefetch=2) as reader:
        for frame in reader:
            if frame.index == 5:
                break
    assert set(decode_threads()) - before == set()


def test_prefetch_queue_bounds_frames_in_memory(media_dir: Path) -> None:
    path = make_clip(media_dir / "long.mp4", n_frames=120, size=(160, 120))
    prefetch = 4
    alive: list[weakref.ref] = []
    peak_alive = peak_ahead = 0
    with MediaReader(path, prefetch=prefetch) as reader:
        for consumed, frame in enumerate(reader, start=1):
            alive.append(weakref.ref(frame))
            if consumed % 10 == 0:
                # Let the decoder run until it is blocked on the full queue (or done), then give it slack to overrun.
                deadline = time.monotonic() + 5
                while reader.frames_decoded < min(consumed + prefetch, 120) and time.monotonic() < deadline:
                    time.sleep(0.002)
                time.sleep(0.05)
                peak_alive = max(peak_alive, sum(ref() is not None for ref in alive))
                peak_ahead = max(peak_ahead, reader.frames_decoded - consumed)
            del frame
    assert len(alive) == 120
    # Held: the consumer's frame, `prefetch` queued, and at most one the decoder is trying to enqueue.
    assert prefetch <= peak_ahead <= prefetch + 1
    assert peak_alive <= prefetch + 2


# --- frame selection --------------------------------------------------------------------------------------------


def selected_indices(path: Path, selection: FrameSelection, decode_all: bool = True) -> list[int]:
    return [frame.index for frame in read_all(path, selection=selection, decode_all=decode_all)]


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        (FrameSelection(), list(range(30))),
        (FrameSelection("every", 1), list(range(30))),
        (FrameSelection("every", 7), [0, 7, 14, 21, 28]),
        (FrameSelection("count", 5), [3, 9, 15, 21, 27]),
        (FrameSelection("count", 1), [15]),
        (FrameSelection("count", 30), list(range(30))),
        (FrameSelection("count", 100), list(range(30))),
        # 25 fps source: frames at or after 0, 0.5, 1.0 s are 0 (0.0 s), 13 (0.52 s), 25 (1.0 s).
        (FrameSelection("fps", 2.0), [0, 13, 25]),
        (FrameSelection("fps", 10.0), [0, 3, 5, 8, 10, 13, 15, 18, 20, 23, 25, 28]),
        (FrameSelection("fps", 25.0), list(range(30))),
        (FrameSelection("fps", 60.0), list(range(30))),
    ],
)
def test_selection_modes_pick_exact_frames(clip30: Path, selection: FrameSelection, expected: list[int]) -> None:
    assert selected_indices(clip30, selection) == expected
    assert selected_indices(clip30, selection, decode_all=False) == expected


def test_iter_frames_flags_every_frame_and_skips_with_decode_all_false(clip30: Path) -> None:
    selection = FrameSelection("every", 10)
    with MediaReader(clip30, selection=selection) as reader:
        pairs = [(frame.index, selected) for frame, selected in reader.iter_frames()]
    assert pairs == [(index, index % 10 == 0) for index in range(30)]

    with MediaReader(clip30, selection=selection, decode_all=False) as reader:
        skipped = [(frame, selected) for frame, selected in reader.iter_frames()]
        assert reader.frames_decoded == 30  # grabbed frames still count as decoded
        assert reader.decode_error is None
    assert [(frame.index, selected) for frame, selected in skipped] == [(0, True), (10, True), (20, True)]
    # grab() really advanced the decoder: the frames are the right ones, not consecutive ones.
    full = read_all(clip30)
    for frame, _ in skipped:
        assert np.array_equal(frame.image, full[frame.index].image)
    assert frame.time_s == pytest.approx(20 / 25)


@pytest.fixture(scope="session")
def bframe_clip(media_dir: Path) -> Path:
    """120 frames of H.264 with B-frames (most of them referenced by no other frame), a keyframe every 50."""
    return make_clip(media_dir / "bframes.mp4", n_frames=120, size=(320, 240), codec="libx264", bframes=3)


@pytest.mark.parametrize("selection", [FrameSelection("count", 9), FrameSelection("every", 5),
                                       FrameSelection("count", 500)], ids=str)
def test_sparse_decoding_gives_exactly_the_frames_of_full_decoding(bframe_clip: Path,
                                                                    selection: FrameSelection) -> None:
    with MediaReader(bframe_clip, selection=selection, decode_all=False) as reader:
        sparse = list(reader)
        assert reader.backend == "pyav-sparse"
        assert reader.frames_decoded == 120
        assert reader.decode_error is None
        skipped = reader.frames_skipped
    with MediaReader(bframe_clip, selection=selection) as reader:  # OpenCV, every frame decoded
        full = list(reader)
        assert reader.backend == "opencv"
    assert [frame.index for frame in sparse] == [frame.index for frame in full]
    assert [frame.time_s for frame in sparse] == [frame.time_s for frame in full]
    assert all(np.array_equal(a.image, b.image) for a, b in zip(sparse, full))
    if selection.value == 500:
        assert len(sparse) == 120 and skipped == 0  # every frame wanted: nothing to skip
    else:
        assert len(sparse) < 30 and skipped > 40  # most B-frames never decoded


def test_close_mid_sparse_decoding_stops_thread(bframe_clip: Path) -> None:
    before = set(decode_threads())
    reader = MediaReader(bframe_clip, prefetch=1, selection=FrameSelection("every", 2), decode_all=False)
    frames = iter(reader)
    assert [next(frames).index for _ in range(3)] == [0, 2, 4]
    assert reader.backend == "pyav-sparse"
    reader.close()
    assert set(decode_threads()) - before == set()
    assert reader.frames_decoded < 120


def test_sparse_decoding_leaves_rotated_and_avi_videos_to_opencv(tmp_path: Path) -> None:
    selection = FrameSelection("count", 3)
    rotated = make_clip(tmp_path / "rotated.mp4", n_frames=12, size=(320, 240), codec="libx264", rotation=90)
    avi = make_clip(tmp_path / "clip.avi", n_frames=12, size=(320, 240))
    for path, shape in ((rotated, (320, 240, 3)), (avi, (240, 320, 3))):
        with MediaReader(path, selection=selection, decode_all=False) as reader:
            frames = list(reader)
            assert reader.backend == "opencv", path.name
            assert reader.frames_skipped == 0
        assert [frame.index for frame in frames] == [2, 6, 10]
        assert frames[0].image.shape == shape  # upright, as OpenCV turns it
        reference = read_all(path)
        assert all(np.array_equal(frame.image, reference[frame.index].image) for frame in frames)


def test_sparse_decoding_of_a_truncated_file_reports_it(bad_inputs: dict[str, Path]) -> None:
    path = bad_inputs["truncated"]
    selection = FrameSelection("every", 3)
    with MediaReader(path, selection=selection, decode_all=False) as reader:
        frames = list(reader)
        backend, decoded, error = reader.backend, reader.frames_decoded, reader.decode_error
    assert backend == "pyav-sparse"
    assert error == f"decoding stopped at frame {decoded} of 90 declared: file is truncated or corrupt"
    with MediaReader(path, selection=selection) as reader:
        reference = list(reader)
    # The frames both read are the same; PyAV may read a frame or two less of the cut-off data.
    assert 3 < len(frames) <= len(reference)
    assert all(a.index == b.index and np.array_equal(a.image, b.image) for a, b in zip(frames, reference))


def test_selection_on_images_picks_the_image(media_dir: Path) -> None:
    path = make_image(media_dir / "select.png", size=64)
    for selection in (FrameSelection(), FrameSelection("every", 5), FrameSelection("count", 8),
                      FrameSelection("fps", 1.0)):
        assert selected_indices(path, selection) == [0]


def test_count_selection_on_one_frame_video(bad_inputs: dict[str, Path]) -> None:
    assert selected_indices(bad_inputs["one_frame"], FrameSelection("count", 16)) == [0]


def test_count_selection_estimates_unknown_frame_count(clip30: Path) -> None:
    unknown = dataclasses.replace(probe(clip30), frame_count=0)
    select = FrameSelection("count", 5).selector(unknown)
    assert [index for index in range(30) if select(index, index / 25)] == [3, 9, 15, 21, 27]


def test_fps_selection_on_ntsc_rate() -> None:
    info = MediaInfo(Path("x.mp4"), "video", 640, 480, 30000 / 1001, 300)
    select = FrameSelection("fps", 1.0).selector(info)
    picked = [index for index in range(300) if select(index, index * 1001 / 30000)]
    # The first frame at or after each whole second of a 29.97 fps video.
    assert picked == [0, 30, 60, 90, 120, 150, 180, 210, 240, 270]
    select = FrameSelection("fps", 10.0).selector(MediaInfo(Path("x.mp4"), "video", 640, 480, 30.0, 30))
    assert [index for index in range(30) if select(index, index / 30)] == list(range(0, 30, 3))


def test_from_options() -> None:
    assert FrameSelection.from_options() == FrameSelection()
    assert FrameSelection.from_options(every=5) == FrameSelection("every", 5)
    assert FrameSelection.from_options(frames=16) == FrameSelection("count", 16)
    assert FrameSelection.from_options(fps=2) == FrameSelection("fps", 2.0)
    with pytest.raises(ValueError, match="at most one"):
        FrameSelection.from_options(every=5, fps=2.0)
    with pytest.raises(ValueError, match="at most one"):
        FrameSelection.from_options(every=5, frames=3, fps=2.0)
    for bad in ({"every": 0}, {"every": 1.5}, {"frames": 0}, {"frames": -3}, {"fps": 0.0}, {"fps": -1.0},
                {"fps": float("nan")}, {"fps": float("inf")}):
        with pytest.raises(ValueError):
            FrameSelection.from_options(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        FrameSelection("sometimes", 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        FrameSelection("every")


def test_describe() -> None:
    assert FrameSelection().describe() == "every frame"
    assert FrameSelection("every", 1).describe() == "every frame"
    assert FrameSelection("every", 2).describe() == "every 2nd frame"
    assert FrameSelection("every", 5).describe() == "every 5th frame"
    assert FrameSelection("every", 11).describe() == "every 11th frame"
    assert FrameSelection("every", 21).describe() == "every 21st frame"
    assert FrameSelection("count", 16).describe() == "16 evenly spaced frames"
    assert FrameSelection("count", 1).describe() == "1 evenly spaced frame"
    assert FrameSelection("fps", 2.0).describe() == "2.0 frames per second"


# --- writer -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "fps", "background"),
    [((320, 240), 25.0, True), ((321, 241), 30000 / 1001, True), ((161, 120), 29.97, False)],
)
def test_writer_round_trip(tmp_path: Path, size: tuple[int, int], fps: float, background: bool) -> None:
    width, height = size
    n_frames = 20
    path = tmp_path / "out" / "annotated.mp4"
    sources = [render_frame(index, n_frames, size) for index in range(n_frames)]
    with VideoWriter(path, width, height, fps, background=background) as writer:
        for source in sources:
            writer.write(source)
            assert not path.exists()  # only the hidden temporary file exists while writing
    assert writer.frames_written == n_frames
    assert [p.name for p in path.parent.iterdir()] == ["annotated.mp4"]

    padded = (width + width % 2, height + height % 2)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert (stream.codec_context.width, stream.codec_context.height) == padded
        assert float(stream.average_rate) == pytest.approx(fps, rel=1e-4)
        assert stream.frames == n_frames
        decoded = list(container.decode(stream))
    assert len(decoded) == n_frames
    assert [frame.pts * frame.time_base for frame in decoded[:3]] == pytest.approx([0, 1 / fps, 2 / fps], abs=1e-3)

    data = path.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # +faststart: playable before fully downloaded

    info = probe(path)
    assert (info.width, info.height, info.frame_count) == (*padded, n_frames)
    frames = read_all(path)
    assert len(frames) == n_frames
    assert frames[5].image.shape == (padded[1], padded[0], 3)
    assert np.abs(frames[5].image[:height, :width].astype(int) - sources[5]).mean() < 6


def test_writer_colours_survive(tmp_path: Path) -> None:
    colour = (40, 120, 200)
    with VideoWriter(tmp_path / "flat.mp4", 64, 64, 25.0) as writer:
        for _ in range(3):
            writer.write(np.full((64, 64, 3), colour, np.uint8))
    image = read_all(tmp_path / "flat.mp4")[0].image
    assert np.abs(image[32, 32].astype(int) - colour).max() <= 4


def test_writer_caller_may_reuse_its_buffer(tmp_path: Path) -> None:
    buffer = np.zeros((64, 64, 3), np.uint8)
    with VideoWriter(tmp_path / "reuse.mp4", 64, 64, 25.0, background=True) as writer:
        for value in (0, 255, 0, 255):
            buffer[:] = value
            writer.write(buffer)
    means = [frame.image.mean() for frame in read_all(tmp_path / "reuse.mp4")]
    assert means == pytest.approx([0, 255, 0, 255], abs=6)


def test_writer_failure_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "crashed.mp4"
    with pytest.raises(RuntimeError, match="boom"):
        with VideoWriter(path, 64, 64, 25.0) as writer:
            writer.write(np.zeros((64, 64, 3), np.uint8))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []

    with VideoWriter(path, 64, 64, 25.0):
        pass  # no frames: no file
    assert list(tmp_path.iterdir()) == []


def test_writer_rejects_wrong_frames(tmp_path: Path) -> None:
    with VideoWriter(tmp_path / "x.mp4", 64, 48, 25.0) as writer:
        with pytest.raises(ValueError, match="48x64x3"):
            writer.write(np.zeros((64, 48, 3), np.uint8))
        with pytest.raises(ValueError):
            writer.write(np.zeros((48, 64, 3), np.float32))
        writer.write(np.zeros((48, 64, 3), np.uint8))
    assert probe(tmp_path / "x.mp4").frame_count == 1
    with pytest.raises(ValueError):
        VideoWriter(tmp_path / "y.mp4", 64, 48, 0.0)


# --- find_media -------------------------------------------------------------------------------------------------


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_find_media_naming(tmp_path: Path) -> None:
    first = tmp_path / "a" / "videos"
    second = tmp_path / "b" / "videos"
    touch(first / "real" / "469.mp4")
    touch(first / "fake" / "469_481.MP4")
    touch(first / "stills" / "face.JPeG")
    touch(first / "real" / "notes.txt")
    touch(first / ".cache" / "hidden.mp4")
    touch(first / "real" / ".hidden.mp4")
    touch(second / "real" / "469.mp4")
    direct = touch(tmp_path / "a" / "videos" / "real" / "469.mp4")
    text = touch(tmp_path / "readme.txt")
    empty = tmp_path / "empty"
    touch(empty / "only.txt")

    inputs = find_media([first, second, direct, second / "real" / "469.mp4", text, tmp_path / "nope.mp4", empty])
    summary = [(item.path, item.output_name.as_posix(), item.error, item.skipped) for item in inputs]
    not_media = "text, not a video or image"
    assert summary == [
        (first / "fake" / "469_481.MP4", "videos/fake/469_481.MP4", None, None),
        (first / "real" / "469.mp4", "videos/real/469.mp4", None, None),
        (first / "real" / "notes.txt", "videos/real/notes.txt", None, not_media),  # listed, with its reason
        (first / "stills" / "face.JPeG", "videos/stills/face.JPeG", None, None),
        (second / "real" / "469.mp4", "videos-2/real/469.mp4", None, None),
        (direct, "469.mp4", None, None),
        (second / "real" / "469.mp4", "469-2.mp4", None, None),
        (text, "readme.txt", None, None),
        (tmp_path / "nope.mp4", "nope.mp4", "no such file or directory", None),
        (empty / "only.txt", "empty/only.txt", None, not_media),
        (empty, "empty", "no video or image files found in directory", None),
    ]
    names = [item.output_name.as_posix().casefold() for item in inputs]
    assert len(set(names)) == len(names)
