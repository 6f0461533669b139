"""The job table: one SQLite file under the data directory, so a restarted server finds every job again.

A job is ``queued`` -> ``running`` -> ``done`` or ``failed``. A job found ``running`` when the server starts was
interrupted (the process died mid-scan): it is queued again, keeping its place, and scanned from the start.
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
STATES = (QUEUED, RUNNING, DONE, FAILED)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    state TEXT NOT NULL,
    name TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    media TEXT NOT NULL,
    options TEXT NOT NULL,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    frames_done INTEGER NOT NULL DEFAULT 0,
    frames_total INTEGER,
    summary TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, seq);
"""


def new_job_id() -> str:
    """A random job id: 32 hex digits, the only name a job's files ever get."""
    return uuid.uuid4().hex


def is_job_id(text: str) -> bool:
    return len(text) == 32 and all(char in "0123456789abcdef" for char in text)


@dataclass
class Job:
    """One row of the job table."""

    id: str
    state: str
    name: str  # the uploaded file's name, for display only (never used as a path)
    size_bytes: int
    media: str  # what its content was recognised as ("MPEG-4/QuickTime")
    options: dict[str, Any]
    created: float
    started: float | None = None
    finished: float | None = None
    attempts: int = 0
    frames_done: int = 0
    frames_total: int | None = None
    summary: dict[str, Any] | None = None
    error: str | None = None
    seq: int = field(default=0, repr=False)


class JobStore:
    """The job table, safe to use from the request handlers and the worker thread at once."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _execute(self, sql: str, parameters: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, parameters)

    def add(self, job_id: str, name: str, size_bytes: int, media: str, options: dict[str, Any]) -> Job:
        with self._lock:
            seq = self._db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs").fetchone()[0]
            self._db.execute(
                "INSERT INTO jobs (id, seq, state, name, size_bytes, media, options, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (job_id, seq, QUEUED, name, size_bytes, media, json.dumps(options), time.time()),
            )
        job = self.get(job_id)
        assert job is not None
        return job

    def get(self, job_id: str) -> Job | None:
        row = self._execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _job(row) if row else None

    def list(self, limit: int = 100, offset: int = 0) -> list[Job]:
        rows = self._execute(f"SELECT {_COLUMNS} FROM jobs ORDER BY seq DESC LIMIT ? OFFSET ?",
                             (limit, offset)).fetchall()
        return [_job(row) for row in rows]

    def count(self, *states: str) -> int:
        marks = ", ".join("?" for _ in states)
        return self._execute(f"SELECT COUNT(*) FROM jobs WHERE state IN ({marks})", states).fetchone()[0]

    def queued_before(self, seq: int) -> int:
        """How many queued jobs came before the job numbered ``seq``."""
        return self._execute("SELECT COUNT(*) FROM jobs WHERE state = ? AND seq < ?", (QUEUED, seq)).fetchone()[0]

    def claim_next(self) -> Job | None:
        """The oldest queued job, now marked running (None when the queue is empty)."""
        with self._lock:
            row = self._db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE state = ? ORDER BY seq LIMIT 1",
                                   (QUEUED,)).fetchone()
            if row is None:
                return None
            self._db.execute("UPDATE jobs SET state = ?, started = ?, attempts = attempts + 1, frames_done = 0 "
                             "WHERE id = ?", (RUNNING, time.time(), row[0]))
        return self.get(row[0])

    def requeue_interrupted(self) -> int:
        """Queue again the jobs a previous process left running; returns how many."""
        return self._execute("UPDATE jobs SET state = ?, frames_done = 0 WHERE state = ?", (QUEUED, RUNNING)).rowcount

    def set_progress(self, job_id: str, frames_done: int, frames_total: int | None) -> None:
        self._execute("UPDATE jobs SET frames_done = ?, frames_total = ? WHERE id = ?",
                      (frames_done, frames_total, job_id))

    def finish(self, job_id: str, state: str, summary: dict[str, Any] | None, error: str | None) -> None:
        self._execute("UPDATE jobs SET state = ?, finished = ?, summary = ?, error = ? WHERE id = ?",
                      (state, time.time(), json.dumps(summary) if summary is not None else None, error, job_id))

    def delete_unless_running(self, job_id: str) -> bool:
        """Delete a job that is not running (in one statement, so the worker cannot claim it meanwhile); whether
        it was deleted."""
        return self._execute("DELETE FROM jobs WHERE id = ? AND state != ?", (job_id, RUNNING)).rowcount == 1

    def recent_durations(self, limit: int = 10) -> list[float]:
        """Seconds the latest finished jobs took (for a Retry-After estimate)."""
        rows = self._execute("SELECT finished - started FROM jobs WHERE state IN (?, ?) AND started IS NOT NULL "
                             "ORDER BY seq DESC LIMIT ?", (DONE, FAILED, limit)).fetchall()
        return [row[0] for row in rows if row[0] is not None and row[0] >= 0]


_FIELDS = ("id", "state", "name", "size_bytes", "media", "options", "created", "started", "finished", "attempts",
           "frames_done", "frames_total", "summary", "error", "seq")
_COLUMNS = ", ".join(_FIELDS)


def _job(row: tuple[Any, ...]) -> Job:
    values = dict(zip(_FIELDS, row))
    values["options"] = json.loads(values["options"])
    values["summary"] = json.loads(values["summary"]) if values["summary"] else None
    return Job(**values)
