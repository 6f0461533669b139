"""Corpus builder: materialise a blob-pinned file list (``shared/data/corpus/files.csv``) from git mirrors.

Each listed file names its repository, commit, path and git blob id. The builder reads each blob from a local git
mirror of its repository (``git cat-file --batch``, one process per repository), checks that the bytes hash to the
listed blob id, and writes them under ``out/files/<dataset>/<path in the repository>``. A file already there with
the right blob id is kept, so an interrupted build resumes. The result is ``out/manifest.csv``, read by the
``corpus`` dataset kind, and ``out/build.json`` with what is missing and why.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tqdm import tqdm

LIST_COLUMNS = ("source_repo", "commit", "path", "blob", "bytes", "kind", "label", "dataset", "identity", "method")
MEDIA_KINDS = ("photo", "video_frame", "video", "video_face_crop")
# Files that are data about other files (the YouTube Faces landmark tables), not media.
TABLE_KINDS = ("landmarks",)
MANIFEST_COLUMNS = ("path", "label", "kind", "dataset", "identity", "method", "group", "source_repo", "blob")


class CorpusError(ValueError):
    """A file list or mirror directory that cannot be used as asked."""


@dataclass(frozen=True)
class ListedFile:
    """One row of the file list."""

    source_repo: str
    commit: str
    path: str
    blob: str
    bytes: int
    kind: str
    label: str
    dataset: str
    identity: str
    method: str

    @property
    def local_path(self) -> Path:
        """Where the file goes under ``out/files`` (dataset, then its path in the repository)."""
        return Path(self.dataset) / self.path


@dataclass
class BuildReport:
    """What a build did; ``missing`` maps a reason to the listed files it applies to."""

    out_dir: Path
    listed: int = 0
    written: int = 0
    reused: int = 0
    missing: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    seconds: float = 0.0

    @property
    def missing_count(self) -> int:
        return sum(len(paths) for paths in self.missing.values())

    @property
    def manifest_path(self) -> Path:
        return self.out_dir / "manifest.csv"

    def to_dict(self) -> dict[str, Any]:
        return {
            "listed": self.listed,
            "written": self.written,
            "reused": self.reused,
            "missing": self.missing_count,
            "missing_by_reason": {reason: {"count": len(paths), "files": paths[:20]}
                                  for reason, paths in sorted(self.missing.items())},
            "seconds": round(self.seconds, 2),
        }


def git_blob_id(data: bytes) -> str:
    """The SHA-1 git gives a file's bytes (``git hash-object``)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def read_file_list(path: Path) -> list[ListedFile]:
    """Read and check the file list; any malformed row is an error naming its line."""
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"file list not found: {path}")
    files = []
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing_columns = sorted(set(LIST_COLUMNS) - set(reader.fieldnames or []))
        if missing_columns:
            raise CorpusError(f"{path}: missing columns {', '.join(missing_columns)}")
        for row in reader:
            where = f"{path} line {reader.line_num}"
            try:
                item = ListedFile(**{name: (row[name] or "").strip() for name in LIST_COLUMNS if name != "bytes"},
                                  bytes=int(row["bytes"]))
            except (TypeError, ValueError) as error:
                raise CorpusError(f"{where}: {error}") from error
            if len(item.blob) != 40 or any(c not in "0123456789abcdef" for c in item.blob):
                raise CorpusError(f"{where}: blob {item.blob!r} is not a 40-digit hex SHA-1")
            if item.kind not in MEDIA_KINDS + TABLE_KINDS:
                raise CorpusError(f"{where}: unknown kind {item.kind!r}")
            if item.kind in MEDIA_KINDS and item.label not in ("real", "fake"):
                raise CorpusError(f"{where}: label {item.label!r} is not real or fake")
            parts = Path(item.path).parts
            if not parts or Path(item.path).is_absolute() or ".." in parts or not item.dataset or "/" in item.dataset:
                raise CorpusError(f"{where}: unsafe path {item.dataset}/{item.path}")
            files.append(item)
    return files


def find_mirror(mirrors: Path, repo: str) -> Path | None:
    """The git directory of ``owner/name`` under ``mirrors``, in the layouts the fetch tool and ``git clone
    --mirror`` leave: ``owner+name/repo``, ``owner+name``, ``owner/name(.git)``, ``name(.git)``."""
    owner, _, name = repo.partition("/")
    for candidate in (mirrors / f"{owner}+{name}" / "repo", mirrors / f"{owner}+{name}", mirrors / owner / name,
                      mirrors / owner / f"{name}.git", mirrors / name, mirrors / f"{name}.git"):
        if (candidate / "objects").is_dir() or (candidate / ".git" / "objects").is_dir():
            return candidate
    return None


