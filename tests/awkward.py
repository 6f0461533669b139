"""A generated corpus of awkward inputs, as a newsroom archive holds them: every container and codec FFmpeg writes
here, images of every kind, damaged files, odd names, links, and things that are not media at all.

``build_corpus(folder)`` writes each kind into its own sub-folder and returns the kinds with what ``fakescope scan``
must make of them: ``scanned`` (a verdict: real, fake or no_face), ``error`` (exit 1, with the reason) or
``skipped`` (listed with the reason, exit 0), and a pattern the reason must match.
"""
from __future__ import annotations

import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from clips import face_image, make_bad_inputs, make_clip, make_exif_image, make_image, render_frame


@dataclass(frozen=True)
class Kind:
    """One kind of awkward input: how to make it, and what scanning it must give."""

    name: str
    make: Callable[[Path], Path]  # writes the input into the given folder, returns its path
    outcome: str  # "scanned", "error" or "skipped"
    reason: str = ""  # regular expression the reason must match ("" for scanned inputs without a reason)
    verdicts: tuple[str, ...] = ("real", "fake")  # accepted verdicts when scanned
    warning: str = ""  # regular expression one of the warnings must match (scanned inputs)


def write_video(path: Path, codec: str, size: tuple[int, int] = (320, 240), n_frames: int = 8, fps: float = 25.0,
                pix_fmt: str = "yuv420p", container_format: str | None = None, face: bool = True,
                audio: bool = False) -> Path:
    """A short clip of the face in any container/codec pair PyAV can write (skips the test if it cannot)."""
    if codec not in av.codecs_available:
        pytest.skip(f"this FFmpeg build has no {codec} encoder")
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), mode="w", format=container_format) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height = size
        stream.pix_fmt = pix_fmt
        stream.codec_context.time_base = 1 / rate
        if codec == "libx264":
            stream.options = {"preset": "ultrafast"}
        elif codec not in ("gif", "rawvideo", "ffv1"):
            stream.codec_context.bit_rate = 1_500_000
        sound = None
        if audio:
            sound = container.add_stream("aac", rate=16000)
        for index in range(n_frames):
            image = render_frame(index, n_frames, size, face)
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            if pix_fmt != "bgr24":
                frame = frame.reformat(format=pix_fmt)
            frame.pts = index
            frame.time_base = 1 / rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
        if sound is not None:
            _encode_tone(container, sound, seconds=n_frames / fps)
    return path


def _encode_tone(container: av.container.OutputContainer, stream, seconds: float) -> None:
    rate = stream.codec_context.sample_rate
    samples = int(rate * seconds)
    tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(samples) / rate)).astype(np.float32)
    chunk = stream.codec_context.frame_size or 1024
    for start in range(0, samples, chunk):
        piece = tone[start:start + chunk]
        if len(piece) < chunk:
            piece = np.pad(piece, (0, chunk - len(piece)))
        frame = av.AudioFrame.from_ndarray(piece[None, :], format="fltp", layout="mono")
        frame.sample_rate = rate
        frame.pts = start
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


def write_audio(path: Path, codec: str, container_format: str | None = None, seconds: float = 0.5) -> Path:
    """An audio-only file (no video stream)."""
    if codec not in av.codecs_available:
        pytest.skip(f"this FFmpeg build has no {codec} encoder")
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w", format=container_format) as container:
        stream = container.add_stream(codec, rate=44100 if codec != "aac" else 16000)
        if codec == "pcm_s16le":
            rate = 44100
            samples = (np.sin(np.arange(int(rate * seconds)) / 10) * 3000).astype(np.int16)
            frame = av.AudioFrame.from_ndarray(samples[None, :], format="s16", layout="mono")
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                container.mux(packet)
            for packet in stream.encode(None):
                container.mux(packet)
        else:
            _encode_tone(container, stream, seconds)
    return path


def corrupt_middle(source: Path, target: Path, size: int = 4096, seed: int = 1) -> Path:
    """``source`` with ``size`` random bytes written over its middle."""
    data = bytearray(source.read_bytes())
    rng = random.Random(seed)
    middle = len(data) // 2
    for position in range(middle, min(middle + size, len(data))):
        data[position] = rng.randrange(256)
    target.write_bytes(bytes(data))
    return target


def _good_jpeg(folder: Path, name: str = "face.jpg") -> Path:
    return make_image(folder / name, size=256)


def _truncated(source: Path, target: Path, fraction: float = 0.5) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * fraction)])
    source.unlink()
    return target


def _make_heic(folder: Path) -> Path:
    pillow_heif = pytest.importorskip("pillow_heif")
    from PIL import Image

    pillow_heif.register_heif_opener()
    path = folder / "phone.heic"
    Image.fromarray(cv2.cvtColor(cv2.resize(face_image(), (256, 256)), cv2.COLOR_BGR2RGB)).save(path, quality=80)
    return path


