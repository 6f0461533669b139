"""Dataset readers (FaceForensics++, DFDC, Celeb-DF v2, real/fake folders, CSV manifests) and split helpers.

Every reader turns a dataset's official layout into ``VideoItem``s with identity groups, so that no split ever puts
one person (or one source scene) on both sides. Readers only list files; they never decode videos.
"""
from __future__ import annotations

import csv
import json
import logging
import os
import random
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fakescope.data.items import FAKE, LABEL_NAMES, REAL, DatasetSpec, VideoItem
from fakescope.video import VIDEO_EXTENSIONS

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
FFPP_FAKE_METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter", "DeepFakeDetection")
# The official download script names uncompressed videos "raw"; "c0" is the name used in the paper.
FFPP_COMPRESSION_DIRS = {"c0": ("c0", "raw"), "raw": ("raw", "c0"), "c23": ("c23",), "c40": ("c40",)}
CELEBDF_TEST_LIST = "List_of_testing_videos.txt"

# Options that load_dataset handles itself, for every kind.
COMMON_OPTIONS = frozenset({"split", "holdout", "val_fraction", "seed"})
# Separates the identities that make up a group name, e.g. "yt:183+yt:253".
GROUP_MEMBER_SEPARATOR = "+"


class DatasetError(ValueError):
    """A dataset that cannot be read as asked: missing root, bad layout or labels, empty result."""


Reader = Callable[[DatasetSpec], list[VideoItem]]


@dataclass(frozen=True)
class _Registration:
    reader: Reader
    options: frozenset[str]


_READERS: dict[str, _Registration] = {}


def register_dataset(kind: str, options: Iterable[str] = ()) -> Callable[[Reader], Reader]:
    """Register ``reader(spec) -> items`` for ``kind``; ``options`` are the spec options it understands
    (besides the common ``split``, ``holdout``, ``val_fraction`` and ``seed``)."""

    def decorate(reader: Reader) -> Reader:
        _READERS[kind.lower()] = _Registration(reader, frozenset(options))
        return reader

    return decorate


def available_datasets() -> list[str]:
    """Dataset kinds that ``load_dataset`` accepts."""
    return sorted(_READERS)


def load_dataset(spec: DatasetSpec | str) -> list[VideoItem]:
    """Read a dataset: its items sorted by key, with splits assigned and filtered as the options ask.

    Common options: ``holdout=ID,ID`` (those ids' groups to "val", the rest to "train") or ``val_fraction=F``
    with ``seed=N`` (random group-wise split), then ``split=train|val|test|all`` keeps one split.
    """
    if isinstance(spec, str):
        spec = DatasetSpec.parse(spec)
    registration = _READERS.get(spec.kind)
    if registration is None:
        raise DatasetError(f"unknown dataset kind {spec.kind!r}; known: {', '.join(available_datasets())}")
    allowed = registration.options | COMMON_OPTIONS
    unknown = sorted(set(spec.options) - allowed)
    if unknown:
        raise DatasetError(
            f"unknown option(s) {', '.join(unknown)} for {spec.kind}; known: {', '.join(sorted(allowed))}"
        )
    if not spec.root.exists():
        raise DatasetError(f"{spec.kind} dataset root does not exist: {spec.root}")

    try:
        items = registration.reader(spec)
    except UnicodeDecodeError as error:
        raise DatasetError(f"{spec.kind} dataset {spec.root}: a list or label file is not UTF-8 text ({error})") from None
    except csv.Error as error:
        raise DatasetError(f"{spec.kind} dataset {spec.root}: malformed CSV ({error})") from None
    if not items:
        raise DatasetError(f"no videos found for {spec.kind} under {spec.root}")
    keys = Counter(item.key for item in items)
    duplicates = [key for key, count in keys.items() if count > 1]
    if duplicates:
        raise DatasetError(f"{spec.kind}: duplicate video keys: {', '.join(sorted(duplicates)[:5])}")

    holdout = spec.option_list("holdout")
    val_fraction = _float_option(spec, "val_fraction")
    if holdout is not None or val_fraction is not None:
        items = assign_splits(items, holdout, val_fraction, seed=_int_option(spec, "seed", 0))

    split = spec.options.get("split", "all").strip().lower()
    if split not in (*SPLITS, "all"):
        raise DatasetError(f"split must be one of train, val, test, all; got {split!r}")
    if split != "all":
        found = sorted({str(item.split) for item in items})
        items = [item for item in items if item.split == split]
        if not items:
            raise DatasetError(
                f"no {spec.kind} videos in split {split!r} under {spec.root} (splits present: {', '.join(found)}; "
                "holdout= or val_fraction= assign splits)"
            )
    return sorted(items, key=lambda item: item.key)


