"""Writing scan results as files that other tools read: CSV and JSON."""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from ..atomic import atomic_open, write_text
from .results import CSV_COLUMNS, VERDICTS, ScanResult, csv_rows

REPORT_COLUMNS = [
    "input", "verdict", "p_fake", "threshold", "frames_analysed", "frames_with_faces", "tracks", "reason", "output_dir",
]


def write_predictions_csv(result: ScanResult, path: Path) -> Path:
    with atomic_open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(csv_rows(result.frames, result.threshold))
    return path


def write_json(data: Any, path: Path) -> Path:
    return write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def write_report(results: list[ScanResult], out_dir: Path) -> tuple[Path, Path]:
    """``report.csv`` (a line per input) and ``report.json`` (every summary) over a whole run."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / "report.csv"
    with atomic_open(csv_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(REPORT_COLUMNS)
        for result in results:
            writer.writerow([
                result.input,
                result.verdict,
                "" if result.p_fake is None else round(result.p_fake, 5),
                result.threshold,
                result.frames_analysed,
                result.frames_with_faces,
                len(result.tracks),
                result.reason or "",
                result.outputs.get("dir", ""),
            ])
    summary = {
        "inputs": len(results),
        "scanned": sum(result.scanned for result in results),
        "failed": sum(not result.ok for result in results),
        "skipped": sum(result.verdict == "skipped" for result in results),
        "verdicts": {v: sum(r.verdict == v for r in results) for v in VERDICTS},
        "results": [result.to_summary() for result in results],
    }
    json_path = write_json(summary, out_dir / "report.json")
    return csv_path, json_path