def _make_png16(folder: Path) -> Path:
    image = (cv2.resize(face_image(), (256, 256)).astype(np.uint16) * 257)
    path = folder / "sixteen.png"
    cv2.imwrite(str(path), image)
    return path


def _make_rgba(folder: Path) -> Path:
    image = cv2.cvtColor(cv2.resize(face_image(), (256, 256)), cv2.COLOR_BGR2BGRA)
    image[..., 3] = 200
    path = folder / "alpha.png"
    cv2.imwrite(str(path), image)
    return path


def _renamed(path: Path, name: str) -> Path:
    target = path.with_name(name)
    path.rename(target)
    return target


def _bad_input(name: str) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        made = make_bad_inputs(folder / ".work")
        target = folder / made[name].name
        made[name].rename(target)
        for leftover in (folder / ".work").iterdir():
            leftover.unlink()
        (folder / ".work").rmdir()
        return target

    return make


def _symlink(folder: Path, name: str, target: str) -> Path:
    path = folder / name
    os.symlink(target, path)
    return path


def _fifo(folder: Path) -> Path:
    path = folder / "pipe.mp4"
    os.mkfifo(path)
    return path


def _undecodable_name(folder: Path) -> Path:
    raw = os.fsencode(str(folder)) + b"/caf\xe9-latin1.jpg"  # Latin-1 bytes: not valid UTF-8
    data = _good_jpeg(folder, "tmp.jpg").read_bytes()
    with open(raw, "wb") as handle:
        handle.write(data)
    (folder / "tmp.jpg").unlink()
    return Path(os.fsdecode(raw))