# ---------------------------------------------------------------------------------------------------------------
# Splits


def group_members(group: str) -> list[str]:
    """The identities a group name is made of ("yt:183+yt:253" -> ["yt:183", "yt:253"])."""
    return group.split(GROUP_MEMBER_SEPARATOR)


def _member_matches(member: str, identity: str) -> bool:
    """True if ``identity`` names ``member``, with or without its namespace ("585" matches "yt:585")."""
    return member == identity or member.partition(":")[2] == identity


def assign_splits(
    items: list[VideoItem],
    holdout_groups_containing: list[str] | None = None,
    val_fraction: float | None = None,
    seed: int = 0,
) -> list[VideoItem]:
    """Re-split whole groups into "train" and "val" (every item gets one of the two; order is kept).

    ``holdout_groups_containing``: groups with any of these identities go to "val" (an id matches a group member
    with or without its namespace, so "585" matches "yt:585"). ``val_fraction``: groups picked at random (``seed``)
    until val holds at least that fraction of the videos.
    """
    if (holdout_groups_containing is None) == (val_fraction is None):
        raise ValueError("give exactly one of holdout_groups_containing and val_fraction")
    groups = sorted({item.group for item in items})
    if holdout_groups_containing is not None:
        identities = [identity.strip() for identity in holdout_groups_containing if identity.strip()]
        if not identities:
            raise DatasetError("holdout needs at least one identity")
        val_groups = {
            group for group in groups
            if any(_member_matches(member, identity) for member in group_members(group) for identity in identities)
        }
        unmatched = [
            identity for identity in identities
            if not any(_member_matches(member, identity) for group in groups for member in group_members(group))
        ]
        if unmatched:
            raise DatasetError(f"holdout identities match no group: {', '.join(unmatched)}")
    else:
        assert val_fraction is not None
        if not 0.0 < val_fraction < 1.0:
            raise DatasetError(f"val_fraction must be between 0 and 1, got {val_fraction}")
        sizes = Counter(item.group for item in items)
        shuffled = list(groups)
        random.Random(seed).shuffle(shuffled)
        target = val_fraction * len(items)
        val_groups, val_count = set(), 0
        for group in shuffled:
            if val_count >= target:
                break
            val_groups.add(group)
            val_count += sizes[group]
    if len(val_groups) == len(groups):
        raise DatasetError("this split would leave no group for training")
    return [replace(item, split="val" if item.group in val_groups else "train") for item in items]


def check_disjoint(items: Iterable[VideoItem]) -> None:
    """Raise DatasetError if any group has videos in two different splits (unassigned videos are ignored)."""
    splits_of_group: dict[str, set[str]] = defaultdict(set)
    for item in items:
        if item.split is not None:
            splits_of_group[item.group].add(item.split)
    shared = {group: splits for group, splits in splits_of_group.items() if len(splits) > 1}
    if shared:
        shown = "; ".join(f"{group} ({', '.join(sorted(splits))})" for group, splits in sorted(shared.items())[:5])
        more = f" and {len(shared) - 5} more" if len(shared) > 5 else ""
        raise DatasetError(f"{len(shared)} identity group(s) appear in more than one split: {shown}{more}")


