"""What a smaller face-detector input (``--detect-size``) costs in faces and verdicts, and what it saves (run by hand).

    PYTHONPATH=src .venv/bin/python benchmarks/detect_size.py [--sizes 640 480 320] [--frames 32]
        [--onnx-model runs/benchmarks/fakescope-int8.onnx]

Scans every ffpp-mini video as ``fakescope evaluate`` does (``Scanner.scan`` with --frames N, --detect-every 10,
the shipped weights on the torch runtime in fp32, or on ``--onnx-model``'s file) once per detector input size, and
prints per size: frame- and video-level ROC-AUC, the analysed faces found, the agreement with the first size (max and
mean |delta p_fake| per face and per video, verdicts that change and how) and YuNet's time per call on the videos'
middle frames (one thread and the process's threads). YuNet sees the frame downscaled so that its longest side is
the size; the FF++ faces fill a fifth to a third of a 480-1080 pixel high frame.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from onnx_runtime import FFPP_MINI, agreement, evaluate, ffpp_items  # noqa: E402


def yunet_ms_per_call(size: int, frames: list, threads: int, repeats: int = 3) -> float:
    """Median ms of one YuNet call (``max_side=size``) over ``frames``, OpenCV on ``threads`` threads."""
    import cv2

    from fakescope.faces import create_face_detector

    detector = create_face_detector("yunet", max_side=size)
    previous = cv2.getNumThreads()
    cv2.setNumThreads(threads)
    try:
        timings = []
        for _ in range(repeats):
            for image in frames:
                started = time.perf_counter()
                detector.detect(image)
                timings.append((time.perf_counter() - started) * 1000)
        return statistics.median(timings)
    finally:
        cv2.setNumThreads(previous)


def middle_frames(items: list) -> list:
    """The middle frame of each item's video (the shapes YuNet meets in a scan)."""
    from fakescope.video import FrameSelection, MediaReader

    frames = []
    for item in items:
        with MediaReader(item.path, selection=FrameSelection("count", 1), decode_all=False) as reader:
            frames.extend(frame.image for frame in reader)
    return frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[640, 480, 320],
                        help="detector input sizes; the first is the reference (default: 640 480 320)")
    parser.add_argument("--frames", type=int, default=32, help="frames analysed per video (scan --frames)")
    parser.add_argument("--detect-every", type=int, default=10, help="scan --detect-every")
    parser.add_argument("--onnx-model", type=Path, help="run the encoder on this ONNX export (default: torch fp32)")
    parser.add_argument("--limit", type=int, help="at most N videos (a quick check of the script)")
    args = parser.parse_args()
    if not FFPP_MINI.is_dir():
        sys.exit(f"no ffpp-mini at {FFPP_MINI} (set FAKESCOPE_SHARED)")

    import torch

    from fakescope.analysis import Scanner
    from fakescope.options import AnalysisOptions, FaceOptions
    from fakescope.video import FrameSelection

    selection = FrameSelection("count", args.frames)
    if args.onnx_model:
        analysis = AnalysisOptions(selection=selection, runtime="onnx", onnx_model=str(args.onnx_model))
    else:
        analysis = AnalysisOptions(selection=selection, precision="fp32")
    items = ffpp_items(args.limit)
    print(f"{len(items)} ffpp-mini videos, {args.frames} frames each, --detect-every {args.detect_every}, "
          f"{'ONNX ' + args.onnx_model.name if args.onnx_model else 'torch fp32'}; load {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores", flush=True)
    runs = {}
    for size in args.sizes:
        faces = FaceOptions(detect_size=size, detect_every=args.detect_every)
        scanner = Scanner.load(device="cpu", faces=faces, analysis=analysis)
        runs[size] = evaluate(scanner, items, f"--detect-size {size}")

    frames = middle_frames(items)
    reference = runs[args.sizes[0]]
    print(f"\n{'size':>5} {'frame AUC':>9} {'video AUC':>9} {'faces':>6} {'max|dp| face':>12} {'mean|dp| face':>13} "
          f"{'max|dp| video':>13} {'same verdicts':>13} {'YuNet ms, 1 / ' + str(torch.get_num_threads()) + ' threads':>22}")
    for size, run in runs.items():
        compared = agreement(reference, run)
        one = yunet_ms_per_call(size, frames, 1)
        many = yunet_ms_per_call(size, frames, torch.get_num_threads())
        print(f"{size:5d} {run['frame_auc']:9.4f} {run['video_auc']:9.4f} {len(run['frames']):6d} "
              f"{compared['frame_max_abs_diff']:12.2g} {compared['frame_mean_abs_diff']:13.2g} "
              f"{compared['video_max_abs_diff']:13.2g} {compared['same_verdicts']:>13} {one:10.1f} / {many:5.1f}")
        for key, scores in compared["changed_verdicts"].items():
            print(f"{'':5} verdict changed: {key} (p_fake {scores['reference']:.3f} -> {scores['other']:.3f}, "
                  f"threshold {reference['threshold']:.3f})")


if __name__ == "__main__":
    main()
