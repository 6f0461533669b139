"""``fakescope`` command: a subcommand per job."""
from __future__ import annotations

import argparse
import logging
import os
import sys

from .. import __version__
from . import corpus, evaluate, export, live, preprocess, scan, serve, train
from .exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "UsageError", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fakescope",
        description="Deepfake video detector: finds the faces in videos and images and predicts real or fake "
        "for every analysed frame and for each whole input.",
    )
    parser.add_argument("--version", action="version", version=f"fakescope {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details (and tracebacks of failures)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    scan.add_parser(commands)
    live.add_parser(commands)
    serve.add_parser(commands)
    preprocess.add_parser(commands)
    train.add_parser(commands)
    evaluate.add_parser(commands)
    export.add_parser(commands)
    corpus.add_parser(commands)
    return parser


def _tolerant_streams() -> None:
    """Never fail on printing a name the terminal's encoding cannot show (LANG=C, a Windows code page): escape it."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(errors="backslashreplace")
            except (ValueError, OSError):
                pass


def main(argv: list[str] | None = None) -> int:
    _tolerant_streams()
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # Decoder chatter about damaged files reaches the user as a clear reason in the report instead.
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
        import cv2

        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        logging.getLogger("libav").setLevel(logging.CRITICAL)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.run(args)
    except UsageError as error:
        print(f"fakescope {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("fakescope: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
