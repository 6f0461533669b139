"""Generated test media: short clips with a real face moving over a textured background, images, and bad inputs.

The face is ``skimage.data.astronaut()`` (Eileen Collins, NASA, public domain), so face detectors find it.
Everything is deterministic (fixed seeds) and small enough to generate in well under a second per file,
except ``large_image`` (8000x8000) which takes about half a second.
"""
from __future__ import annotations

import functools
import importlib
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

# Container suffix -> default codec (OpenCV-style names are accepted too, see _CODEC_ALIASES).
DEFAULT_CODECS = {
    ".mp4": "mp4v",
    ".m4v": "mp4v",
    ".mov": "mp4v",
    ".avi": "MJPG",
    ".mkv": "libx264",
    ".webm": "vp8",
    ".mpg": "mpeg1video",  # the GRID corpus's MPEG-1 clips
    ".mpeg": "mpeg2video",
    ".ts": "libx264",
}
_CODEC_ALIASES = {
    "mp4v": "mpeg4",
    "mjpg": "mjpeg",
    "h264": "libx264",
    "avc1": "libx264",
    "x264": "libx264",
    "vp8": "libvpx",
    "vp9": "libvpx-vp9",
}
_MP4_FAMILY = {".mp4", ".m4v", ".mov"}


@functools.lru_cache(maxsize=1)
def _astronaut_bgr() -> np.ndarray:
    # scikit-image is a test dependency that may still be installing when tests start; give it a few seconds.
    for attempt in range(5):
        try:
            skimage_data = importlib.import_module("skimage.data")
            break
        except ImportError:
            if attempt == 4:
                pytest.skip("scikit-image is not installed (needed for the test face image)")
            importlib.invalidate_caches()
            time.sleep(2)
    image = cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)
    image.flags.writeable = False
    return image


def face_image() -> np.ndarray:
    """A real 512x512 face photo (skimage's astronaut) as a fresh BGR uint8 array."""
    return _astronaut_bgr().copy()


