"""``fakescope export``: the model as ONNX files (optionally int8) for ``--runtime onnx`` and other runtimes."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from .arguments import add_model_options, positive_int
from .exit_codes import EXIT_OK, UsageError

DEFAULT_CALIBRATION_FRAMES = 4

DESCRIPTION = f"""\
Export the model to ONNX for `fakescope scan|live|serve --runtime onnx --onnx-model FILE` (ONNX Runtime,
CPU or CUDA), or for any other ONNX runtime. --out NAME.onnx writes two files:

  NAME.onnx        the face encoder: (N, H, W, 3) uint8 RGB face crops -> (N, C) features, the
                   normalisation inside the graph, dynamic N; with --int8 statically quantised
  NAME.head.onnx   the temporal head: (B, T, C) features + RNN state -> (B, T) p_fake + state,
                   dynamic B and T (always fp32: a small share of the work)

The encoder's metadata_props describe the export completely: the model config (input size, mean and
std, window), the verdict threshold, the precision, the quantisation and its calibration, the sha256 of
the weights it came from and the name and sha256 of its head file. `--runtime onnx` refuses a file
exported from other weights than the ones it runs with (--weights).

--int8 calibrates the activations on real face crops: the largest face of --calibration-frames evenly
spaced frames of each video or image under --calibration, found and cropped exactly as a scan does
(default: the FaceForensics++ sample of a fakescope checkout, $FAKESCOPE_SHARED/data/ffpp-mini or
../shared/data/ffpp-mini, when present). The command then reports how closely the export scores like
the PyTorch model (fp32) on those crops: max |delta p_fake|.

Exit status: 0 when the files were written, 2 for a usage error (missing weights, no calibration media,
onnx or onnxruntime not installed: pip install 'fakescope[onnx]').
"""


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("export", help="export the model to ONNX (fp32 or int8) for --runtime onnx",
                                 description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--format", choices=["onnx"], default="onnx", help="the format (default: %(default)s)")
    parser.add_argument("-o", "--out", type=Path, required=True, metavar="FILE",
                        help="the encoder file to write (NAME.onnx; its head goes to NAME.head.onnx)")
    add_model_options(parser, weights_help="checkpoint (.safetensors) to export (default: the trained weights shipped "
                                           "with fakescope)")
    int8 = parser.add_argument_group("int8")
    int8.add_argument("--int8", action="store_true",
                      help="quantise the encoder to int8 (static: uint8 activations, int8 weights per channel, QDQ), "
                           "calibrated on face crops of --calibration")
    int8.add_argument("--calibration", nargs="+", metavar="PATH",
                      help="videos, images or directories whose faces calibrate --int8 and check the export "
                           "(default: the ffpp-mini sample, when present)")
    int8.add_argument("--calibration-frames", type=positive_int, default=DEFAULT_CALIBRATION_FRAMES, metavar="N",
                      help="frames taken from each calibration video (default: %(default)s)")
    int8.add_argument("--calibration-inputs", type=positive_int, metavar="N",
                      help="use at most N calibration videos or images (default: all)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..analysis import Scanner, WeightsError
    from ..analysis.export import collect_face_crops, compare_with_torch, default_calibration_media, export_scanner
    from ..models import CheckpointError
    from ..models.onnx_model import OnnxModel, OnnxModelError
    if args.out.suffix != ".onnx":
        raise UsageError(f"--out {args.out}: the encoder file's name must end in .onnx")
    try:
        scanner = Scanner.load(args.weights, device=args.device, allow_untrained=args.allow_untrained)
    except (WeightsError, CheckpointError, ValueError) as error:
        raise UsageError(str(error)) from error
    media = [Path(path) for path in args.calibration] if args.calibration else None
    if media is None:
        found = default_calibration_media()
        media = [found] if found is not None else None
    if media is None and args.int8:
        raise UsageError("--int8 needs face media to calibrate on: pass videos or directories with --calibration "
                         "(no ffpp-mini sample found at $FAKESCOPE_SHARED/data/ffpp-mini or ../shared/data/ffpp-mini)")
    crops = None
    source = ""
    if media is not None:
        missing = [str(path) for path in media if not path.exists()]
        if missing:
            raise UsageError(f"--calibration: no such file or directory: {', '.join(missing)}")
        started = time.perf_counter()
        crops = collect_face_crops(scanner, media, args.calibration_frames, args.calibration_inputs)
        if not crops.sequences:
            raise UsageError(f"--calibration: no face found in {', '.join(str(path) for path in media)}")
        source = crops.describe(media)
        print(f"face crops: {source} ({time.perf_counter() - started:.0f} s)", flush=True)
    started = time.perf_counter()
    try:
        result = export_scanner(scanner, args.out, int8=args.int8, calibration=crops, calibration_source=source)
        exported = OnnxModel(result.encoder, scanner.device.type)
    except (OnnxModelError, ValueError) as error:
        raise UsageError(str(error)) from error
    except OSError as error:
        raise UsageError(f"--out {args.out}: {error.strerror or error}") from error
    print(f"wrote {result.encoder} ({result.sizes['encoder'] / 1e6:.1f} MB, encoder, {result.precision}) and "
          f"{result.head} ({result.sizes['head'] / 1e6:.1f} MB, head, fp32) in {time.perf_counter() - started:.0f} s")
    if crops is not None:
        agreement = compare_with_torch(scanner, exported, crops.sequences)
        print(f"agreement with PyTorch fp32 on {agreement.crops} face crops: max |delta p_fake| "
              f"{agreement.max_p_fake_diff:.2g} (mean {agreement.mean_p_fake_diff:.2g}), max |delta feature| "
              f"{agreement.max_feature_diff:.2g}")
    print(f"use it: fakescope scan VIDEO --runtime onnx --onnx-model {result.encoder}"
          + (f" --weights {args.weights}" if args.weights else ""))
    return EXIT_OK
