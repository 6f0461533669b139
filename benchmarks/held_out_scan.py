"""False alarms on unseen people and cross-dataset ranking, through the full `fakescope scan` path (run by hand).

    .venv/bin/python benchmarks/held_out_scan.py [--weights CKPT] [--threshold T] [--frames 16] [--out DIR]

Scans the corpus videos that no recipe trains on (`runs/corpus`, built by `fakescope corpus build`): the real
talking-head and GRID clips, split by identity into the calibration half (which chooses the recipe's threshold)
and the test half (which only measures it), and the labelled DeeperForensics and DFDC clips. Prints how many reals
of each half are called fake at the checkpoint's threshold (or --threshold, or with --calibrate the lowest that
calls at most 5% of the calibration half fake, the recipe's rule applied to the scans themselves), and the
cross-dataset video-level ROC-AUC with the fakes caught. A threshold is applied to the scanned p_fake, so trying
another needs no new scan. The scan outputs stay in --out (default: a fresh temporary folder), and a second run
with the same --out and settings reads them instead of scanning again.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "runs/corpus"
FALSE_ALARM_SETS = ("talking-heads", "grid")
CROSS_DATASET_SETS = ("deeperforensics", "dfdc-part0")
MAX_FALSE_ALARM = 0.05


def held_out_videos(corpus: Path, datasets: tuple[str, ...] = FALSE_ALARM_SETS + CROSS_DATASET_SETS) -> list:
    """The held-out videos of ``datasets`` (VideoItems of the corpus manifest, through the `corpus` reader)."""
    from fakescope.data import load_dataset

    manifest = (corpus / "manifest.csv").resolve()
    return load_dataset(f"corpus:{manifest}?datasets={','.join(datasets)}&kinds=video,video_face_crop")


def tensor_digest(weights: Path) -> str:
    """sha256 of a safetensors file's tensor bytes alone: the same for two files that differ only in their
    metadata (a threshold), which score every video the same."""
    digest = hashlib.sha256()
    with weights.open("rb") as handle:
        header_size = int.from_bytes(handle.read(8), "little")
        handle.seek(8 + header_size)
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def scan(videos: list, out: Path, weights: Path, frames: int) -> dict:
    """input path -> that input's report.json entry; scans only when ``out`` holds no report of these settings
    (the same tensors, frames and videos)."""
    settings = {"weights": str(weights), "tensors": tensor_digest(weights), "frames": frames,
                "videos": [str(item.path) for item in videos]}
    record = out / "held_out_scan.json"
    if not (record.is_file() and json.loads(record.read_text()) == settings and (out / "report.json").is_file()):
        command = [str(Path(sys.executable).parent / "fakescope"), "scan", *settings["videos"], "--out", str(out),
                   "--frames", str(frames), "--no-video", "--no-plot", "--no-report", "--quiet"]
        command += ["--weights", str(weights)]
        print(f"scanning {len(videos)} videos into {out} ...", flush=True)
        subprocess.run(command, check=False)
        record.write_text(json.dumps(settings, indent=1) + "\n")
    report = json.loads((out / "report.json").read_text())
    return {result["input"]: result for result in report["results"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, help="checkpoint (default: the shipped weights)")
    parser.add_argument("--threshold", type=float, help="verdict threshold (default: the checkpoint's)")
    parser.add_argument("--calibrate", action="store_true",
                        help="choose the threshold on the calibration half's scans (at most 5%% of them called fake)")
    parser.add_argument("--frames", type=int, default=16, help="frames analysed per video (scan --frames)")
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="the built corpus (default: runs/corpus)")
    parser.add_argument("--out", type=Path, help="keep the scan outputs here (and reuse them on a second run)")
    parser.add_argument("--json", type=Path, help="write the figures and every video's score here")
    args = parser.parse_args()

    from sklearn.metrics import roc_auc_score

    from fakescope.data.corpus import is_calibration_identity
    from fakescope.evaluation.metrics import threshold_for_false_alarm_rate
    from fakescope.models.checkpoint import read_checkpoint_header, sha256_file
    from fakescope.weights import default_weights_path

    weights = args.weights or default_weights_path()
    if weights is None or not weights.is_file():
        sys.exit(f"no weights at {weights or 'the shipped path'}")

    if not (args.corpus / "manifest.csv").is_file():
        sys.exit(f"no corpus in {args.corpus}: build it first (fakescope corpus build, docs/MODEL_CARD.md)")
    videos = held_out_videos(args.corpus)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        results = scan(videos, out, weights, args.frames)
    scored = []
    for item in videos:
        result = results.get(str(item.path), {})
        scored.append({"path": item.key, "dataset": item.dataset, "group": item.group, "label": item.label,
                       "verdict": result.get("verdict", "missing"), "p_fake": result.get("p_fake"),
                       "threshold": result.get("threshold")})
    judged = [v for v in scored if v["verdict"] in ("real", "fake")]
    unjudged = [v for v in scored if v not in judged]
    threshold = read_checkpoint_header(weights)[1].threshold
    if args.calibrate:
        calibration = [v["p_fake"] for v in judged if v["label"] == 0 and v["dataset"] in FALSE_ALARM_SETS
                       and is_calibration_identity(v["group"])]
        threshold = threshold_for_false_alarm_rate(calibration, MAX_FALSE_ALARM)  # the recipe's rule
    elif args.threshold is not None:
        threshold = args.threshold
    for v in judged:
        v["threshold"], v["verdict"] = threshold, "fake" if v["p_fake"] >= threshold else "real"

    def false_alarms(rows: list[dict]) -> dict:
        return {"videos": len(rows), "called_fake": sum(v["verdict"] == "fake" for v in rows)}

    reals = [v for v in judged if v["label"] == 0 and v["dataset"] in FALSE_ALARM_SETS]
    cross = [v for v in judged if v["dataset"] in CROSS_DATASET_SETS]
    figures = {
        "weights": str(weights),
        "weights_sha256": sha256_file(weights),
        "threshold": threshold,
        "threshold_rule": ("calibration half, at most 5% called fake" if args.calibrate
                           else "given" if args.threshold is not None else "the checkpoint's"),
        "frames": args.frames,
        "false_alarms": {
            "all": false_alarms(reals),
            "calibration_half": false_alarms([v for v in reals if is_calibration_identity(v["group"])]),
            "test_half": false_alarms([v for v in reals if not is_calibration_identity(v["group"])]),
            **{name: false_alarms([v for v in reals if v["dataset"] == name]) for name in FALSE_ALARM_SETS},
        },
        "cross_dataset": {
            "videos": len(cross),
            "video_auc": (float(roc_auc_score([v["label"] for v in cross], [v["p_fake"] for v in cross]))
                          if len({v["label"] for v in cross}) == 2 else None),
            "fakes_called_fake": f"{sum(v['verdict'] == 'fake' for v in cross if v['label'])}/"
                                 f"{sum(v['label'] for v in cross)}",
            "reals_called_fake": f"{sum(v['verdict'] == 'fake' for v in cross if not v['label'])}/"
                                 f"{sum(1 - v['label'] for v in cross)}",
        },
        "not_judged": [f"{v['path']}: {v['verdict']}" for v in unjudged],
    }
    how = " (calibrated on the calibration half)" if args.calibrate else ""
    print(f"weights: {args.weights or 'shipped'}; threshold {threshold:.4f}{how}; --frames {args.frames}")
    for name, counts in figures["false_alarms"].items():
        share = counts["called_fake"] / counts["videos"] if counts["videos"] else float("nan")
        print(f"  real videos called fake, {name:<16} {counts['called_fake']:>3}/{counts['videos']:<3} ({share:.0%})")
    crossing = figures["cross_dataset"]
    print(f"  DeeperForensics + DFDC: video AUC {crossing['video_auc']}, fakes caught {crossing['fakes_called_fake']},"
          f" reals called fake {crossing['reals_called_fake']}")
    for line in figures["not_judged"]:
        print(f"  not judged: {line}")
    top = sorted(reals, key=lambda v: -v["p_fake"])[:8]
    print("  highest-scoring reals: " + ", ".join(f"{Path(v['path']).name} {v['p_fake']:.2f}" for v in top))
    if args.json:
        args.json.write_text(json.dumps({**figures, "videos": scored}, indent=1) + "\n")


if __name__ == "__main__":
    main()
