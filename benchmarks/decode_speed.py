"""Decoding alone for sparse frame selections: OpenCV through every frame against PyAV skipping what is not needed.

    PYTHONPATH=src .venv/bin/python benchmarks/decode_speed.py [--frames 32] [--rounds 2] [--videos DIR]

Reads every video under DIR (default: the shared ffpp-mini videos) with ``MediaReader`` and ``--frames N`` as a scan
does (``decode_all=False``), once with the "opencv" backend (every frame grabbed, the selected ones converted) and
once with "pyav-sparse" (only the selected frames and the frames they refer to decoded), alternating round by round,
and prints per backend the wall clock, the CPU seconds of the process (decoding threads included), the frames that
were never decoded, and whether both gave the same frames, pixel for pixel. This is the floor of a triage scan's
cost per video before any face is looked for.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FAKESCOPE_SHARED", REPO.parent / "shared"))


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def read_selected(paths: list[Path], frames: int, sparse: bool) -> tuple[float, float, int, dict]:
    """Wall and CPU seconds to read ``frames`` frames of each of ``paths``, frames never decoded, and a digest of
    the frames read (index -> a checksum) per video."""
    from fakescope.video import FrameSelection, MediaReader, media

    saved = media._SPARSE_FORMATS
    if not sparse:
        media._SPARSE_FORMATS = frozenset()  # every container then goes to OpenCV
    try:
        skipped, digests = 0, {}
        started_wall, started_cpu = time.perf_counter(), cpu_seconds()
        for path in paths:
            with MediaReader(path, selection=FrameSelection("count", frames), decode_all=False) as reader:
                digests[path] = {frame.index: int(np.asarray(frame.image, np.int64).sum()) for frame in reader}
                skipped += reader.frames_skipped
                expected = "pyav-sparse" if sparse else "opencv"
                if reader.backend != expected:
                    print(f"  note: {path.name} read by {reader.backend}, not {expected}")
        return time.perf_counter() - started_wall, cpu_seconds() - started_cpu, skipped, digests
    finally:
        media._SPARSE_FORMATS = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=32, help="frames selected per video (scan --frames)")
    parser.add_argument("--rounds", type=int, default=2, help="reads of the directory per backend")
    parser.add_argument("--videos", type=Path, default=SHARED / "data/ffpp-mini", help="a folder of videos")
    args = parser.parse_args()
    paths = sorted(path for path in args.videos.rglob("*") if path.suffix.lower() in {".mp4", ".mov", ".mkv", ".webm"})
    if not paths:
        sys.exit(f"no videos under {args.videos} (set FAKESCOPE_SHARED)")
    print(f"{len(paths)} videos under {args.videos}, --frames {args.frames}; load {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores", flush=True)
    digests = {}
    for round_number in range(args.rounds):
        for sparse in ((False, True) if round_number % 2 == 0 else (True, False)):
            name = "pyav-sparse" if sparse else "opencv"
            wall, cpu, skipped, digests[name] = read_selected(paths, args.frames, sparse)
            print(f"  {name:11} wall {wall:6.1f} s  cpu {cpu:6.1f} s  ({cpu / len(paths):.2f} CPU-s a video)  "
                  f"frames never decoded {skipped}", flush=True)
    same = digests["opencv"] == digests["pyav-sparse"]
    print(f"same frames from both: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
