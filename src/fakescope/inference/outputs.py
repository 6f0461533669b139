"""Writing scan results as files that other tools read: CSV and JSON."""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

from .results import CSV_COLUMNS, ScanResult, csv_rows

REPORT_COLUMNS = [
    "input", "verdict", "p_fake", "threshold", "frames_analysed", "frames_with_faces", "tracks", "reason", "output_dir",
]


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_predictions_csv(result: ScanResult, path: Path) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(csv_rows(result.frames, result.threshold))
    os.replace(tmp, path)
    return path


def write_json(data: Any, path: Path) -> Path:
    _atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    return path


def write_report(results: list[ScanResult], out_dir: Path) -> tuple[Path, Path]:
    """``report.csv`` (a line per input) and ``report.json`` (every summary) over a whole run."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / "report.csv"
    tmp = csv_path.with_name(csv_path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as handle:
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
    os.replace(tmp, csv_path)
    summary = {
        "inputs": len(results),
        "scanned": sum(result.ok for result in results),
        "failed": sum(not result.ok for result in results),
        "verdicts": {v: sum(r.verdict == v for r in results) for v in ("real", "fake", "no_face", "error")},
        "results": [result.to_summary() for result in results],
    }
    json_path = write_json(summary, out_dir / "report.json")
    return csv_path, json_path