KINDS: list[Kind] = [
    # --- videos in every container and codec FFmpeg writes here
    Kind("mp4_h264", lambda f: write_video(f / "h264.mp4", "libx264"), "scanned"),
    Kind("mov_mpeg4", lambda f: write_video(f / "camera.mov", "mpeg4"), "scanned"),
    Kind("mkv_h264", lambda f: write_video(f / "clip.mkv", "libx264"), "scanned"),
    Kind("webm_vp8", lambda f: write_video(f / "clip.webm", "libvpx"), "scanned"),
    Kind("avi_mjpeg", lambda f: write_video(f / "clip.avi", "mjpeg", pix_fmt="yuvj420p"), "scanned"),
    Kind("mpg_mpeg1", lambda f: write_video(f / "grid.mpg", "mpeg1video", container_format="mpeg"), "scanned"),
    Kind("vob_mpeg2", lambda f: write_video(f / "dvd.vob", "mpeg2video", container_format="vob"), "scanned"),
    Kind("ts_h264", lambda f: write_video(f / "broadcast.ts", "libx264", container_format="mpegts"), "scanned"),
    Kind("flv", lambda f: write_video(f / "old.flv", "flv"), "scanned"),
    Kind("wmv", lambda f: write_video(f / "office.wmv", "wmv2", container_format="asf"), "scanned"),
    Kind("3gp_h263", lambda f: write_video(f / "phone.3gp", "h263", size=(352, 288)), "scanned"),
    Kind("gif", lambda f: write_video(f / "meme.gif", "gif", pix_fmt="rgb8"), "scanned"),
    Kind("y4m", lambda f: write_video(f / "raw.y4m", "rawvideo", container_format="yuv4mpegpipe"), "scanned"),
    Kind("nut_ffv1", lambda f: write_video(f / "archive.nut", "ffv1", container_format="nut"), "scanned"),
    Kind("mp4_with_audio", lambda f: write_video(f / "speech.mp4", "libx264", audio=True), "scanned"),
    Kind("mp4_named_jpg", lambda f: _renamed(write_video(f / "x.mp4", "libx264"), "wrong.jpg"), "scanned"),
    Kind("video_no_extension", lambda f: _renamed(write_video(f / "x.mp4", "libx264"), "VID0001"), "scanned"),
    Kind("rotated_phone_video", lambda f: make_clip(f / "portrait.mp4", n_frames=8, size=(320, 240), rotation=90),
         "scanned"),
    Kind("odd_size_video", lambda f: write_video(f / "odd.mkv", "libx264", size=(322, 242)), "scanned"),
    Kind("one_frame_video", lambda f: make_clip(f / "single.mp4", n_frames=1, size=(320, 240)), "scanned"),
    Kind("video_without_faces", lambda f: make_clip(f / "shapes.mp4", n_frames=8, size=(320, 240), face=False),
         "scanned", verdicts=("no_face",)),
    Kind("tiny_video", lambda f: write_video(f / "thumb.mp4", "libx264", size=(32, 24)), "scanned",
         verdicts=("no_face",)),
    Kind("uhd_frame", lambda f: write_video(f / "uhd.mp4", "libx264", size=(3840, 2160), n_frames=1), "scanned"),
    Kind("corrupt_4k_in_middle", lambda f: corrupt_middle(
        write_video(f / ".source.mp4", "libx264", n_frames=60), f / "damaged.mp4"), "scanned",
         warning=r"could not be decoded and were skipped"),
    # --- images
    Kind("jpeg", lambda f: _good_jpeg(f), "scanned"),
    Kind("png", lambda f: make_image(f / "face.png", size=256), "scanned"),
    Kind("webp", lambda f: make_image(f / "face.webp", size=256), "scanned"),
    Kind("bmp", lambda f: make_image(f / "face.bmp", size=256), "scanned"),
    Kind("tiff", lambda f: make_image(f / "scan.tiff", size=256), "scanned"),
    Kind("heic", _make_heic, "scanned"),
    Kind("gray_png", lambda f: make_image(f / "gray.png", size=256, gray=True), "scanned"),
    Kind("sixteen_bit_png", _make_png16, "scanned"),
    Kind("alpha_png", _make_rgba, "scanned"),
    Kind("exif_rotated_jpeg", lambda f: make_exif_image(f / "rotated.jpg", size=(256, 200)), "scanned",
         verdicts=("real", "fake", "no_face")),
    Kind("jpeg_named_png", lambda f: _renamed(_good_jpeg(f), "actually-jpeg.png"), "scanned"),
    # --- names
    Kind("non_latin_name", lambda f: _good_jpeg(f, "Пример 例子 مثال.jpg"), "scanned"),
    Kind("newline_in_name", lambda f: _good_jpeg(f, "two\nlines.jpg"), "scanned"),
    Kind("undecodable_name", _undecodable_name, "scanned"),
    Kind("long_name", lambda f: _good_jpeg(f, "n" * 240 + ".jpg"), "scanned"),
    Kind("quotes_and_dash_name", lambda f: _good_jpeg(f, "-it's \"quoted\" $HOME.jpg"), "scanned"),
    # --- damaged files: an error with the reason
    Kind("text_as_mp4", _bad_input("text_as_mp4"), "error", r"not a readable video"),
    Kind("zero_byte_mp4", _bad_input("zero_byte"), "error", r"empty file"),
    Kind("truncated_mp4", _bad_input("truncated"), "error", r"truncated"),
    Kind("truncated_moov_at_end", _bad_input("truncated_moov_at_end"), "error", r"moov atom not found"),
    Kind("no_decodable_frame", _bad_input("no_decodable_frame"), "error", r"no decodable video frame"),
    Kind("truncated_jpeg", lambda f: _truncated(_good_jpeg(f, "x.jpg"), f / "half.jpg"), "error", r"truncated image"),
    Kind("truncated_png", lambda f: _truncated(make_image(f / "x.png", size=256), f / "half.png"), "error",
         r"truncated image"),
    Kind("random_bytes_jpg", lambda f: _random_file(f / "noise.jpg"), "error", r"not a readable image"),
    Kind("random_bytes_avi", lambda f: _random_file(f / "noise.avi"), "error", r"not a readable video"),
    Kind("dangling_symlink", lambda f: _symlink(f, "gone.mp4", "/nonexistent/gone.mp4"), "error",
         r"dangling symbolic link"),
    Kind("symlink_loop", lambda f: _symlink(f, "self.mp4", "self.mp4"), "error", r"symbolic link loop"),
    Kind("folder_link_to_parent", lambda f: _symlink(f, "up", ".."), "error", r"symbolic link loop"),
    # --- not media: listed as skipped with the reason
    Kind("m4a_audio", lambda f: write_audio(f / "voice.m4a", "aac", container_format="ipod"), "skipped",
         r"audio only"),
    Kind("mp3_audio", lambda f: write_audio(f / "voice.mp3", "libmp3lame"), "skipped", r"audio"),
    Kind("wav_audio", lambda f: write_audio(f / "voice.wav", "pcm_s16le"), "skipped", r"audio"),
    Kind("text_file", lambda f: _text(f / "notes.txt", "Interview notes, 3 May.\n" * 5), "skipped", r"text"),
    Kind("subtitles", lambda f: _text(f / "clip.srt", "1\n00:00:01,000 --> 00:00:02,000\nHello\n"), "skipped",
         r"not a video or image"),
    Kind("pdf", lambda f: _bytes(f / "brief.pdf", b"%PDF-1.4\n" + bytes(200)), "skipped", r"PDF"),
    Kind("zip", lambda f: _bytes(f / "bundle.zip", b"PK\x03\x04" + bytes(200)), "skipped", r"ZIP"),
    Kind("empty_text", lambda f: _bytes(f / "empty.txt", b""), "skipped", r"empty file"),
    Kind("fifo", _fifo, "skipped", r"not a regular file"),
]


def _random_file(path: Path, size: int = 6000, seed: int = 3) -> Path:
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes())
    return path


def _text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def build_kind(kind: Kind, folder: Path) -> Path:
    """Write ``kind`` into ``folder`` (created) and return the input's path."""
    folder.mkdir(parents=True, exist_ok=True)
    made = kind.make(folder)
    for leftover in folder.glob(".source*"):
        leftover.unlink()
    return made
