"""bf16 against fp32 on the 43 ffpp-mini videos: does `--precision auto` (bf16 where the CPU has native bf16) give the
same verdicts? (run by hand; prints its figures)

    PYTHONPATH=src .venv/bin/python benchmarks/precision_agreement.py [--frames 16] [--weights CKPT]

Evaluates the model with --precision fp32 and --precision bf16 on every ffpp-mini video exactly as `fakescope evaluate`
does (`Scanner.scan`, --frames N), and prints what `auto` resolves to on this machine, the max and mean |delta
p_fake| of bf16 against fp32 per analysed face and per video, how many videos get the same verdict at the
checkpoint's threshold, the frame-level and video-level ROC-AUC of each, and the time each run took.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from onnx_runtime import FFPP_MINI, agreement, evaluate, ffpp_items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=16, help="frames analysed per video (scan --frames)")
    parser.add_argument("--weights", type=Path, help="checkpoint (default: the shipped weights)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--limit", type=int, help="evaluate at most N videos (a quick check of the script)")
    args = parser.parse_args()
    if not FFPP_MINI.is_dir():
        sys.exit(f"no ffpp-mini at {FFPP_MINI} (set FAKESCOPE_SHARED)")

    import torch

    from fakescope.analysis import Scanner
    from fakescope.analysis.encoder import cpu_flags, resolve_precision
    from fakescope.options import AnalysisOptions
    from fakescope.video import FrameSelection

    device = torch.device(args.device)
    print(f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; --precision auto here is "
          f"{resolve_precision('auto', device)} (bf16 CPU flags: "
          f"{sorted(cpu_flags() & {'avx512_bf16', 'amx_bf16'}) or 'none'})", flush=True)
    selection = FrameSelection("count", args.frames)
    base = Scanner.load(args.weights, device=device, analysis=AnalysisOptions(precision="fp32", selection=selection))
    items = ffpp_items(args.limit)
    print(f"evaluating {len(items)} ffpp-mini videos, {args.frames} frames each:", flush=True)
    runs = {precision: evaluate(base.with_analysis(AnalysisOptions(precision=precision, selection=selection)),
                                items, precision)
            for precision in ("fp32", "bf16")}
    compared = agreement(runs["fp32"], runs["bf16"])
    figures = {"auto": resolve_precision("auto", device), **compared,
               **{f"{name}_{level}": runs[name][level] for name in runs for level in ("frame_auc", "video_auc")},
               **{f"{name}_seconds": runs[name]["seconds"] for name in runs}}
    print(f"\nbf16 against fp32 over {compared['faces_compared']} analysed faces: max |delta p_fake| "
          f"{compared['frame_max_abs_diff']:.3g} (mean {compared['frame_mean_abs_diff']:.2g}); per video max "
          f"{compared['video_max_abs_diff']:.3g}; same verdict at the threshold {runs['fp32']['threshold']:.3f}: "
          f"{compared['same_verdicts']} videos")
    for key, scores in compared["changed_verdicts"].items():
        print(f"  verdict changed: {key} (p_fake fp32 {scores['reference']:.3f}, bf16 {scores['other']:.3f})")
    for name, run in runs.items():
        print(f"  {name}: frame AUC {run['frame_auc']:.4f}, video AUC {run['video_auc']:.4f}, {run['seconds']:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
