"""Scan results as files that other tools read: predictions.csv, summary.json, and report.csv and report.json
over a run."""
from __future__ import annotations

import csv
import json
import tempfile
import textwrap
from array import array
from collections.abc import Iterable, Iterator
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


def as_summary(entry: ScanResult | dict[str, Any]) -> dict[str, Any]:
    """A run's entry as its summary (what summary.json holds): a ScanResult's ``to_summary()``, a summary as is."""
    return entry.to_summary() if isinstance(entry, ScanResult) else entry


def run_counts(entries: Iterable[ScanResult | dict[str, Any]]) -> dict[str, Any]:
    """The counts at the head of report.json: inputs, scanned, failed, skipped and each verdict."""
    verdicts = dict.fromkeys(VERDICTS, 0)
    inputs = 0
    for entry in entries:
        inputs += 1
        verdict = as_summary(entry)["verdict"]
        verdicts[verdict] = verdicts.get(verdict, 0) + 1
    return {
        "inputs": inputs,
        "scanned": verdicts["real"] + verdicts["fake"] + verdicts["no_face"],
        "failed": verdicts["error"],
        "skipped": verdicts["skipped"],
        "verdicts": verdicts,
    }


def write_run_tables(entries: Iterable[ScanResult | dict[str, Any]], out_dir: Path) -> tuple[Path, Path]:
    """``report.csv`` (a line per input) and ``report.json`` (every summary) over a whole run. ``entries``: the
    results or their summaries, in input order; read more than once (a list, or a ``SummarySpool``), one at a
    time."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / "report.csv"
    with atomic_open(csv_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(REPORT_COLUMNS)
        for entry in entries:
            summary = as_summary(entry)
            writer.writerow([
                summary["input"],
                summary["verdict"],
                "" if summary["p_fake"] is None else summary["p_fake"],
                summary["threshold"],
                summary["frames_analysed"],
                summary["frames_with_faces"],
                len(summary["tracks"]),
                summary["reason"] or "",
                summary["outputs"].get("dir", ""),
            ])
    json_path = out_dir / "report.json"
    with atomic_open(json_path, "w") as handle:
        dump_json_list((as_summary(entry) for entry in entries), handle, head=run_counts(entries),
                       key="results")
    return csv_path, json_path


def dump_json_list(items: Iterable[Any], handle: Any, head: dict[str, Any] | None = None,
                   key: str = "") -> None:
    """Write ``items`` as ``json.dumps(list(items), indent=2)`` would, or with ``head``, ``{**head, key: [items]}``,
    one item at a time: a run over thousands of inputs never holds the whole document in memory."""
    if head is None:
        opening, closing, indent = "[", "]\n", "  "
    else:
        text = json.dumps({**head, key: []}, indent=2, ensure_ascii=False)
        opening, closing, indent = text[: text.rindex("[]")] + "[", "  ]\n}\n", "    "
    written = False
    for item in items:
        handle.write((",\n" if written else opening + "\n")
                     + textwrap.indent(json.dumps(item, indent=2, ensure_ascii=False), indent))
        written = True
    if not written:
        handle.write(opening + ("]\n" if head is None else "]\n}\n"))
        return
    handle.write("\n" + closing)


class SummarySpool:
    """The summaries of a run's inputs, kept in an anonymous temporary file instead of memory and read back in
    input order, whatever order they were added in: memory stays flat in the number of inputs (8 bytes each, for
    where its summary lies)."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile("w+b")  # removed by the system when closed, even by a crash
        self._offsets = array("q")  # by input index; -1 where none was added
        self._count = 0

    def add(self, index: int, summary: dict[str, Any]) -> None:
        """Keep the summary of input ``index`` (numbered from 0)."""
        if index < len(self._offsets) and self._offsets[index] >= 0:
            raise ValueError(f"input {index} already has a summary")
        line = json.dumps(summary, ensure_ascii=False).encode("utf-8", "surrogatepass") + b"\n"
        self._file.seek(0, 2)
        offset = self._file.tell()
        self._file.write(line)
        if index >= len(self._offsets):
            self._offsets.extend([-1] * (index + 1 - len(self._offsets)))
        self._offsets[index] = offset
        self._count += 1

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for offset in self._offsets:
            if offset >= 0:
                self._file.seek(offset)
                yield json.loads(self._file.readline().decode("utf-8", "surrogatepass"))

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> SummarySpool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
