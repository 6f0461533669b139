"""``fakescope serve``: the web app and REST API (``fakescope.server``) on uvicorn, one command."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..options import AnalysisOptions, FaceOptions
from .arguments import add_model_options, positive_int
from .exit_codes import EXIT_OK, UsageError
from .option_fields import add_options, options_from_args

SERVER_ANALYSIS_FIELDS = ("runtime", "onnx_model", "batch_size", "window")
"""The analysis options that are the server's, for every request (a request sets precision, threshold, frame
selection and aggregation)."""

DESCRIPTION = """\
Serve fakescope to a team: a web page (upload a video, read its verdict with the evidence, share the link),
a REST API documented at /docs, and live webcam detection in the browser at /live.

Jobs and their results live under --data-dir (a SQLite job table and the files `scan` writes), so a restart
loses nothing: finished jobs stay, queued and interrupted ones run again.

It binds to 127.0.0.1. Any other address needs an API key (--api-key or $FAKESCOPE_API_KEY), checked on every
route, the WebSocket included; clients send it as X-API-Key (the pages ask for it once).
"""


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("serve", help="web app and REST API, with live webcam detection in the browser",
                                 description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    server = parser.add_argument_group("server")
    server.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s, this machine only)")
    server.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    server.add_argument("--data-dir", type=Path, default=Path("fakescope-data"),
                        help="where jobs, uploads and results are kept (default: %(default)s)")
    server.add_argument("--api-key", default=None,
                        help="key every request must carry (default: $FAKESCOPE_API_KEY; required off loopback)")
    server.add_argument("--max-upload-mb", type=positive_int, default=1024,
                        help="largest upload accepted, in MiB; larger ones get 413 (default: %(default)s)")
    server.add_argument("--max-queued", type=positive_int, default=50,
                        help="jobs queued or running at most; more get 503 with Retry-After (default: %(default)s)")
    server.add_argument("--max-live-viewers", type=positive_int, default=8,
                        help="live WebSocket connections at once (default: %(default)s)")
    server.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                        help="allow browser pages of ORIGIN to call the API (repeatable; default: CORS off)")
    groups = {"model": add_model_options(parser)}
    add_options(parser, FaceOptions, groups)
    add_options(parser, AnalysisOptions, groups, only=SERVER_ANALYSIS_FIELDS)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from ..analysis import Scanner, WeightsError
    from ..models import CheckpointError
    from ..server import ServerSettings, create_app
    from ..server.security import API_KEY_ENV, is_loopback

    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    if not is_loopback(args.host) and not api_key:
        raise UsageError(f"--host {args.host} accepts connections from other machines: set an API key with "
                         f"--api-key or ${API_KEY_ENV}")
    if not 0 < args.port < 65536:
        raise UsageError(f"--port {args.port}: not a TCP port")
    try:
        scanner = Scanner.load(args.weights, device=args.device, allow_untrained=args.allow_untrained,
                               faces=options_from_args(FaceOptions, args),
                               analysis=options_from_args(AnalysisOptions, args, only=SERVER_ANALYSIS_FIELDS))
    except (WeightsError, CheckpointError, ValueError) as error:
        raise UsageError(str(error)) from error
    settings = ServerSettings(
        data_dir=args.data_dir, api_key=api_key, max_upload_bytes=args.max_upload_mb * 1024 * 1024,
        max_pending_jobs=args.max_queued, cors_origins=tuple(args.cors_origin),
        max_live_viewers=args.max_live_viewers,
    )
    try:
        app = create_app(scanner, settings)
    except OSError as error:
        raise UsageError(f"--data-dir {args.data_dir}: {error.strerror or error}") from error
    shown_host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"fakescope serve: http://{shown_host}:{args.port} (API docs at /docs; data in {args.data_dir})",
          file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", ws_max_size=16 * 1024 * 1024)
    return EXIT_OK
