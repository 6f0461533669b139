"""Writing output files atomically: to a hidden temporary name in the same folder, renamed when complete.

A full disk (ENOSPC), a removed output folder or an interrupted run then never leaves a half-written file under
the final name: the file is either complete or absent. Every output of fakescope goes through this module.
"""
from __future__ import annotations

import os
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
