"""ONNX Runtime (fp32 and int8) against PyTorch on the 43 ffpp-mini videos, and the encoder's speed (run by hand).

    PYTHONPATH=src .venv/bin/python benchmarks/onnx_runtime.py [--frames 16] [--out DIR] [--calibration-frames 4]

1. Exports the shipped weights to DIR/fakescope-fp32.onnx and DIR/fakescope-int8.onnx (int8 calibrated on the largest
   face of --calibration-frames evenly spaced frames of each ffpp-mini video, through `fakescope.analysis.export`, the
   code behind `fakescope export`; calibration needs no labels, but the crops come from the videos measured).
2. Evaluates each runtime on every ffpp-mini video exactly as `fakescope evaluate` does (`Scanner.scan` with
   --frames N: real detection, tracking and windows): frame-level and video-level ROC-AUC of torch fp32, onnx fp32
   and onnx int8, max and mean |delta p_fake| of each ONNX model against torch fp32 per analysed face and per video,
   and how many videos get the same verdict at the checkpoint's threshold.
3. Times the encoder alone (crops -> features; the per-face step of a scan) on real face crops at batch 16 and 32:
   torch fp32, torch bf16, onnx fp32, onnx int8, in face crops per second (best and median of --repeats).

Figures depend on the machine's load: note it (`uptime`) beside them.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FAKESCOPE_SHARED", REPO.parent / "shared"))
FFPP_MINI = SHARED / "data/ffpp-mini"


def ffpp_items(limit: int | None = None) -> list:
    """The labelled ffpp-mini videos (the project's ffpp dataset reader); ``limit``: at most that many, reals and
    fakes alternately (`fakescope evaluate --limit`), for a quick check of the script."""
    from fakescope.cli.evaluate import limit_items
    from fakescope.data import load_dataset

    return limit_items(load_dataset(f"ffpp:{FFPP_MINI}?actors_split=none"), limit)


def evaluate(scanner, items: list, label: str) -> dict[str, Any]:
    """``fakescope evaluate``'s rows and metrics of ``scanner`` on ``items``, timed."""
    from fakescope.evaluation.evaluate import evaluate_videos

    started = time.perf_counter()
    result = evaluate_videos(scanner, items, progress=False)
    seconds = time.perf_counter() - started
    metrics = result.metrics
    print(f"  {label}: frame AUC {metrics['frame_level']['auc']:.4f}, video AUC {metrics['video_level']['auc']:.4f}, "
          f"{metrics['videos']['scored']}/{metrics['videos']['total']} videos scored ({seconds:.0f} s)", flush=True)
    return {"frames": {(row["key"], row["frame_index"], row["track_id"]): row["p_fake"] for row in result.frame_rows},
            "videos": {row["key"]: row for row in result.video_rows},
            "frame_auc": metrics["frame_level"]["auc"], "video_auc": metrics["video_level"]["auc"],
            "threshold": result.threshold, "seconds": round(seconds, 1)}


def agreement(reference: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """|delta p_fake| of ``other`` against ``reference`` per analysed face and per video, and verdict agreement."""
    shared = reference["frames"].keys() & other["frames"].keys()
    frame_diffs = [abs(reference["frames"][key] - other["frames"][key]) for key in shared]
    videos = [key for key, row in reference["videos"].items()
              if row["p_fake"] is not None and other["videos"][key]["p_fake"] is not None]
    video_diffs = [abs(reference["videos"][key]["p_fake"] - other["videos"][key]["p_fake"]) for key in videos]
    changed = [key for key in reference["videos"]
               if reference["videos"][key]["verdict"] != other["videos"][key]["verdict"]]
    same = len(reference["videos"]) - len(changed)
    return {
        "faces_compared": len(shared),
        "faces_only_in_one": len(reference["frames"].keys() ^ other["frames"].keys()),
        "frame_max_abs_diff": max(frame_diffs, default=0.0),
        "frame_mean_abs_diff": statistics.fmean(frame_diffs) if frame_diffs else 0.0,
        "video_max_abs_diff": max(video_diffs, default=0.0),
        "same_verdicts": f"{same}/{len(reference['videos'])}",
        "changed_verdicts": {key: {"reference": reference["videos"][key]["p_fake"], "other": other["videos"][key]["p_fake"]}
                             for key in changed},
    }


def encoder_speed(encoder, crops: list, batch_size: int, repeats: int) -> tuple[float, float]:
    """(best, median) face crops per second of ``encoder.encode`` on batches of ``batch_size`` real crops."""
    batch = [crops[i % len(crops)] for i in range(batch_size)]
    encoder.encode(batch)  # warm-up: first-call allocations and kernel selection
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        encoder.encode(batch)
        rates.append(batch_size / (time.perf_counter() - started))
    return max(rates), statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=16, help="frames analysed per video (scan --frames)")
    parser.add_argument("--calibration-frames", type=int, default=4, help="frames per video for int8 calibration")
    parser.add_argument("--out", type=Path, help="keep the exported files here (default: a temporary folder)")
    parser.add_argument("--repeats", type=int, default=5, help="timed encoder batches per setting")
    parser.add_argument("--skip-speed", action="store_true", help="only the agreement and AUC figures")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--limit", type=int, help="evaluate at most N videos (a quick check of the script)")
    args = parser.parse_args()
    if not FFPP_MINI.is_dir():
        sys.exit(f"no ffpp-mini at {FFPP_MINI} (set FAKESCOPE_SHARED)")

    import torch

    from fakescope.analysis import FaceEncoder, Scanner
    from fakescope.analysis.encoder import OnnxFaceEncoder, cpu_flags
    from fakescope.analysis.export import collect_face_crops, export_scanner
    from fakescope.options import AnalysisOptions
    from fakescope.video import FrameSelection

    out = args.out or Path(tempfile.mkdtemp(prefix="fakescope-onnx-"))
    print(f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; torch threads {torch.get_num_threads()}; "
          f"bf16 flags: {sorted(cpu_flags() & {'avx512_bf16', 'amx_bf16', 'avx512_vnni'})}", flush=True)
    selection = FrameSelection("count", args.frames)
    torch_scanner = Scanner.load(device="cpu", analysis=AnalysisOptions(precision="fp32", selection=selection))
    started = time.perf_counter()
    calibration = collect_face_crops(torch_scanner, [FFPP_MINI], args.calibration_frames)
    source = calibration.describe([FFPP_MINI])
    print(f"calibration: {source} ({time.perf_counter() - started:.0f} s)", flush=True)
    files = {}
    for precision in ("fp32", "int8"):
        started = time.perf_counter()
        result = export_scanner(torch_scanner, out / f"fakescope-{precision}.onnx", int8=precision == "int8",
                                calibration=calibration, calibration_source=source)
        files[precision] = result.encoder
        print(f"exported {result.encoder} ({result.sizes['encoder'] / 1e6:.1f} MB) in "
              f"{time.perf_counter() - started:.0f} s", flush=True)

    items = ffpp_items(args.limit)
    print(f"evaluating {len(items)} ffpp-mini videos, {args.frames} frames each:", flush=True)
    runs = {"torch fp32": evaluate(torch_scanner, items, "torch fp32")}
    for precision, path in files.items():
        analysis = AnalysisOptions(selection=selection, runtime="onnx", onnx_model=str(path))
        runs[f"onnx {precision}"] = evaluate(torch_scanner.with_analysis(analysis), items, f"onnx {precision}")
    figures: dict[str, Any] = {"calibration": source, "frames_per_video": args.frames, "runtimes": {}}
    reference = runs["torch fp32"]
    print(f"\n{'runtime':12} {'frame AUC':>9} {'video AUC':>9} {'max|dp| face':>12} {'mean|dp| face':>13} "
          f"{'max|dp| video':>13} {'same verdicts':>13}")
    for name, run in runs.items():
        compared = agreement(reference, run)
        figures["runtimes"][name] = {"frame_auc": run["frame_auc"], "video_auc": run["video_auc"],
                                     "seconds": run["seconds"], **compared}
        print(f"{name:12} {run['frame_auc']:9.4f} {run['video_auc']:9.4f} {compared['frame_max_abs_diff']:12.2g} "
              f"{compared['frame_mean_abs_diff']:13.2g} {compared['video_max_abs_diff']:13.2g} "
              f"{compared['same_verdicts']:>13}")
        for key, scores in compared["changed_verdicts"].items():
            print(f"{'':12} verdict changed: {key} (p_fake {scores['reference']:.3f} -> {scores['other']:.3f}, "
                  f"threshold {reference['threshold']:.3f})")
    int8_gap = runs["onnx int8"]["video_auc"] - runs["onnx fp32"]["video_auc"]
    print(f"int8 video AUC - fp32 video AUC: {int8_gap:+.4f} (the goal: within 0.01)")

    if not args.skip_speed:
        crops = calibration.crops
        encoders = {
            "torch fp32": FaceEncoder(torch_scanner.model, torch_scanner.device, 1.3, "fp32"),
            "torch bf16": FaceEncoder(torch_scanner.model, torch_scanner.device, 1.3, "bf16"),
        }
        for precision, path in files.items():
            onnx_scanner = torch_scanner.with_analysis(AnalysisOptions(runtime="onnx", onnx_model=str(path)))
            assert isinstance(onnx_scanner.encoder, OnnxFaceEncoder)
            encoders[f"onnx {precision}"] = onnx_scanner.encoder
        figures["speed"] = {}
        print(f"\nencoder speed on real face crops, crops/s (best / median of {args.repeats}), load "
              f"{os.getloadavg()[0]:.1f}:")
        for batch_size in (16, 32):
            for name, encoder in encoders.items():
                best, median = encoder_speed(encoder, crops, batch_size, args.repeats)
                figures["speed"][f"{name}, batch {batch_size}"] = {"best": round(best, 2), "median": round(median, 2)}
                print(f"  batch {batch_size:2d}  {name:11} {best:7.1f} / {median:7.1f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
