"""Writing output files atomically: to a hidden temporary name in the same folder, renamed when complete.

A full disk (ENOSPC), a removed output folder or an interrupted run then never leaves a half-written file under
the final name: the file is either complete or absent. Every output of fakescope goes through this module.
"""
from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

PARTIAL_MARKER = ".partial"


class AtomicOutput:
    """A temporary path beside ``path`` that becomes ``path`` on ``commit()``; ``discard()`` removes it.

    The temporary name keeps the final suffix (``.trend.png.1a2b3c4d.partial.png``), so writers that choose the format
    by extension (OpenCV, matplotlib) still work, and starts with a dot, so folder scans skip it. As a context
    manager it commits when the block succeeds and discards when it raises (or when the commit itself fails).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.temp_path = self.path.with_name(
            f".{self.path.name}.{uuid.uuid4().hex[:8]}{PARTIAL_MARKER}{self.path.suffix}"
        )
        self.done = False

    def commit(self) -> Path:
        """Move the finished temporary file to the final name (replacing an older one)."""
        if self.done:
            return self.path
        try:
            os.replace(self.temp_path, self.path)
        except BaseException:
            self.discard()
            raise
        self.done = True
        return self.path

    def discard(self) -> None:
        """Remove the temporary file, if any; never raises."""
        self.done = True
        try:
            self.temp_path.unlink(missing_ok=True)
        except OSError:
            pass

    def __enter__(self) -> AtomicOutput:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s content to; it is renamed to ``path`` if the block succeeds."""
    with AtomicOutput(path) as output:
        yield output.temp_path


@contextmanager
def atomic_open(path: str | Path, mode: str = "w", **open_options: Any) -> Iterator[IO[Any]]:
    """``open()`` for writing, atomically: the file appears under ``path`` only once closed without error.

    Text modes default to UTF-8 with ``backslashreplace``, so names with undecodable bytes (surrogates) are
    written as visible escapes instead of failing the write.
    """
    if "b" not in mode:
        open_options.setdefault("encoding", "utf-8")
        open_options.setdefault("errors", "backslashreplace")
    with AtomicOutput(path) as output:
        with open(output.temp_path, mode, **open_options) as handle:
            yield handle


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically and return the path."""
    with atomic_open(path, "w") as handle:
        handle.write(text)
    return Path(path)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)
    return Path(path)


REPLACED_MARKER = ".replaced"
_LEFTOVER = re.compile(r"^\..+\.[0-9a-f]{8}(\.partial|\.replaced)(\.[^./]*)?$")
MAX_NAME_BYTES = 255  # of one file name, on every common file system
_HIDDEN_ROOM = MAX_NAME_BYTES - len(".") - len(".12345678") - len(REPLACED_MARKER)


def _fitted(name: str) -> str:
    """``name``, cut so that the hidden names made of it stay within a file name's 255 bytes."""
    encoded = os.fsencode(name)
    return os.fsdecode(encoded[:_HIDDEN_ROOM]) if len(encoded) > _HIDDEN_ROOM else name


def _hidden_name(name: str, marker: str) -> str:
    """``.<name>.<8 hex digits><marker>``, with ``name`` fitted."""
    return f".{_fitted(name)}.{uuid.uuid4().hex[:8]}{marker}"


class AtomicFolder:
    """A hidden temporary folder beside ``path`` that becomes ``path`` on ``commit()``: the folder under its final
    name is complete or absent, never half-written. ``discard()`` removes it.

    Committing replaces an existing ``path`` as a whole (moved aside, then removed), so nothing of an older scan
    of the same input stays behind.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.temp_path = self.path.with_name(_hidden_name(self.path.name, PARTIAL_MARKER))
        self.done = False

    def create(self) -> Path:
        """Create the temporary folder (and the parents of ``path``); returns it."""
        self.temp_path.mkdir(parents=True)
        return self.temp_path

    def commit(self) -> Path:
        """Give the finished temporary folder its final name, replacing an older folder of that name."""
        if self.done:
            return self.path
        old = None
        try:
            if self.path.is_dir() and not self.path.is_symlink():
                # A directory cannot be renamed over a non-empty one: move the old one aside first.
                old = self.path.with_name(_hidden_name(self.path.name, REPLACED_MARKER))
                os.rename(self.path, old)
            os.rename(self.temp_path, self.path)
        except BaseException:
            if old is not None and old.exists() and not self.path.exists():
                os.rename(old, self.path)  # the older folder stays rather than none
            self.discard()
            raise
        self.done = True
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.path

    def discard(self) -> None:
        """Remove the temporary folder, if any; never raises."""
        self.done = True
        shutil.rmtree(self.temp_path, ignore_errors=True)


def is_leftover(name: str) -> bool:
    """Whether ``name`` is a hidden temporary file or folder of this module (``.x.1a2b3c4d.partial[.ext]``, or an
    older folder moved aside, ``.x.1a2b3c4d.replaced``)."""
    return bool(_LEFTOVER.match(name))


def remove_leftovers(root: str | Path) -> int:
    """Remove what interrupted writes left under ``root`` (hidden ``.partial`` files and folders, folders moved
    aside while being replaced), without descending into them; returns how many were removed. For a run that
    starts over in the output folder of one that was killed."""
    removed = 0
    for folder, subfolders, files in os.walk(root):
        for name in [name for name in subfolders if is_leftover(name)]:
            subfolders.remove(name)
            shutil.rmtree(os.path.join(folder, name), ignore_errors=True)
            removed += 1
        for name in files:
            if is_leftover(name):
                try:
                    os.unlink(os.path.join(folder, name))
                    removed += 1
                except OSError:
                    pass
    return removed


def remove_partial_folders(path: str | Path) -> int:
    """Remove the hidden temporary folders of ``AtomicFolder(path)`` (of attempts that died); returns how many."""
    path = Path(path)
    # Long names are cut to fit: another input whose name starts with the same 236 bytes would match too.
    pattern = re.compile(rf"^\.{re.escape(_fitted(path.name))}\.[0-9a-f]{{8}}{re.escape(PARTIAL_MARKER)}$")
    removed = 0
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return 0
    for entry in entries:
        if pattern.match(entry.name) and entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed += 1
    return removed
