"""Scan results as files that other tools read: predictions.csv, summary.json, and report.csv and report.json
over a run."""
from __future__ import annotations

import csv
import json
import textwrap
from pathlib import Path
from typing import Any

from ..atomic import atomic_open, write_text
from ..results import CSV_COLUMNS, VERDICTS, ScanResult, csv_rows

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


def write_run_tables(results: list[ScanResult], out_dir: Path) -> tuple[Path, Path]:
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
    counts = {
        "inputs": len(results),
        "scanned": sum(result.scanned for result in results),
        "failed": sum(not result.ok for result in results),
        "skipped": sum(result.verdict == "skipped" for result in results),
        "verdicts": {v: sum(r.verdict == v for r in results) for v in VERDICTS},
    }
    json_path = out_dir / "report.json"
    with atomic_open(json_path, "w") as handle:
        _dump_report(counts, results, handle)
    return csv_path, json_path


def _dump_report(counts: dict[str, Any], results: list[ScanResult], handle: Any) -> None:
    """Write ``{**counts, "results": [summaries]}`` as ``json.dumps(..., indent=2)`` would, one summary at a time,
    so a run over thousands of inputs never holds the whole document in memory."""
    head = json.dumps({**counts, "results": []}, indent=2, ensure_ascii=False)
    if not results:
        handle.write(head + "\n")
        return
    handle.write(head[: head.rindex("[]")] + "[\n")
    for number, result in enumerate(results):
        text = json.dumps(result.to_summary(), indent=2, ensure_ascii=False)
        handle.write(textwrap.indent(text, "    ") + (",\n" if number < len(results) - 1 else "\n"))
    handle.write("  ]\n}\n")
