"""Recognising media by content: the first bytes of a file, and FFmpeg's opinion where those are not enough.

A fixed list of extensions misses .gif, .flv, .wmv, .3gp, .heic ... and trusts a wrong extension; the signatures
below decide instead, and FFmpeg (through PyAV) is asked whether a container holds a video stream at all, so an
.m4a or .mp3 is listed as audio instead of failing as a broken video.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import av

from fakescope.video.native_log import c_path

Kind = Literal["image", "heif", "video", "container", "audio", "text", "unknown"]

HEADER_BYTES = 200  # enough for a second MPEG-TS sync byte at offset 188

# ISO base media (mp4, mov, 3gp, heic ...) brands of still images, which FFmpeg does not decode as pictures.
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis"}
_AUDIO_BRANDS = {b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "}
_ISO_BOXES = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot"}
# Container formats FFmpeg may open without a video stream: opening them tells audio from video.
_FFMPEG_TEXT_FORMATS = {"tty", "ansi", "srt", "ass", "webvtt", "subviewer", "microdvd", "jacosub", "lrc", "sami"}


@dataclass(frozen=True)
class Sniffed:
    """What a file's content looks like: ``kind`` and a short description for reasons (``"JPEG image"``)."""

    kind: Kind
    description: str


def sniff_bytes(header: bytes) -> Sniffed:
    """Classify a file by its first bytes alone (no I/O). ``container`` means: ask FFmpeg about its streams."""
    if not header:
        return Sniffed("unknown", "empty file")
    if header.startswith(b"\xff\xd8\xff"):
        return Sniffed("image", "JPEG image")
    if header.startswith(b"\x89PNG\r\n\x1a\n"):
        return Sniffed("image", "PNG image")
    if header[:4] == b"RIFF" and header[8:12] == b"WEBP":
        return Sniffed("image", "WebP image")
    if header[:2] == b"BM" and len(header) >= 14 and header[6:10] == b"\0\0\0\0":
        return Sniffed("image", "BMP image")
    if header[:4] in (b"II*\0", b"MM\0*"):
        return Sniffed("image", "TIFF image")
    if header[:6] in (b"GIF87a", b"GIF89a"):
        return Sniffed("video", "GIF animation")
    if header[4:8] == b"ftyp":
        brands = {header[8:12]} | {header[i:i + 4] for i in range(16, min(len(header), 40), 4)}
        if header[8:12] in _HEIF_BRANDS or (header[8:12] in (b"mif1", b"msf1") and brands & _HEIF_BRANDS):
            return Sniffed("heif", "HEIF/HEIC image" if header[8:12] != b"avif" else "AVIF image")
        if header[8:12] in _AUDIO_BRANDS:
            return Sniffed("container", "MPEG-4 audio")
        return Sniffed("container", "MPEG-4/QuickTime")
    if header[4:8] in _ISO_BOXES:
        return Sniffed("container", "MPEG-4/QuickTime")
    if header.startswith(b"\x1a\x45\xdf\xa3"):
        return Sniffed("container", "Matroska/WebM")
    if header[:4] == b"RIFF" and header[8:12] == b"AVI ":
        return Sniffed("container", "AVI")
    if header[:4] == b"RIFF" and header[8:12] == b"WAVE":
        return Sniffed("audio", "WAV audio")
    if header.startswith(b"\x00\x00\x01\xba"):
        return Sniffed("container", "MPEG program stream")
    if header.startswith(b"\x00\x00\x01\xb3"):
        return Sniffed("video", "MPEG video")
    if header[:1] == b"\x47" and (len(header) < 189 or header[188:189] == b"\x47"):
        # One sync byte is weak evidence; FFmpeg decides (text starting with "G" is caught as text below).
        if not _looks_like_text(header):
            return Sniffed("container", "MPEG transport stream")
    if header.startswith(b"FLV\x01"):
        return Sniffed("container", "Flash video")
    if header.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"):
        return Sniffed("container", "Windows Media (ASF)")
    if header.startswith(b"OggS"):
        return Sniffed("container", "Ogg")
    if header.startswith(b".RMF"):
        return Sniffed("container", "RealMedia")
    if header.startswith(b"YUV4MPEG2"):
        return Sniffed("video", "YUV4MPEG video")
    if header.startswith(b"ID3") or header.startswith(b"fLaC"):
        return Sniffed("audio", "MP3 audio" if header.startswith(b"ID3") else "FLAC audio")
    if header.startswith(b"%PDF"):
        return Sniffed("unknown", "PDF document")
    if header.startswith(b"PK\x03\x04"):
        return Sniffed("unknown", "ZIP archive")
    if _looks_like_text(header):
        return Sniffed("text", "text")
    return Sniffed("unknown", "unrecognised content")


def _looks_like_text(data: bytes) -> bool:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        # A multi-byte character cut at the end of the header is still text.
        try:
            text = data[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return False
    return all(char.isprintable() or char in "\t\r\n\f" for char in text)


def read_header(path: Path) -> bytes:
    """The first bytes of ``path`` (raises OSError when it cannot be read)."""
    with open(path, "rb") as handle:
        return handle.read(HEADER_BYTES)


def ffmpeg_streams(path: Path) -> tuple[str, set[str]] | None:
    """(container format, stream types) as FFmpeg sees the file's headers, or None when it does not open it."""
    try:
        with av.open(c_path(path), timeout=10.0) as container:
            kinds = {stream.type for stream in container.streams}
            video = [stream for stream in container.streams.video]
            if video and all((stream.codec_context.name or "") in _FFMPEG_TEXT_FORMATS for stream in video):
                kinds.discard("video")
            return container.format.name, kinds
    except Exception:  # noqa: BLE001 - any failure means FFmpeg does not read it
        return None


def sniff_file(path: Path) -> Sniffed:
    """Classify ``path`` by content; containers are opened with FFmpeg to tell video from audio.

    Returns ``video``/``image``/``heif`` for media, ``audio``/``text``/``unknown`` otherwise; a container FFmpeg
    cannot open stays ``container`` (the decoder's own error then explains what is wrong with it).
    Raises OSError when the file cannot be read.
    """
    sniffed = sniff_bytes(read_header(path))
    if sniffed.kind == "container":
        streams = ffmpeg_streams(path)
        if streams is None:
            return sniffed
        _, kinds = streams
        if "video" in kinds:
            return Sniffed("video", sniffed.description)
        if "audio" in kinds:
            return Sniffed("audio", f"{sniffed.description}, audio only")
        return Sniffed("unknown", f"{sniffed.description} without a video stream")
    if sniffed.kind == "unknown" and sniffed.description == "unrecognised content":
        streams = ffmpeg_streams(path)
        if streams is not None:
            format_name, kinds = streams
            if format_name not in _FFMPEG_TEXT_FORMATS and "video" in kinds:
                return Sniffed("video", f"{format_name} video")
            if "audio" in kinds and "video" not in kinds and format_name not in _FFMPEG_TEXT_FORMATS:
                return Sniffed("audio", f"{format_name} audio")
    return sniffed
