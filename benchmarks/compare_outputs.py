"""Compare two `fakescope scan` output folders file by file, ignoring what may differ between equal scans.

    python benchmarks/compare_outputs.py BEFORE_DIR AFTER_DIR [--alias TEXT_IN_BEFORE=TEXT_IN_AFTER ...]

JSON files are compared as data without their timings (``timing``) and with each folder's own absolute path replaced
by ``<out>``; CSV and HTML files likewise as text; images byte for byte; videos frame by frame after decoding (their
containers may differ in encoder metadata). ``--alias`` treats a text of the first folder's files as another (the
package's location in ``model.weights`` when the two runs used checkouts in different places). Prints one line per
file and exits 1 when anything differs.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

TEXT_SUFFIXES = {".csv", ".html"}
VIDEO_SUFFIXES = {".mp4"}


def _without_timings(data: Any) -> Any:
    if isinstance(data, dict):
        return {key: _without_timings(value) for key, value in data.items() if key != "timing"}
    if isinstance(data, list):
        return [_without_timings(value) for value in data]
    return data


ALIASES: list[tuple[str, str]] = []


def _text(path: Path, root: Path, aliases: bool) -> str:
    text = path.read_text(encoding="utf-8").replace(str(root.resolve()), "<out>")
    for before, after in ALIASES if aliases else []:
        text = text.replace(before, after)
    return text


def _frames(path: Path) -> list[bytes]:
    import av

    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="bgr24").tobytes() for frame in container.decode(video=0)]


def same(before: Path, after: Path, root_before: Path, root_after: Path) -> tuple[bool, str]:
    """Whether two output files hold the same content, and how they were compared."""
    suffix = before.suffix.lower()
    if suffix == ".json":
        a = json.loads(_text(before, root_before, True))
        b = json.loads(_text(after, root_after, False))
        return _without_timings(a) == _without_timings(b), "json without timings"
    if suffix in TEXT_SUFFIXES:
        return _text(before, root_before, True) == _text(after, root_after, False), "text"
    if suffix in VIDEO_SUFFIXES:
        a, b = _frames(before), _frames(after)
        return a == b, f"{len(a)} vs {len(b)} decoded frames"
    return before.read_bytes() == after.read_bytes(), "bytes"


def main() -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--alias", action="append", default=[], metavar="BEFORE=AFTER")
    args = parser.parse_args()
    ALIASES.extend(tuple(alias.split("=", 1)) for alias in args.alias)
    root_before, root_after = args.before, args.after
    names_before = {p.relative_to(root_before) for p in root_before.rglob("*") if p.is_file()}
    names_after = {p.relative_to(root_after) for p in root_after.rglob("*") if p.is_file()}
    differing = 0
    for name in sorted(names_before | names_after):
        if name not in names_before or name not in names_after:
            print(f"ONLY IN {'BEFORE' if name in names_before else 'AFTER'}: {name}")
            differing += 1
            continue
        equal, how = same(root_before / name, root_after / name, root_before, root_after)
        print(f"{'same' if equal else 'DIFFERENT'} ({how}): {name}")
        differing += not equal
    print(f"{len(names_before | names_after)} files, {differing} differing")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