class BlobReader:
    """Reads blobs from one git directory through a long-running ``git cat-file --batch``."""

    def __init__(self, git_dir: Path) -> None:
        self.process = subprocess.Popen(
            ["git", f"--git-dir={git_dir / '.git' if (git_dir / '.git').is_dir() else git_dir}", "cat-file",
             "--batch"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )

    def read(self, blob: str) -> bytes | None:
        """The blob's bytes, or None when the repository does not hold it."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(blob.encode() + b"\n")
        self.process.stdin.flush()
        header = self.process.stdout.readline().split()
        if len(header) != 3:  # "<blob> missing"
            return None
        size = int(header[2])
        data = self.process.stdout.read(size)
        self.process.stdout.read(1)  # the newline after the content
        return data if header[1] == b"blob" else None

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        self.process.wait(timeout=30)

    def __enter__(self) -> "BlobReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def _already_there(path: Path, item: ListedFile) -> bool:
    try:
        if path.stat().st_size != item.bytes:
            return False
        return git_blob_id(path.read_bytes()) == item.blob
    except OSError:
        return False


def build_corpus(
    file_list: Path,
    mirrors: Path,
    out_dir: Path,
    datasets: Iterable[str] | None = None,
    progress: bool = True,
) -> BuildReport:
    """Materialise the listed files (optionally only some ``datasets``) from ``mirrors`` into ``out_dir``.

    Never stops for a missing repository or blob: those files are reported in ``build.json`` and left out of the
    manifest. A blob whose bytes do not hash to its listed id is refused and reported the same way.
    """
    started = time.perf_counter()
    files = read_file_list(file_list)
    if datasets is not None:
        wanted = set(datasets)
        unknown = wanted - {item.dataset for item in files}
        if unknown:
            raise CorpusError(f"no such dataset(s) in {file_list}: {', '.join(sorted(unknown))}")
        files = [item for item in files if item.dataset in wanted]
    if not Path(mirrors).is_dir():
        raise CorpusError(f"mirror directory not found: {mirrors}")
    out_dir = Path(out_dir).absolute()
    report = BuildReport(out_dir=out_dir, listed=len(files))
    done: list[ListedFile] = []
    by_repo: dict[str, list[ListedFile]] = defaultdict(list)
    for item in files:
        by_repo[item.source_repo].append(item)

    bar = tqdm(total=len(files), unit="file", desc="corpus", disable=not progress)
    try:
        for repo, items in sorted(by_repo.items()):
            pending = []
            for item in items:
                if _already_there(out_dir / "files" / item.local_path, item):
                    report.reused += 1
                    done.append(item)
                    bar.update()
                else:
                    pending.append(item)
            if not pending:
                continue
            git_dir = find_mirror(Path(mirrors), repo)
            if git_dir is None:
                report.missing[f"no mirror of {repo} under {mirrors} (fetch github:{repo})"].extend(
                    f"{item.dataset}/{item.path}" for item in pending)
                bar.update(len(pending))
                continue
            with BlobReader(git_dir) as reader:
                for item in pending:
                    data = reader.read(item.blob)
                    if data is None:
                        report.missing[f"blob not in the mirror of {repo}"].append(f"{item.dataset}/{item.path}")
                    elif git_blob_id(data) != item.blob:
                        report.missing["content does not match its blob id"].append(f"{item.dataset}/{item.path}")
                    else:
                        _write_atomically(out_dir / "files" / item.local_path, data)
                        report.written += 1
                        done.append(item)
                    bar.update()
    finally:
        bar.close()
    report.seconds = time.perf_counter() - started
    write_manifest(out_dir, done)
    record = {"file_list": str(Path(file_list).absolute()), "mirrors": str(Path(mirrors).absolute()),
              "datasets": sorted({item.dataset for item in files}), "summary": report.to_dict(),
              "counts": _counts(done), "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    (out_dir / "build.json").write_text(json.dumps(record, indent=1) + "\n")
    return report


def _counts(files: Iterable[ListedFile]) -> dict[str, dict[str, int]]:
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    identities: dict[str, set[str]] = defaultdict(set)
    for item in files:
        counts[item.dataset][f"{item.kind}:{item.label or 'table'}"] += 1
        identities[item.dataset].add(item.identity)
    return {name: {**counts[name], "identities": len(identities[name])} for name in sorted(counts)}


def write_manifest(out_dir: Path, files: Iterable[ListedFile]) -> None:
    """``out_dir/manifest.csv``: one row per file present (media, and tables such as the landmarks with an empty
    label), paths relative to ``out_dir``, ``group`` = ``identity`` so that splits keep a person on one side."""
    rows = sorted(files, key=lambda item: (item.dataset, item.path))
    path = out_dir / "manifest.csv"
    out_dir.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temporary.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(MANIFEST_COLUMNS)
        for item in rows:
            writer.writerow([(Path("files") / item.local_path).as_posix(), item.label, item.kind, item.dataset,
                             item.identity, item.method or {"real": "original", "fake": "fake"}.get(item.label, ""),
                             item.identity, item.source_repo, item.blob])
    os.replace(temporary, path)


def is_calibration_identity(group: str) -> bool:
    """The split of held-out real identities used to judge a recipe: half of them (by a hash of the group name)
    choose the verdict threshold, the other half only measure it, so the measured false-alarm rate is honest."""
    return int(hashlib.sha1(group.encode()).hexdigest(), 16) % 2 == 0


HeldOutRole = Literal["fit", "threshold", "test"]


def held_out_role(group: str) -> HeldOutRole:
    """A finer split of the held-out real identities, for recipes that train on some of them: the test half of
    :func:`is_calibration_identity` stays ``"test"`` (only measures), and the calibration half divides by a second
    hash into ``"threshold"`` (a third: chooses the threshold, never trained on) and ``"fit"`` (may be trained on)."""
    if not is_calibration_identity(group):
        return "test"
    return "threshold" if int(hashlib.sha1(f"part:{group}".encode()).hexdigest(), 16) % 3 == 0 else "fit"