def _texture(width: int, height: int, seed: int) -> np.ndarray:
    """A smooth coloured noise texture with a gradient: looks like an out-of-focus background, compresses sanely."""
    rng = np.random.default_rng(seed)
    # Muted colours over a grey-brown base, blob size ~1/10 of the frame: reads as a blurry indoor backdrop.
    coarse = rng.integers(-45, 46, size=(max(2, height // 48), max(2, width // 48), 3), dtype=np.int16)
    coarse += rng.integers(-25, 26, size=coarse.shape[:2], dtype=np.int16)[..., None] + np.array([110, 120, 135])
    texture = cv2.resize(coarse.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC).astype(np.int16)
    gradient = np.linspace(-30, 30, width, dtype=np.float32).astype(np.int16)[None, :, None]
    return np.clip(texture + gradient, 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=4)
def _clip_background(width: int, height: int, seed: int) -> np.ndarray:
    texture = _texture(width, height, seed)
    texture.flags.writeable = False
    return texture


def _paste(canvas: np.ndarray, patch: np.ndarray, left: int, top: int) -> None:
    """Copy ``patch`` onto ``canvas`` at (left, top), clipped to the canvas."""
    height, width = canvas.shape[:2]
    x0, y0 = max(left, 0), max(top, 0)
    x1, y1 = min(left + patch.shape[1], width), min(top + patch.shape[0], height)
    if x0 < x1 and y0 < y1:
        canvas[y0:y1, x0:x1] = patch[y0 - top : y1 - top, x0 - left : x1 - left]


def render_frame(index: int, n_frames: int, size: tuple[int, int], face: bool = True, seed: int = 0) -> np.ndarray:
    """Frame ``index`` of a clip: a panning textured background with either the face (drifting right and zooming
    in slightly over the clip) or, with ``face=False``, moving coloured shapes. Returns HxWx3 uint8 BGR."""
    width, height = size
    progress = index / max(n_frames - 1, 1)
    pan = int(index * 2)
    background = _clip_background(width + 2 * n_frames + 2, height, seed)
    frame = np.ascontiguousarray(background[:, pan : pan + width])
    if face:
        side = int(min(width, height) * 0.7 * (1.0 + 0.12 * progress))
        portrait = cv2.resize(_astronaut_bgr(), (side, side), interpolation=cv2.INTER_AREA)
        left = int((width - side) / 2 + (progress - 0.5) * width * 0.1)
        top = int((height - side) / 2 + np.sin(index / 5.0) * height * 0.02)
        _paste(frame, portrait, left, top)
    else:
        for shape in range(3):
            centre = (int(width * (0.2 + 0.3 * shape) + index * 3) % width, int(height * (0.3 + 0.2 * shape)))
            colour = ((70 * shape + 40) % 256, (150 + 50 * shape) % 256, 220 - 60 * shape)
            cv2.circle(frame, centre, int(min(width, height) * 0.08), colour, thickness=-1)
            cv2.rectangle(frame, (centre[0] - 40, centre[1] + 30), (centre[0] + 40, centre[1] + 60), colour[::-1], -1)
    # Sensor-like noise, so every frame costs the encoder some bits (truncation then cuts through frame data evenly).
    noise = np.random.default_rng(seed * 100_003 + index).integers(-6, 7, size=frame.shape, dtype=np.int16)
    return np.clip(frame.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def make_clip(
    path: str | Path,
    n_frames: int = 30,
    size: tuple[int, int] = (640, 480),
    fps: float = 25.0,
    face: bool = True,
    codec: str | None = None,
    rotation: int = 0,
    faststart: bool = True,
    seed: int = 0,
    bframes: int = 0,
) -> Path:
    """Write a short clip with PyAV and return its path.

    ``size`` is (width, height). ``codec`` defaults by suffix (mp4/m4v/mov: mp4v, avi: MJPG, mkv: libx264,
    webm: vp8); FFmpeg or OpenCV names work ("libx264", "h264", "mp4v", "MJPG", "vp8", "vp9"). The test is
    skipped if this FFmpeg build lacks the encoder. ``rotation`` (degrees counter-clockwise, as in FFmpeg's
    display matrix) tags the stream so players show it rotated, like a phone video. ``faststart`` puts the mp4
    index (moov atom) at the front. ``bframes`` (libx264 only): up to that many B-frames in a row, as camera and
    web videos have (x264's defaults: 3, the middle one a reference), with a keyframe every 50 frames.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    requested = codec or DEFAULT_CODECS.get(suffix)
    if requested is None:
        raise ValueError(f"no default codec for {suffix!r}; pass codec=")
    codec_name = _CODEC_ALIASES.get(requested.lower(), requested)
    if codec_name not in av.codecs_available:
        pytest.skip(f"this FFmpeg build has no {codec_name} encoder")

    rate = Fraction(fps).limit_denominator(1001)
    options = {"movflags": "+faststart"} if faststart and suffix in _MP4_FAMILY else {}
    with av.open(str(path), mode="w", options=options) as container:
        stream = container.add_stream(codec_name, rate=rate)
        stream.width, stream.height = size
        stream.pix_fmt = "yuvj420p" if codec_name == "mjpeg" else "yuv420p"
        stream.codec_context.time_base = 1 / rate
        if codec_name == "libx264":
            stream.options = {"crf": "26", "preset": "ultrafast"}
            if bframes:
                stream.options = {"crf": "26", "preset": "veryfast",
                                  "x264-params": f"bframes={bframes}:b-pyramid=normal:keyint=50:scenecut=0"}
        elif bframes:
            raise ValueError("bframes is for libx264")
        elif codec_name.startswith("libvpx"):
            stream.codec_context.bit_rate = 1_000_000
            stream.options = {"deadline": "realtime", "cpu-used": "8"}
        else:
            stream.codec_context.bit_rate = 2_000_000
        if rotation:
            stream.set_display_rotation(rotation)
        for index in range(n_frames):
            frame = av.VideoFrame.from_ndarray(render_frame(index, n_frames, size, face, seed), format="bgr24")
            frame.pts = index
            frame.time_base = 1 / rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def make_image(path: str | Path, size: int | tuple[int, int] | None = None, gray: bool = False) -> Path:
    """Write the face photo as jpg/png/webp/bmp (by suffix); ``size`` is an int (square) or (width, height);
    ``gray=True`` writes a single-channel image."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = _astronaut_bgr()
    if size is not None:
        width, height = (size, size) if isinstance(size, int) else size
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    if gray:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"OpenCV could not write {path}")
    return path


def make_exif_image(path: str | Path, orientation: int = 6, size: tuple[int, int] = (320, 200)) -> Path:
    """Write a JPEG whose pixels are stored sideways with an EXIF orientation tag (6: rotate 90 degrees clockwise to
    display, as phone cameras do). Stored pixels are ``size`` (width, height) with a pure red block in the stored
    top-left corner, so a reader can check both the displayed dimensions and where the corner ended up."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    stored = cv2.resize(_astronaut_bgr(), (width, height), interpolation=cv2.INTER_AREA)
    stored[: height // 5, : width // 5] = (0, 0, 255)
    image = Image.fromarray(cv2.cvtColor(stored, cv2.COLOR_BGR2RGB))
    exif = Image.Exif()
    exif[0x0112] = orientation  # Orientation
    image.save(path, format="JPEG", quality=95, exif=exif.tobytes())
    return path


def make_large_image(path: str | Path, side: int = 8000) -> Path:
    """A ``side`` x ``side`` JPEG: textured background with the face photo (about 3/8 of the width) in the middle."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    coarse = np.random.default_rng(7).integers(70, 170, size=(side // 400, side // 400, 3), dtype=np.uint8)
    canvas = cv2.resize(coarse, (side, side), interpolation=cv2.INTER_LINEAR)
    face_side = side * 3 // 8
    portrait = cv2.resize(_astronaut_bgr(), (face_side, face_side), interpolation=cv2.INTER_LINEAR)
    _paste(canvas, portrait, (side - face_side) // 2, (side - face_side) // 2)
    if not cv2.imwrite(str(path), canvas, [cv2.IMWRITE_JPEG_QUALITY, 85]):
        raise OSError(f"OpenCV could not write {path}")
    return path


def make_bad_inputs(folder: str | Path) -> dict[str, Path]:
    """Create the standard awkward inputs in ``folder`` and return them by name.

    - text_as_mp4: a text file named .mp4 (probe: "not a readable video: ...")
    - zero_byte: an empty .mp4 (probe: "empty file (0 bytes)")
    - truncated: the first third of a 90-frame libx264 mp4 written with +faststart, so its index (moov atom, which
      declares all 90 frames) is intact and the file opens; decoding then stops after roughly a third of the frames
    - truncated_moov_at_end: the same cut of the same clip written without faststart; the index that FFmpeg needs
      lives at the end and is lost, so the file does not open at all ("not a readable video: ...")
    - no_decodable_frame: a 10-frame mp4 whose index is intact but whose frame data is all zero bytes
      (probe: "no decodable video frame ...")
    - no_face: a valid 20-frame .mp4 of moving shapes without any face
    - gray_image: a single-channel .png of the face
    - large_image: an 8000x8000 .jpg with a face
    - one_frame: a valid .mp4 with a single frame
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    inputs: dict[str, Path] = {}

    inputs["text_as_mp4"] = folder / "notes.mp4"
    inputs["text_as_mp4"].write_text("This is a text file, not a video.\n" * 20)

    inputs["zero_byte"] = folder / "empty.mp4"
    inputs["zero_byte"].write_bytes(b"")

    for name, faststart in (("truncated", True), ("truncated_moov_at_end", False)):
        full = make_clip(folder / f".full_{name}.mp4", n_frames=90, size=(320, 240), codec="libx264",
                         faststart=faststart)
        data = full.read_bytes()
        full.unlink()
        inputs[name] = folder / f"{name}.mp4"
        inputs[name].write_bytes(data[: len(data) // 3])

    # Header intact but every byte of frame data zeroed: opens, yet no frame decodes.
    intact = make_clip(folder / ".full_undecodable.mp4", n_frames=10, size=(160, 120), codec="libx264")
    data = intact.read_bytes()
    intact.unlink()
    frame_data_start = data.index(b"mdat") + 4
    inputs["no_decodable_frame"] = folder / "undecodable.mp4"
    inputs["no_decodable_frame"].write_bytes(data[:frame_data_start] + bytes(len(data) - frame_data_start))

    inputs["no_face"] = make_clip(folder / "no_face.mp4", n_frames=20, size=(320, 240), face=False)
    inputs["gray_image"] = make_image(folder / "gray.png", size=256, gray=True)
    inputs["large_image"] = make_large_image(folder / "large.jpg")
    inputs["one_frame"] = make_clip(folder / "one_frame.mp4", n_frames=1, size=(320, 240))
    return inputs
