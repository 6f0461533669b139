"""Video and image input/output: probing, frame streaming and selection, media discovery, mp4 writing."""
from fakescope.video.media import (
    DEFAULT_FPS,
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    Frame,
    MediaError,
    MediaInfo,
    MediaInput,
    MediaReader,
    estimate_frame_count,
    find_media,
    probe,
)
from fakescope.video.sampling import FrameSelection
from fakescope.video.writer import VideoWriter

__all__ = [
    "DEFAULT_FPS",
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "Frame",
    "FrameSelection",
    "MediaError",
    "MediaInfo",
    "MediaInput",
    "MediaReader",
    "VideoWriter",
    "estimate_frame_count",
    "find_media",
    "probe",
]
