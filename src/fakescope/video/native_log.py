"""Catching what native decoders (libjpeg, libpng, libtiff, OpenCV) print straight to file descriptor 2.

Those messages ("Premature end of JPEG file", "libpng error: Read Error") bypass Python's ``sys.stderr``, so they
would reach the user's terminal as noise, twice or three times per file. Decoding inside ``native_stderr()`` sends
them to a temporary file instead; the caller turns them into a clear reason or warning.
"""
from __future__ import annotations

import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_LOCK = threading.Lock()


class CapturedOutput:
    """The lines written to descriptor 2 while the ``native_stderr()`` block ran (filled when it ends)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def mentions(self, *fragments: str) -> bool:
        """Whether any captured line contains one of ``fragments`` (case-insensitive)."""
        lowered = [line.lower() for line in self.lines]
        return any(fragment.lower() in line for fragment in fragments for line in lowered)


@contextmanager
def native_stderr() -> Iterator[CapturedOutput]:
    """Redirect descriptor 2 to a temporary file for the duration of the block; yields the captured lines.

    One block at a time in the process (a lock), and the block should be short: anything else writing to standard
    error meanwhile is captured too. Where descriptor 2 cannot be redirected, the block runs uncaptured.
    """
    captured = CapturedOutput()
    with _LOCK:
        try:
            sys.stderr.flush()
        except (AttributeError, OSError, ValueError):
            pass
        try:
            saved = os.dup(2)
        except OSError:
            yield captured
            return
        with tempfile.TemporaryFile(mode="w+b") as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield captured
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                sink.seek(0)
                text = sink.read().decode("utf-8", "replace")
                captured.lines = [line.strip() for line in text.splitlines() if line.strip()]


_ALIAS_LOCK = threading.Lock()
_ALIASES: dict[bytes, str] = {}
_ALIAS_DIR: list[str] = []


def c_path(path: str | os.PathLike[str]) -> str:
    """A path string native libraries can take for ``path``.

    OpenCV crashes (segmentation fault) on a file name that is not valid UTF-8 (on Linux, such names reach Python
    as lone surrogates), and FFmpeg cannot be given one either. For those, a symbolic link with a plain name in a
    private temporary folder (removed at exit) stands in; every other path is returned unchanged.
    """
    text = os.fspath(path)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    raw = os.fsencode(os.path.abspath(text))
    with _ALIAS_LOCK:
        alias = _ALIASES.get(raw)
        if alias is not None and os.path.lexists(alias):
            return alias
        if not _ALIAS_DIR:
            import atexit
            import shutil

            folder = tempfile.mkdtemp(prefix="fakescope-names-")
            atexit.register(shutil.rmtree, folder, True)
            _ALIAS_DIR.append(folder)
        suffix = os.path.splitext(text)[1]
        suffix = suffix if suffix.isascii() and suffix.isprintable() else ""
        alias = os.path.join(_ALIAS_DIR[0], f"input-{len(_ALIASES)}{suffix}")
        os.symlink(raw, os.fsencode(alias))
        _ALIASES[raw] = alias
        return alias
