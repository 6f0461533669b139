"""A scan run over many inputs: the jobs it hands out, scanning them here (``LocalScans``; a cluster does the same
elsewhere), the summaries it collects for its report, and what ``--resume`` keeps of an earlier run."""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..analysis.scanner import Scanner
from ..options import AnalysisOptions, FaceOptions, OutputOptions, options_record
from ..video import MediaSource
from .saving import scan_to_folder
from .tables import SummarySpool


@dataclass(frozen=True)
class ScanJob:
    """One input of a run to scan: its place in the run (from 0), its path or URL as listed, its output folder and
    the name its progress is shown under."""

    index: int
    path: MediaSource
    out_dir: Path
    label: str


class LocalScans:
    """Scans a run's jobs one after the other in this process, each into its folder atomically."""

    def __init__(self, scanner: Scanner, options: OutputOptions, progress: bool = False) -> None:
        self.scanner = scanner
        self.options = options
        self.progress = progress

    @property
    def model(self) -> dict[str, Any]:
        """The model as every summary of the run names it."""
        return self.scanner.model_info()

    @property
    def threshold(self) -> float:
        return self.scanner.threshold

    def close(self) -> None:
        pass

    def scan(self, jobs: Iterable[ScanJob]) -> Iterator[tuple[ScanJob, dict[str, Any]]]:
        """Each job with its summary, as it finishes."""
        for job in jobs:
            result = scan_to_folder(self.scanner, job.path, job.out_dir, self.options, progress=self.progress,
                                    label=job.label, atomic=True)
            yield job, result.to_summary()


def run_options_record(faces: FaceOptions, analysis: AnalysisOptions, outputs: OutputOptions) -> dict[str, Any]:
    """The ``options`` of every summary the run writes (``scan_to_folder`` records the same)."""
    return {"faces": options_record(faces), "analysis": options_record(analysis), "outputs": options_record(outputs)}


class Resumption:
    """What an earlier run left in the output folder, input by input: a finished scan of the same input with the
    same options and weights is kept, anything else is scanned again.

    Finished means summary.json is in the input's folder (written last, and the folder itself renamed into place
    only then) with a verdict other than ``error`` (a failure may have been passing, a full disk say)."""

    def __init__(self, options: dict[str, Any], sha256: str) -> None:
        self.options = options
        self.sha256 = sha256
        self.kept = 0
        self.redone = 0  # finished, but with other options or weights

    def finished(self, job: ScanJob) -> dict[str, Any] | None:
        """The summary of ``job`` from the earlier run, as the run's report takes it, or None to scan it."""
        try:
            summary = json.loads((job.out_dir / "summary.json").read_text(encoding="utf-8", errors="surrogateescape"))
        except (OSError, ValueError):
            return None
        if not isinstance(summary, dict) or summary.get("verdict") in (None, "error"):
            return None
        if summary.get("input") != str(job.path):
            return None
        if summary.get("options") != self.options or (summary.get("model") or {}).get("sha256") != self.sha256:
            self.redone += 1
            return None
        # summary.json cannot name itself (it is written before the run learns where it went); the run's does.
        summary["outputs"] = {**summary.get("outputs", {}), "summary": str(job.out_dir / "summary.json")}
        self.kept += 1
        return summary


class RunSummaries:
    """The summaries of a run's inputs as they come, in any order, kept on disk (``SummarySpool``) and counted."""

    def __init__(self) -> None:
        self.spool = SummarySpool()
        self.verdicts: dict[str, int] = {}

    def add(self, index: int, summary: dict[str, Any]) -> None:
        self.spool.add(index, summary)
        self.verdicts[summary["verdict"]] = self.verdicts.get(summary["verdict"], 0) + 1

    def count(self, *verdicts: str) -> int:
        return sum(self.verdicts.get(verdict, 0) for verdict in verdicts)

    @property
    def total(self) -> int:
        return len(self.spool)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.spool)

    def close(self) -> None:
        self.spool.close()
