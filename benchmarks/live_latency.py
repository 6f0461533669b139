"""Live latency: a 720p 30 fps FaceForensics++ clip replayed at real-time pace as a live source (run by hand).

    .venv/bin/python benchmarks/live_latency.py                    # fp32
    .venv/bin/python benchmarks/live_latency.py --precision bf16

Prints frames shown per second, analyses per second (per face) and the latency from a frame's arrival to its
prediction (median, 95th percentile), against the targets: every frame shown, >= 5 predictions per second per face,
p95 latency < 250 ms. Every frame is rendered with its boxes as the display would be (--output also encodes them).
Without --weights it times the shipped weights (xception_mid_lstm); where a build has none, the design's
xception_lstm built from the shared ImageNet backbone with an untrained head (timing does not depend on training).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FAKESCOPE_SHARED", REPO.parent / "shared"))
DEFAULT_VIDEO = SHARED / "data/ffpp-mini/original_sequences/youtube/c23/videos/183.mp4"
BACKBONE = SHARED / "weights/xception-imagenet-keras.safetensors"

TARGET_REFRESH_PER_FACE = 5.0
TARGET_P95_MS = 250.0


def make_weights(folder: Path) -> Path:
    from fakescope.models import create_model, save_checkpoint

    model = create_model("xception_lstm", backbone_weights=BACKBONE)
    return save_checkpoint(folder / "xception_lstm.safetensors", model)


def warm_up(scanner) -> None:
    """One pass of each stage first, so one-off setup costs (allocations, kernel choice) stay out of the figures."""
    import numpy as np

    size = scanner.model.config.input_size
    for _ in range(2):
        scanner.encoder.encode([np.zeros((size, size, 3), np.uint8)])
    scanner.face_detector.detect(np.zeros((720, 1280, 3), np.uint8))


def run(args: argparse.Namespace, weights: Path) -> dict:
    import torch

    from fakescope.analysis import Scanner
    from fakescope.analysis.live import LiveAnalyzer
    from fakescope.options import LiveOptions
    from fakescope.outputs.live_view import banner_text, render_live_frame
    from fakescope.video import VideoWriter

    torch.set_num_threads(args.threads)
    detector = Scanner.load(weights, device="cpu", allow_untrained=True, precision=args.precision,
                             detect_size=args.detect_size)
    warm_up(detector)
    live = LiveAnalyzer(detector, str(args.video), LiveOptions(realtime=True, duration_s=args.duration))
    live.open()
    writer = None
    render_seconds = 0.0
    for frame in live:
        started = time.perf_counter()
        image = render_live_frame(frame, detector.threshold, banner_text(frame, live.stats, untrained=True))
        if args.output is not None:
            if writer is None:
                writer = VideoWriter(args.output, image.shape[1], image.shape[0], live.fps)
            writer.write(image)
        render_seconds += time.perf_counter() - started
    if writer is not None:
        writer.close()
    stats = live.stats
    summary = stats.summary()
    main_track = max(stats.predictions_per_track.items(), key=lambda item: item[1], default=(None, 0))
    summary["source_fps"] = round(live.fps, 2)
    summary["predictions_per_s_main_face"] = round(main_track[1] / stats.elapsed_s, 2) if stats.elapsed_s else None
    summary["tracks"] = len(stats.predictions_per_track)
    summary["render_ms_per_frame"] = round(1000 * render_seconds / max(stats.frames_shown, 1), 1)
    return summary


def main() -> int:
    from fakescope.weights import default_weights_path

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--weights", type=Path, help="a checkpoint (default: the shipped weights)")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="PyTorch threads")
    parser.add_argument("--detect-size", type=int, default=480, help="longest side the face detector sees")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of the clip to replay")
    parser.add_argument("--output", type=Path, help="also encode the annotated frames to this mp4")
    args = parser.parse_args()
    if not args.video.is_file():
        print(f"missing {args.video} (set FAKESCOPE_SHARED)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as folder:
        weights = args.weights or default_weights_path() or make_weights(Path(folder))
        summary = run(args, weights)

    seconds = summary["seconds"]
    print(f"{args.video.name}, {args.precision}, {args.threads} threads, detect size {args.detect_size}, "
          f"{seconds} s at real-time pace ({summary['source_fps']} fps source)")
    print(f"  frames shown:     {summary['frames_shown']} ({summary['shown_fps']} fps)")
    print(f"  analyses:         {summary['frames_analysed']} ({summary['analysis_fps']}/s); "
          f"main face predicted {summary['predictions_per_s_main_face']}/s; {summary['tracks']} track(s)")
    print(f"  analysis time:    median {summary['analysis_median_ms']} ms per analysed frame (detect and track "
          f"{summary['detect_median_ms']} ms, crop + CNN + RNN {summary['model_median_ms']} ms)")
    print(f"  latency:          median {summary['latency_median_ms']} ms, p95 {summary['latency_p95_ms']} ms "
          "(frame arrival -> prediction)")
    print(f"  render per frame: {summary['render_ms_per_frame']} ms")
    shown_ok = summary["shown_fps"] is not None and summary["shown_fps"] >= 0.95 * summary["source_fps"]
    refresh_ok = (summary["predictions_per_s_main_face"] or 0) >= TARGET_REFRESH_PER_FACE
    latency_ok = summary["latency_p95_ms"] is not None and summary["latency_p95_ms"] < TARGET_P95_MS
    print(f"  targets: every frame shown {'OK' if shown_ok else 'MISSED'}, >= {TARGET_REFRESH_PER_FACE:g} "
          f"predictions/s per face {'OK' if refresh_ok else 'MISSED'}, p95 < {TARGET_P95_MS:g} ms "
          f"{'OK' if latency_ok else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
