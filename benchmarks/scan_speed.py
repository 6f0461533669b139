"""Scan speed and memory on a 1080p FaceForensics++ clip (run by hand; prints its figures).

    .venv/bin/python benchmarks/scan_speed.py                 # end-to-end speed, every frame, all outputs
    .venv/bin/python benchmarks/scan_speed.py --memory        # also: peak RSS of the clip vs. the clip looped 10x
    .venv/bin/python benchmarks/scan_speed.py --compare ../other/src --rounds 2
                                          # this checkout's src against another's, alternating, each in a fresh process

Without --weights it times the shipped weights (xception_mid_lstm); where a build has none, the design's
xception_lstm built from the shared ImageNet backbone with an untrained head (timing does not depend on training).
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FAKESCOPE_SHARED", REPO.parent / "shared"))
DEFAULT_VIDEO = SHARED / "data/ffpp-mini/original_sequences/actors/c23/videos/09__walking_down_street_outside_angry.mp4"
BACKBONE = SHARED / "weights/xception-imagenet-keras.safetensors"


def _default_batch_size() -> int:
    from fakescope.options import AnalysisOptions

    return AnalysisOptions().batch_size


def make_weights(folder: Path) -> Path:
    from fakescope.models import create_model, save_checkpoint

    return save_checkpoint(folder / "xception_lstm.safetensors", create_model("xception_lstm", backbone_weights=BACKBONE))


def model_only_fps(weights: Path, precision: str, batch_size: int, repeats: int = 5) -> float:
    import numpy as np

    from fakescope.analysis import Scanner

    scanner = Scanner.load(weights, device="cpu", allow_untrained=True, precision=precision)
    size = scanner.model.config.input_size
    crops = [np.random.default_rng(index).integers(0, 256, (size, size, 3), dtype=np.uint8)
             for index in range(batch_size)]
    scanner.encoder.encode(crops)
    start = time.perf_counter()
    for _ in range(repeats):
        scanner.encoder.encode(crops)
    return repeats * batch_size / (time.perf_counter() - start)


def _scan_to_folder(video: Path, weights: Path, out: Path, precision: str, batch_size: int, every: int | None):
    """A scan with all outputs, through this checkout's API or, for --compare against a checkout from before the
    layered architecture (issue #12), through that one's ``Detector``."""
    from fakescope.video import FrameSelection

    selection = FrameSelection.from_options(every=every)
    try:
        from fakescope.analysis import Scanner
        from fakescope.outputs import scan_to_folder
    except ImportError:
        from fakescope.inference import Detector  # the code before issue #12

        detector = Detector.load(weights, device="cpu", allow_untrained=True, precision=precision,
                                 batch_size=batch_size, selection=selection)
        return detector.scan(video, out_dir=out)
    scanner = Scanner.load(weights, device="cpu", allow_untrained=True, precision=precision, batch_size=batch_size,
                           selection=selection)
    return scan_to_folder(scanner, video, out)


def scan_once(video: Path, weights: Path, out: Path, precision: str, batch_size: int, every: int | None) -> dict:
    result = _scan_to_folder(video, weights, out, precision, batch_size, every)
    if not result.ok:
        raise SystemExit(f"scan failed: {result.reason}")
    return {
        "frames": result.frames_analysed,
        "frames_with_faces": result.frames_with_faces,
        "rendered": result.frames_rendered,
        "timing": result.timing,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _child(queue, *args) -> None:
    queue.put(scan_once(*args))


def scan_in_child(*args) -> dict:
    """Each measurement in a fresh process, so its peak RSS is its own."""
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_child, args=(queue, *args))
    process.start()
    result = queue.get()
    process.join()
    return result


def loop_video(source: Path, target: Path, times: int) -> Path:
    from fakescope.video import MediaReader, VideoWriter

    with MediaReader(source) as reader:
        info = reader.info
    with VideoWriter(target, info.width, info.height, info.fps, preset="ultrafast") as writer:
        for _ in range(times):
            with MediaReader(source) as reader:
                for frame in reader:
                    writer.write(frame.image)
    return target


def report(name: str, run: dict) -> None:
    timing = run["timing"]
    frames = run["frames"]
    print(f"\n{name}: {frames} frames analysed ({run['frames_with_faces']} with faces), {run['rendered']} rendered")
    print(f"  end to end: {timing['seconds']:.1f} s = {frames / timing['seconds']:.2f} frames/s "
          f"(analysis pass alone {timing['analysed_fps']:.2f} frames/s)")
    for stage, seconds in sorted(timing["stages"].items(), key=lambda item: -item[1]):
        print(f"  {stage:<8} {seconds:7.2f} s  {1000 * seconds / frames:7.1f} ms/frame")
    print(f"  peak RSS {run['peak_rss_mb']:.0f} MB")


def compare(other_src: Path, rounds: int, args: argparse.Namespace, weights: Path, tmp: Path) -> None:
    """Scan the clip with this checkout's code and with ``other_src``'s, alternating (ABBA...) so that a machine's
    changing load falls on both alike; each scan in a fresh process. Prints each run and the medians."""
    import json
    import statistics
    import subprocess

    trees = {"this": REPO / "src", "other": other_src.resolve()}
    seconds: dict[str, list[float]] = {name: [] for name in trees}
    analysis: dict[str, list[float]] = {name: [] for name in trees}
    for number in range(rounds):
        order = list(trees) if number % 2 == 0 else list(reversed(trees))
        for name in order:
            env = {**os.environ, "PYTHONPATH": str(trees[name])}
            command = [sys.executable, __file__, "--child", str(args.video), str(weights), str(tmp / f"{name}{number}"),
                       args.precision, str(args.batch_size)]
            run = json.loads(subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout)
            seconds[name].append(run["timing"]["seconds"])
            analysis[name].append(run["timing"]["analysis_seconds"])
            print(f"round {number + 1} {name:<5} ({trees[name]}): {run['frames']} frames, end to end "
                  f"{run['timing']['seconds']:.1f} s, analysis {run['timing']['analysis_seconds']:.1f} s", flush=True)
    for name in trees:
        frames = run["frames"]
        median = statistics.median(seconds[name])
        print(f"{name:<5}: median end to end {median:.1f} s = {frames / median:.2f} frames/s, median analysis "
              f"{statistics.median(analysis[name]):.1f} s ({trees[name]})")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":  # one scan for --compare, its figures as JSON
        import json

        video, weights, out, precision, batch_size = sys.argv[2:7]
        print(json.dumps(scan_once(Path(video), Path(weights), Path(out), precision, int(batch_size), None)))
        return
    from fakescope.weights import default_weights_path

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--batch-size", type=int, default=_default_batch_size(),
                        help="crops per CNN batch (default: the scan's, %(default)s)")
    parser.add_argument("--memory", action="store_true", help="compare peak RSS: the clip vs. the clip looped 10x")
    parser.add_argument("--memory-every", type=int, default=4,
                        help="analyse every Nth frame in the memory runs (both runs alike), to keep them short")
    parser.add_argument("--compare", type=Path, metavar="SRC",
                        help="also time another checkout's src folder against this one's, alternating")
    parser.add_argument("--rounds", type=int, default=2, help="scans per code tree with --compare")
    args = parser.parse_args()
    if not args.video.is_file():
        sys.exit(f"benchmark video not found: {args.video} (set FAKESCOPE_SHARED)")
    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs; video {args.video}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        weights = args.weights or default_weights_path() or make_weights(tmp)
        if args.compare is not None:
            compare(args.compare, args.rounds, args, weights, tmp)
            return
        fps = model_only_fps(weights, args.precision, args.batch_size)
        print(f"model alone (CNN, batch {args.batch_size}, precision {args.precision}): {fps:.2f} frames/s")
        run = scan_in_child(args.video, weights, tmp / "scan", args.precision, args.batch_size, None)
        report("scan, every frame, all outputs", run)
        if args.memory:
            long_video = loop_video(args.video, tmp / "long.mp4", 10)
            short = scan_in_child(args.video, weights, tmp / "short", args.precision, args.batch_size, args.memory_every)
            report(f"memory: clip, every {args.memory_every}th frame", short)
            longer = scan_in_child(long_video, weights, tmp / "long", args.precision, args.batch_size, args.memory_every)
            report(f"memory: clip looped 10x, every {args.memory_every}th frame", longer)
            ratio = longer["peak_rss_mb"] / short["peak_rss_mb"]
            print(f"\npeak RSS: {short['peak_rss_mb']:.0f} MB vs {longer['peak_rss_mb']:.0f} MB for 10x the length "
                  f"({100 * (ratio - 1):+.1f}%)")


if __name__ == "__main__":
    main()
