"""``fakescope corpus build``: materialise a blob-pinned corpus file list from local git mirrors."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

DESCRIPTION = """\
Materialise the files of a corpus list (shared/data/corpus/files.csv: repository, commit, path, git blob id per
file) from local git mirrors of those repositories into OUT, checking every file's blob id.

MIRRORS holds one git directory per repository, as the search library's fetch tool leaves them
(OWNER+NAME/repo) or as `git clone --mirror` does (OWNER/NAME.git or NAME.git).

OUT receives:
  files/<dataset>/<path>   each file, byte for byte (its blob id checked)
  manifest.csv             a row per file present: path, label, kind (photo, video_frame, video,
                           video_face_crop, landmarks), dataset, identity, method, group (= identity)
  build.json               counts per dataset, and every missing file with the reason

Read it as training data with --data corpus:OUT/manifest.csv[?datasets=lfw,utkface&per_identity=2].
The build resumes: files already in OUT with the right blob id are kept.

Exit status: 0 when every listed file is there, 1 when some are missing (the others are written), 2 for a
usage error.
"""


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("corpus", help="build a training corpus from a blob-pinned file list",
                                 description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    build = actions.add_parser("build", help="materialise the listed files from git mirrors",
                               description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_list = Path(os.environ.get("FAKESCOPE_SHARED", "../shared")) / "data/corpus/files.csv"
    build.add_argument("--list", type=Path, default=default_list, metavar="CSV",
                       help="the file list (default: %(default)s)")
    build.add_argument("--mirrors", type=Path, required=True, metavar="DIR",
                       help="directory of git mirrors of the listed repositories")
    build.add_argument("--out", type=Path, required=True, metavar="OUT", help="output directory")
    build.add_argument("--datasets", metavar="NAME,NAME", help="only these datasets of the list (default: all)")
    build.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    build.set_defaults(run=run_build)


def run_build(args: argparse.Namespace) -> int:
    from ..data.corpus import CorpusError, build_corpus
    from .exit_codes import EXIT_FAILED, EXIT_OK, UsageError

    datasets = [name.strip() for name in args.datasets.split(",") if name.strip()] if args.datasets else None
    try:
        report = build_corpus(args.list, args.mirrors, args.out, datasets=datasets, progress=not args.quiet)
    except CorpusError as error:
        raise UsageError(str(error)) from error
    print(f"{report.listed} files listed: {report.written} written, {report.reused} already there, "
          f"{report.missing_count} missing; {report.seconds:.1f} s")
    for reason, paths in sorted(report.missing.items()):
        print(f"  missing {len(paths)}: {reason} (e.g. {paths[0]})")
    print(f"manifest: {report.manifest_path}")
    return EXIT_FAILED if report.missing_count else EXIT_OK