def summarise(items: Iterable[VideoItem]) -> dict[str, Any]:
    """Counts of videos and groups overall, per split (with real/fake), per method and per dataset."""
    items = list(items)
    per_split: dict[str, dict[str, Any]] = {}
    order = {name: position for position, name in enumerate(SPLITS)}
    for split in sorted({item.split for item in items}, key=lambda name: (order.get(name, len(order)), str(name))):
        chosen = [item for item in items if item.split == split]
        per_split[split if split is not None else "unassigned"] = {
            "videos": len(chosen),
            "real": sum(item.label == REAL for item in chosen),
            "fake": sum(item.label == FAKE for item in chosen),
            "groups": len({item.group for item in chosen}),
        }
    return {
        "videos": len(items),
        "real": sum(item.label == REAL for item in items),
        "fake": sum(item.label == FAKE for item in items),
        "groups": len({item.group for item in items}),
        "splits": per_split,
        "methods": dict(sorted(Counter(item.method for item in items).items())),
        "datasets": dict(sorted(Counter(item.dataset for item in items).items())),
    }


# ---------------------------------------------------------------------------------------------------------------
# Shared reader machinery


@dataclass
class _Draft:
    """A video found by a reader, before identity groups are resolved."""

    path: Path
    key: str
    label: int
    method: str
    identities: tuple[str, ...]  # the people (or source videos) it shows; all of them join one group
    source: str | None = None
    split: str | None = None


class _UnionFind:
    def __init__(self) -> None:
        self._parent: dict[str, str] = {}

    def find(self, name: str) -> str:
        self._parent.setdefault(name, name)
        root = name
        while self._parent[root] != root:
            root = self._parent[root]
        while self._parent[name] != root:
            self._parent[name], name = root, self._parent[name]
        return root

    def union(self, names: Iterable[str]) -> None:
        roots = [self.find(name) for name in names]
        for other in roots[1:]:
            self._parent[self.find(other)] = self.find(roots[0])

    def components(self) -> dict[str, list[str]]:
        """Root -> sorted members."""
        members: dict[str, list[str]] = defaultdict(list)
        for name in list(self._parent):
            members[self.find(name)].append(name)
        return {root: sorted(names) for root, names in members.items()}


def _group_names(
    drafts: list[_Draft], naming: set[str] | None = None, links: Iterable[tuple[str, ...]] = ()
) -> dict[str, str]:
    """Identity -> its group's name: the component's identities (only those in ``naming`` where any are)
    joined with "+". ``links`` are further identity tuples known to belong together."""
    union_find = _UnionFind()
    for identities in [*(draft.identities for draft in drafts), *links]:
        union_find.union(identities)
    names: dict[str, str] = {}
    for members in union_find.components().values():
        shown = [member for member in members if naming is None or member in naming] or members
        name = GROUP_MEMBER_SEPARATOR.join(shown)
        for member in members:
            names[member] = name
    return names


def _to_items(
    dataset: str, drafts: list[_Draft], naming: set[str] | None = None, links: Iterable[tuple[str, ...]] = ()
) -> list[VideoItem]:
    group_of = _group_names(drafts, naming, links)
    items = [
        VideoItem(
            path=draft.path, label=draft.label, dataset=dataset, method=draft.method,
            group=group_of[draft.identities[0]], split=draft.split, source=draft.source, key=draft.key,
        )
        for draft in drafts
    ]
    return sorted(items, key=lambda item: item.key)


def _root(spec: DatasetSpec) -> Path:
    return spec.root.expanduser().resolve()


def _videos_in(folder: Path, recursive: bool = False) -> list[Path]:
    """Video files in ``folder`` (hidden files and folders skipped), sorted."""
    if not folder.is_dir():
        return []
    found: list[Path] = []
    for directory, subdirectories, filenames in os.walk(folder):
        subdirectories[:] = sorted(name for name in subdirectories if not name.startswith(".")) if recursive else []
        for name in filenames:
            path = Path(directory) / name
            if not name.startswith(".") and path.suffix.lower() in VIDEO_EXTENSIONS and path.is_file():
                found.append(path)
    return sorted(found)


