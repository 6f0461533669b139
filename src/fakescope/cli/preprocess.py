"""``fakescope preprocess``: crop the faces of dataset videos into a cache for training."""
from __future__ import annotations

import argparse
from pathlib import Path

from .arguments import positive_float, positive_int

DEFAULT_FRAMES = 32

DESCRIPTION = f"""\
Detect, track and crop the faces of every video of one or more datasets into a cache for training.

Datasets are given as KIND:ROOT[?option=value&...], for example
  ffpp:../shared/data/ffpp-mini?compression=c23&holdout=585,599
  dfdc:/data/dfdc   celebdf:/data/Celeb-DF-v2   folder:/data/clips?group_by=dir   manifest:/data/list.csv

DIR receives:
  crops/<video>/<frame>_t<track>.jpg   face crops (square, --margin times the face box, --size pixels)
  videos/<video>.json                  each video's status (ok, no_face or error with its reason)
  index.csv                            a row per crop: the video's key, label, method, group and split,
                                       the frame, the track, the face box and the crop's path
  preprocess.json                      the arguments and the summary

The run is resumable: videos already finished with the same settings are skipped, so an interrupted run
picks up where it stopped. Default frame selection: {DEFAULT_FRAMES} evenly spaced frames per video.

Exit status: 0 when every video was read (some may have no face), 1 when some failed (the others are
still processed), 2 for a usage error.
"""


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "preprocess",
        help="crop the faces of dataset videos into a cache for training",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", action="append", required=True, metavar="SPEC",
                        help="dataset as KIND:ROOT[?options] (repeatable)")
    parser.add_argument("--cache", type=Path, required=True, metavar="DIR", help="cache directory")
    parser.add_argument("--split", choices=["train", "val", "test", "all"], default="all",
                        help="only the videos of this split (default: all)")
    frames = parser.add_argument_group(f"frame selection (default: {DEFAULT_FRAMES} evenly spaced frames)")
    choice = frames.add_mutually_exclusive_group()
    choice.add_argument("--frames", type=positive_int, metavar="N", help="N evenly spaced frames per video")
    choice.add_argument("--every", type=positive_int, metavar="N", help="every Nth frame")
    faces = parser.add_argument_group("faces")
    faces.add_argument("--tracks", choices=["main", "all"], default="main",
                       help="main: only the face track with the most detections (the manipulated face in "
                            "these datasets); all: every face (default: main)")
    faces.add_argument("--margin", type=positive_float, default=1.3,
                       help="crop side as a multiple of the face box (default: 1.3, the FaceForensics++ convention)")
    faces.add_argument("--size", type=positive_int, default=224, help="crop side in pixels (default: 224)")
    faces.add_argument("--detect-size", type=positive_int, default=640,
                       help="longest side of the downscaled frame the face detector sees (default: 640)")
    parser.add_argument("--workers", type=positive_int, default=1, help="parallel processes (default: 1)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..data import DatasetError, check_disjoint, load_dataset, summarise
    from ..data.preprocess import preprocess
    from ..video import FrameSelection
    from .exit_codes import EXIT_FAILED, EXIT_OK, UsageError

    items = []
    for text in args.data:
        try:
            loaded = load_dataset(text)
        except ValueError as error:  # DatasetError and malformed specs
            raise UsageError(f"--data {text}: {error}") from error
        if args.split != "all":
            loaded = [item for item in loaded if item.split == args.split]
            if not loaded:
                raise UsageError(f"--data {text}: no videos in split {args.split!r}")
        try:
            check_disjoint(loaded)
        except DatasetError as error:
            print(f"warning: {text}: {error}")
        items.extend(loaded)

    summary = summarise(items)
    print(f"{summary['videos']} videos ({summary['real']} real, {summary['fake']} fake, {summary['groups']} identity "
          f"groups) from {len(args.data)} dataset(s)", flush=True)
    frames = args.frames if args.frames is not None or args.every is not None else DEFAULT_FRAMES
    selection = FrameSelection.from_options(every=args.every, frames=frames if args.every is None else None)
    try:
        report = preprocess(
            items, args.cache, selection, workers=args.workers, margin=args.margin, size=args.size,
            detector_max_side=args.detect_size, tracks=args.tracks, progress=not args.quiet,
        )
    except ValueError as error:  # e.g. two datasets whose videos would share cache names
        raise UsageError(str(error)) from error

    counts = report.counts
    print(f"{report.videos} videos: {counts['ok']} ok, {counts['no_face']} no_face, {counts['error']} error "
          f"({report.reused} reused from the cache); {report.crops} crops; {report.seconds:.1f} s")
    for key, status, reason in report.failures:
        print(f"  {key}: NO FACE ({reason})" if status == "no_face" else f"  {key}: ERROR: {reason}")
    print(f"index: {report.index_path}")
    return EXIT_FAILED if counts["error"] else EXIT_OK
