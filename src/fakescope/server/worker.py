"""The scan worker: one thread that takes queued jobs in order and runs ``scan_to_folder`` on each with the
server's one loaded ``Scanner`` (the request's options applied with ``Scanner.with_analysis``)."""
from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from pathlib import Path

from ..analysis import Scanner
from ..outputs import scan_to_folder
from .jobs import DONE, FAILED, Job, JobStore
from .scan_form import options_from_dict

log = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 0.5
"""At most this often a running job's progress is written to the job table."""


class ScanWorker:
    """Runs the queued jobs one at a time in a background thread; ``wake()`` after queueing one."""

    def __init__(self, store: JobStore, scanner: Scanner, uploads: Path, results: Path,
                 idle_poll_s: float = 1.0) -> None:
        self.store = store
        self.scanner = scanner
        self.uploads = uploads
        self.results = results
        self.idle_poll_s = idle_poll_s
        self.current: str | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="fakescope-scan-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 0.5) -> None:
        """Stop taking jobs; a scan in progress is not interrupted (a restart scans it again)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            job = self.store.claim_next()
            if job is None:
                self._wake.wait(self.idle_poll_s)
                self._wake.clear()
                continue
            self.current = job.id
            try:
                self.run_job(job)
            finally:
                self.current = None

    def run_job(self, job: Job) -> None:
        """Scan one job's upload into its results folder and record the outcome; never raises."""
        out = self.results / job.id
        try:
            shutil.rmtree(out, ignore_errors=True)  # a job interrupted by a restart starts afresh
            analysis, outputs = options_from_dict(job.options, self.scanner.analysis)
            scanner = self.scanner.with_analysis(analysis)
            last_write = 0.0

            def on_frame(done: int, total: int | None) -> None:
                nonlocal last_write
                now = time.monotonic()
                if now - last_write >= PROGRESS_INTERVAL_S or (total is not None and done >= total):
                    last_write = now
                    self.store.set_progress(job.id, done, total)

            result = scan_to_folder(scanner, self.uploads / job.id, out, outputs, on_frame=on_frame)
            self.store.set_progress(job.id, result.frames_analysed, result.frames_analysed)
            summary = _written_summary(out) or result.to_summary()
            if result.verdict == "error":
                self.store.finish(job.id, FAILED, summary, result.reason or "the scan failed")
            else:
                self.store.finish(job.id, DONE, summary, None)
        except Exception as error:  # noqa: BLE001 - a job fails with its reason, the worker goes on
            log.exception("job %s failed", job.id)
            self.store.finish(job.id, FAILED, None, f"internal error: {type(error).__name__}: {error}")


def _written_summary(out: Path) -> dict | None:
    """summary.json as the scan wrote it (what the API returns is that file), or None where it could not be."""
    try:
        return json.loads((out / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
