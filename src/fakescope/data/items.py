"""What every dataset reader produces: labelled videos with their identity group and split."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

REAL, FAKE = 0, 1
LABEL_NAMES = {REAL: "real", FAKE: "fake"}
STILL_KINDS = frozenset({"photo", "video_frame"})


@dataclass(frozen=True)
class VideoItem:
    """One labelled video of a dataset."""

    path: Path  # absolute path of the video
    label: int  # REAL (0) or FAKE (1)
    dataset: str  # "ffpp", "dfdc", "celebdf", "folder", "manifest"
    method: str  # "original" for real videos, else the manipulation method (e.g. "Deepfakes")
    group: str  # identity group: videos sharing a person share a group; splits never divide a group
    split: str | None = None  # "train", "val" or "test" where the dataset (or a split rule) assigns one
    source: str | None = None  # for a fake: the key of the original it was made from, where known
    key: str = ""  # stable unique id within the dataset (e.g. its path relative to the dataset root)
    # What the file is: "video", "photo" (a still, read as a one-frame clip), "video_frame" (one frame of a video,
    # saved as an image) or "video_face_crop" (a video already cropped to one face).
    kind: str = "video"

    @property
    def is_still(self) -> bool:
        return self.kind in STILL_KINDS

    @property
    def label_name(self) -> str:
        return LABEL_NAMES[self.label]


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset to read: ``kind:root`` with options, e.g. ``ffpp:../shared/data/ffpp-mini?compression=c23&split=val``.

    Options are reader-specific (``methods=Deepfakes,Face2Face``, ``split=train``, ``holdout=585,599`` ...).
    """

    kind: str
    root: Path
    options: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> "DatasetSpec":
        kind, sep, rest = text.partition(":")
        if not sep or not kind or not rest:
            raise ValueError(f"dataset spec must look like KIND:ROOT[?key=value&...], got {text!r}")
        root, _, query = rest.partition("?")
        return cls(kind.strip().lower(), Path(root).expanduser(), dict(parse_qsl(query, keep_blank_values=True)))

    def option_list(self, name: str, default: list[str] | None = None) -> list[str] | None:
        value = self.options.get(name)
        if value is None:
            return default
        return [part.strip() for part in value.split(",") if part.strip()]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "root": str(self.root), "options": dict(self.options)}