def _key(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _bool_option(spec: DatasetSpec, name: str, default: bool) -> bool:
    value = spec.options.get(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise DatasetError(f"option {name} must be 0 or 1, got {value!r}")


def _int_option(spec: DatasetSpec, name: str, default: int) -> int:
    value = spec.options.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise DatasetError(f"option {name} must be an integer, got {value!r}") from None


def _float_option(spec: DatasetSpec, name: str) -> float | None:
    value = spec.options.get(name)
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        raise DatasetError(f"option {name} must be a number, got {value!r}") from None


def _warn_skipped(dataset: str, what: str, names: list[str]) -> None:
    if names:
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        logger.warning("%s: skipped %d %s: %s", dataset, len(names), what, shown)


# ---------------------------------------------------------------------------------------------------------------
# FaceForensics++

_FFPP_YOUTUBE = re.compile(r"^(\d+)$")
_FFPP_ACTOR = re.compile(r"^(\d+)__(.+)$")
_FFPP_SWAP = re.compile(r"^(\d+)_(\d+)$")
_FFPP_DFD = re.compile(r"^(\d+)_(\d+)__(.+)__([A-Za-z0-9]+)$")


def _ffpp_videos_dir(parent: Path, compression: str) -> Path | None:
    for name in FFPP_COMPRESSION_DIRS[compression]:
        if (parent / name / "videos").is_dir():
            return parent / name / "videos"
    return None


def _ffpp_methods(spec: DatasetSpec) -> tuple[bool, list[str]]:
    """(include reals, fake methods) from the ``methods`` and ``reals`` options."""
    canonical = {method.lower(): method for method in (*FFPP_FAKE_METHODS, "original")}
    requested = spec.option_list("methods")
    if requested is None:
        return _bool_option(spec, "reals", True), list(FFPP_FAKE_METHODS)
    unknown = [name for name in requested if name.lower() not in canonical]
    if unknown:
        raise DatasetError(f"unknown FaceForensics++ method(s) {', '.join(unknown)}; known: "
                           f"{', '.join(canonical.values())}")
    chosen = [canonical[name.lower()] for name in requested]
    fakes = [method for method in FFPP_FAKE_METHODS if method in chosen]
    # methods=original selects no fake method, so reals only; reals come along anyway unless reals=0.
    return _bool_option(spec, "reals", True), fakes


def _ffpp_official_pairs(root: Path) -> dict[str, list[tuple[str, str]]] | None:
    """Split -> its official [target, source] youtube id pairs, or None where there is no splits/ folder."""
    pairs_of_split: dict[str, list[tuple[str, str]]] = {}
    for split in SPLITS:
        path = root / "splits" / f"{split}.json"
        if not path.is_file():
            continue
        try:
            pairs = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise DatasetError(f"{path}: not valid JSON ({error})") from None
        if not isinstance(pairs, list) or not all(isinstance(pair, list) and len(pair) == 2 for pair in pairs):
            raise DatasetError(f"{path}: expected a list of [target, source] id pairs")
        pairs_of_split[split] = [(str(target), str(source)) for target, source in pairs]
    return pairs_of_split or None


def _ffpp_draft(path: Path, root: Path, method: str) -> _Draft | None:
    """The draft for an FF++ video of ``method`` ("original" for reals), or None if it is not named as FF++ does."""
    key, compression_dir = _key(path, root), path.parent.parent.name
    if method == "original":
        actors = path.parent.parent.parent.name == "actors"
        match = (_FFPP_ACTOR if actors else _FFPP_YOUTUBE).match(path.stem)
        return _Draft(path, key, REAL, method, (f"{'actor' if actors else 'yt'}:{match[1]}",)) if match else None
    if method == "DeepFakeDetection":
        match = _FFPP_DFD.match(path.stem)
        if match is None:
            return None
        target, source, scene = match[1], match[2], match[3]
        original = f"original_sequences/actors/{compression_dir}/videos/{target}__{scene}{path.suffix}"
        return _Draft(path, key, FAKE, method, (f"actor:{target}", f"actor:{source}"), source=original)
    match = _FFPP_SWAP.match(path.stem)
    if match is None:
        return None
    target, source = match[1], match[2]
    original = f"original_sequences/youtube/{compression_dir}/videos/{target}{path.suffix}"
    return _Draft(path, key, FAKE, method, (f"yt:{target}", f"yt:{source}"), source=original)


@register_dataset("ffpp", options=("compression", "methods", "reals", "actors_split"))
def read_ffpp(spec: DatasetSpec) -> list[VideoItem]:
    """FaceForensics++ in the official download layout.

    Options: ``compression`` (c0/raw, c23, c40; default c23), ``methods`` (comma list of fake methods, default
    all six; "original" alone means reals only), ``reals`` (1/0, default 1), ``actors_split`` (default train).

    Youtube ids ("yt:183") and actor ids ("actor:09") are separate namespaces; a fake t_s and each official split
    pair join t and s. Groups are resolved over all methods before ``methods``/``reals`` filter, so a video's group
    does not depend on what else was selected. Youtube videos take the official split of their ids' pair; actor
    videos take ``actors_split`` (train, val, test or none).
    """
    root = _root(spec)
    compression = spec.options.get("compression", "c23").strip().lower()
    if compression not in FFPP_COMPRESSION_DIRS:
        raise DatasetError(f"compression must be one of c0, raw, c23, c40; got {compression!r}")
    include_reals, fake_methods = _ffpp_methods(spec)
    actors_split = spec.options.get("actors_split", "train").strip().lower()
    if actors_split not in (*SPLITS, "none"):
        raise DatasetError(f"actors_split must be one of train, val, test, none; got {actors_split!r}")

    folders = [(root / "original_sequences" / name, "original") for name in ("youtube", "actors")]
    folders += [(root / "manipulated_sequences" / method, method) for method in FFPP_FAKE_METHODS]
    drafts: list[_Draft] = []
    unexpected: list[str] = []
    for folder, method in folders:
        videos_dir = _ffpp_videos_dir(folder, compression)
        for path in _videos_in(videos_dir) if videos_dir else []:
            draft = _ffpp_draft(path, root, method)
            if draft is None:
                unexpected.append(_key(path, root))
            else:
                drafts.append(draft)
    _warn_skipped("ffpp", "files not named as FaceForensics++ names them", unexpected)

    pairs_of_split = _ffpp_official_pairs(root)
    links = [(f"yt:{target}", f"yt:{source}") for pairs in (pairs_of_split or {}).values() for target, source in pairs]
    items = _to_items("ffpp", drafts, links=links)
    if pairs_of_split is not None:
        items = _ffpp_assign_official_splits(items, pairs_of_split, None if actors_split == "none" else actors_split)
    wanted = set(fake_methods) | ({"original"} if include_reals else set())
    return [item for item in items if item.method in wanted]


def _ffpp_assign_official_splits(
    items: list[VideoItem], pairs_of_split: dict[str, list[tuple[str, str]]], actors_split: str | None
) -> list[VideoItem]:
    split_of_id: dict[str, str] = {}
    for split, pairs in pairs_of_split.items():
        for identity in (identity for pair in pairs for identity in pair):
            previous = split_of_id.setdefault(identity, split)
            if previous != split:
                raise DatasetError(f"official FF++ splits list id {identity} in both {previous} and {split}")
    split_of_group: dict[str, str | None] = {}
    for group in {item.group for item in items}:
        members = group_members(group)
        if all(member.startswith("actor:") for member in members):
            split_of_group[group] = actors_split
            continue
        splits = {split_of_id[member[3:]] for member in members
                  if member.startswith("yt:") and member[3:] in split_of_id}
        if len(splits) > 1:
            raise DatasetError(f"official splits put identity group {group} in {', '.join(sorted(splits))}")
        split_of_group[group] = splits.pop() if splits else None
    return [replace(item, split=split_of_group[item.group]) for item in items]


# ---------------------------------------------------------------------------------------------------------------
# DFDC


def _dfdc_metadata_files(root: Path) -> list[Path]:
    files = sorted(root.glob("dfdc_train_part_*/metadata.json"))
    if (root / "metadata.json").is_file():  # root is a single part (or the Kaggle sample folder)
        files.insert(0, root / "metadata.json")
    return files


def _dfdc_label_files(root: Path) -> list[Path]:
    candidates = [root / "labels.csv", *sorted(root.glob("*/labels.csv"))]
    return [path for path in candidates if path.is_file()]


@register_dataset("dfdc")
def read_dfdc(spec: DatasetSpec) -> list[VideoItem]:
    """DFDC: training parts (``dfdc_train_part_*/metadata.json``) and/or the public test set (a folder with the
    videos and ``labels.csv``: filename,label with 1 = fake), whichever are under the root."""
    root = _root(spec)
    metadata_files, label_files = _dfdc_metadata_files(root), _dfdc_label_files(root)
    if not metadata_files and not label_files:
        raise DatasetError(f"no DFDC layout under {root}: expected dfdc_train_part_*/metadata.json "
                           "or a test folder with labels.csv")
    entries: list[tuple[Path, dict[str, Any]]] = []
    key_of_name: dict[str, str] = {}
    for metadata_file in metadata_files:
        try:
            metadata = json.loads(metadata_file.read_text())
        except json.JSONDecodeError as error:
            raise DatasetError(f"{metadata_file}: not valid JSON ({error})") from None
        if not isinstance(metadata, dict) or not all(isinstance(entry, dict) for entry in metadata.values()):
            raise DatasetError(f"{metadata_file}: expected an object of video name -> {{label, original, ...}}")
        for name, entry in metadata.items():
            original = entry.get("original")
            if not _plain_name(name) or (original is not None and not _plain_name(original)):
                raise DatasetError(f"{metadata_file}: entry {name!r} is not a plain video file name "
                                   f"(or its original {original!r} is not)")
            entries.append((metadata_file.parent / name, entry))
            key_of_name[name] = _key(metadata_file.parent / name, root)

    drafts: list[_Draft] = []
    missing: list[str] = []
    originals: set[str] = set()
    for path, entry in entries:
        if not path.is_file():
            missing.append(_key(path, root))
            continue
        label_text = str(entry.get("label", "")).upper()
        if label_text not in ("REAL", "FAKE"):
            raise DatasetError(f"{path.parent / 'metadata.json'}: {path.name} has label {entry.get('label')!r}, "
                               "expected REAL or FAKE")
        original = entry.get("original") if label_text == "FAKE" else None
        if label_text == "REAL":
            originals.add(path.stem)
        identities = (path.stem, Path(original).stem) if original else (path.stem,)
        if original:
            originals.add(Path(original).stem)
        source = key_of_name.get(original, _key(path.parent / original, root)) if original else None
        drafts.append(_Draft(
            path, _key(path, root), FAKE if label_text == "FAKE" else REAL,
            "dfdc" if label_text == "FAKE" else "original", identities, source=source, split=entry.get("split"),
        ))

    for label_file in label_files:
        with label_file.open(newline="") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames or not {"filename", "label"} <= set(reader.fieldnames):
                raise DatasetError(f"{label_file}: expected columns filename,label; got {reader.fieldnames}")
            for row in reader:
                path = label_file.parent / row["filename"]
                if row["label"].strip() not in ("0", "1"):
                    raise DatasetError(f"{label_file} line {reader.line_num}: label {row['label']!r} is not 0 or 1")
                if not path.is_file():
                    missing.append(_key(path, root))
                    continue
                label = FAKE if row["label"].strip() == "1" else REAL
                drafts.append(_Draft(path, _key(path, root), label, "dfdc" if label == FAKE else "original",
                                     (path.stem,), split="test"))
    _warn_skipped("dfdc", "videos listed but not on disk", missing)
    # A group is named after its real video(s), not after all of its (often dozens of) fakes.
    return _to_items("dfdc", drafts, naming=originals)


def _plain_name(name: object) -> bool:
    """A file name usable inside a dataset folder: a non-empty string without NUL, not leaving the folder."""
    return (isinstance(name, str) and bool(name.strip()) and "\0" not in name
            and ".." not in Path(name).parts and not Path(name).is_absolute())


# ---------------------------------------------------------------------------------------------------------------
# Celeb-DF v2

_CELEB_REAL = re.compile(r"^(id\d+)_(\d+)$")
_CELEB_FAKE = re.compile(r"^(id\d+)_(id\d+)_(\d+)$")


def _celebdf_test_labels(root: Path) -> dict[str, int] | None:
    """Key -> label from the official test list (whose labels say 1 = real, 0 = fake), or None if absent."""
    path = root / CELEBDF_TEST_LIST
    if not path.is_file():
        return None
    labels: dict[str, int] = {}
    for line_number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or parts[0] not in ("0", "1"):
            raise DatasetError(f"{path} line {line_number}: expected '<1 real | 0 fake> <path>', got {line!r}")
        labels[Path(parts[1].strip()).as_posix()] = REAL if parts[0] == "1" else FAKE
    return labels


@register_dataset("celebdf")
def read_celebdf(spec: DatasetSpec) -> list[VideoItem]:
    """Celeb-DF v2: Celeb-real and YouTube-real (real), Celeb-synthesis (fake); the videos in
    List_of_testing_videos.txt are "test", the others "train" (no split where the list is absent)."""
    root = _root(spec)
    drafts: list[_Draft] = []
    unexpected: list[str] = []
    for path in _videos_in(root / "Celeb-real"):
        match = _CELEB_REAL.match(path.stem)
        if match is None:
            unexpected.append(_key(path, root))
            continue
        drafts.append(_Draft(path, _key(path, root), REAL, "original", (match[1],)))
    for path in _videos_in(root / "YouTube-real"):
        drafts.append(_Draft(path, _key(path, root), REAL, "original", (f"youtube:{path.stem}",)))
    for path in _videos_in(root / "Celeb-synthesis"):
        match = _CELEB_FAKE.match(path.stem)
        if match is None:
            unexpected.append(_key(path, root))
            continue
        target, source, number = match[1], match[2], match[3]
        drafts.append(_Draft(path, _key(path, root), FAKE, "Celeb-synthesis", (target, source),
                             source=f"Celeb-real/{target}_{number}{path.suffix}"))
    _warn_skipped("celebdf", "files not named as Celeb-DF names them", unexpected)

    test_labels = _celebdf_test_labels(root)
    if test_labels is not None:
        for draft in drafts:
            listed = test_labels.get(draft.key)
            draft.split = "train" if listed is None else "test"
            if listed is not None and listed != draft.label:
                raise DatasetError(
                    f"{root / CELEBDF_TEST_LIST}: {draft.key} is listed as {LABEL_NAMES[listed]} but its folder "
                    f"says {LABEL_NAMES[draft.label]} (Celeb-DF's list uses 1 for real and 0 for fake)"
                )
        _warn_skipped("celebdf", "test-list videos not on disk",
                      sorted(set(test_labels) - {draft.key for draft in drafts}))
    return _to_items("celebdf", drafts)


# ---------------------------------------------------------------------------------------------------------------
# Folders and manifests


@register_dataset("folder", options=("group_by",))
def read_folder(spec: DatasetSpec) -> list[VideoItem]:
    """``root/real/**`` and ``root/fake/**`` (recursive); a fake's method is its first folder under fake/.

    ``group_by=file`` (default) groups by file stem, ``group_by=dir`` by parent folder name.
    """
    root = _root(spec)
    group_by = spec.options.get("group_by", "file").strip().lower()
    if group_by not in ("file", "dir"):
        raise DatasetError(f"group_by must be file or dir, got {group_by!r}")
    if not (root / "real").is_dir() and not (root / "fake").is_dir():
        raise DatasetError(f"expected folders real/ and/or fake/ under {root}")
    items: list[VideoItem] = []
    for label, folder in ((REAL, root / "real"), (FAKE, root / "fake")):
        for path in _videos_in(folder, recursive=True):
            inside = path.relative_to(folder).parts
            if label == REAL:
                method = "original"
            else:
                method = inside[0] if len(inside) > 1 else "fake"
            group = path.stem if group_by == "file" else path.parent.name
            items.append(VideoItem(path=path, label=label, dataset="folder", method=method, group=group,
                                   key=_key(path, root)))
    return sorted(items, key=lambda item: item.key)


_LABEL_WORDS = {"real": REAL, "0": REAL, "fake": FAKE, "1": FAKE}


@register_dataset("manifest")
def read_manifest(spec: DatasetSpec) -> list[VideoItem]:
    """A CSV file with columns path,label and optional split,group,method; paths relative to the CSV's folder.

    Labels: real/fake/0/1 (any case). Defaults: group = file stem, method = "original" or "fake", no split.
    """
    csv_path = _root(spec)
    if not csv_path.is_file():
        raise DatasetError(f"manifest root must be a CSV file, got {csv_path}")
    base = csv_path.parent
    items: list[VideoItem] = []
    with csv_path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        fields = [name.strip() for name in reader.fieldnames or []]
        if not {"path", "label"} <= set(fields):
            raise DatasetError(f"{csv_path}: expected a header with columns path,label; got {reader.fieldnames}")
        reader.fieldnames = fields
        for row in reader:
            where = f"{csv_path} line {reader.line_num}"
            relative = (row.get("path") or "").strip()
            label_text = (row.get("label") or "").strip().lower()
            if label_text not in _LABEL_WORDS:
                raise DatasetError(f"{where}: label {row.get('label')!r} is not one of real, fake, 0, 1")
            label = _LABEL_WORDS[label_text]
            if not relative:
                raise DatasetError(f"{where}: empty path")
            try:
                path = (base / relative).resolve()
                exists = path.is_file()
            except (ValueError, OSError) as error:  # a NUL byte, a name too long ...
                raise DatasetError(f"{where}: unusable path {relative!r} ({error})") from None
            if not exists:
                raise DatasetError(f"{where}: no such video file {path}")
            split = (row.get("split") or "").strip().lower() or None
            if split is not None and split not in SPLITS:
                raise DatasetError(f"{where}: split {row.get('split')!r} is not one of train, val, test")
            key = _key(path, base) if path.is_relative_to(base) else path.as_posix()
            items.append(VideoItem(
                path=path, label=label, dataset="manifest",
                method=(row.get("method") or "").strip() or ("original" if label == REAL else "fake"),
                group=(row.get("group") or "").strip() or path.stem, split=split, key=key,
            ))
    return sorted(items, key=lambda item: item.key)


@register_dataset("corpus", options=("datasets", "per_identity", "labels", "kinds"))
def read_corpus(spec: DatasetSpec) -> list[VideoItem]:
    """The ``manifest.csv`` written by ``fakescope corpus build``: photos, video frames, videos and face-crop videos
    with their identity as the group, the corpus dataset (``lfw``, ``youtube-faces``, ...) as ``dataset`` and the
    media kind as ``kind``.

    Options: ``datasets=lfw,celeba`` keeps those corpus datasets; ``labels=real`` or ``fake``; ``kinds=photo,video``;
    ``per_identity=N`` keeps at most N files per identity (the first N by path: the same choice every run).
    Table files (the landmarks) are never items.
    """
    from fakescope.data.corpus import MANIFEST_COLUMNS, MEDIA_KINDS

    csv_path = _root(spec)
    if not csv_path.is_file():
        raise DatasetError(f"corpus root must be the manifest.csv of a built corpus, got {csv_path}")
    wanted_datasets = set(spec.option_list("datasets") or [])
    wanted_labels = set(spec.option_list("labels") or ["real", "fake"])
    wanted_kinds = set(spec.option_list("kinds") or MEDIA_KINDS)
    per_identity = _int_option(spec, "per_identity", 0)
    base = csv_path.parent
    items: list[VideoItem] = []
    taken: Counter[str] = Counter()
    with csv_path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = sorted(set(MANIFEST_COLUMNS) - set(reader.fieldnames or []))
        if missing:
            raise DatasetError(f"{csv_path}: not a corpus manifest (missing columns {', '.join(missing)})")
        for row in reader:
            if row["kind"] not in MEDIA_KINDS or row["kind"] not in wanted_kinds:
                continue
            if wanted_datasets and row["dataset"] not in wanted_datasets:
                continue
            if row["label"] not in wanted_labels:
                continue
            if per_identity and taken[row["identity"]] >= per_identity:
                continue
            path = base / row["path"]
            if not path.is_file():
                raise DatasetError(f"{csv_path} line {reader.line_num}: no such file {path} (rebuild the corpus)")
            taken[row["identity"]] += 1
            label = _LABEL_WORDS[row["label"]]
            items.append(VideoItem(
                path=path, label=label, dataset=row["dataset"], kind=row["kind"],
                method=row["method"] or ("original" if label == REAL else "fake"),
                group=row["identity"] or path.stem, key=row["path"],
            ))
    unknown = wanted_datasets - {item.dataset for item in items}
    if unknown:
        raise DatasetError(f"{csv_path}: no items of dataset(s) {', '.join(sorted(unknown))}")
    return sorted(items, key=lambda item: item.key)
