"""Hypothesis settings for the property tests of tests/test_fuzz.py.

- Normal runs (``pytest``): profile ``quick``, a few examples per property, and every failing example saved in
  ``tests/fuzz-corpus/`` replayed first (read-only), so what ``make fuzz`` once found stays a regression test.
- ``make fuzz`` (``FAKESCOPE_FUZZ_SECONDS=N``): profile ``fuzz``, examples without limit for N seconds shared among
  the properties (each is skipped, "fuzz budget spent", when its share is up), failing examples saved into
  ``tests/fuzz-corpus/`` (commit them); then a normal run replays them and fails on any that still fails.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from collections.abc import Callable
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, seed, settings
from hypothesis.database import DirectoryBasedExampleDatabase, ExampleDatabase, ReadOnlyDatabase

CORPUS_DIR = Path(__file__).resolve().parent / "fuzz-corpus"
FUZZ_SECONDS = float(os.environ.get("FAKESCOPE_FUZZ_SECONDS", "0") or 0)
PROPERTIES = 11  # how many properties share the fuzz budget (tests/test_fuzz.py)

class _BudgetAwareDatabase(ExampleDatabase):
    """The corpus folder, except that nothing is saved once a property's budget is spent: Hypothesis would store
    the example interrupted by the budget's skip as if it had failed."""

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = DirectoryBasedExampleDatabase(str(folder))
        self.spent = False

    def save(self, key: bytes, value: bytes) -> None:
        if not self.spent:
            self.folder.save(key, value)

    def fetch(self, key: bytes):
        return self.folder.fetch(key)

    def delete(self, key: bytes, value: bytes) -> None:
        if not self.spent:
            self.folder.delete(key, value)

    def move(self, src: bytes, dest: bytes, value: bytes) -> None:
        if not self.spent:
            self.folder.move(src, dest, value)


_database = _BudgetAwareDatabase(CORPUS_DIR)
settings.register_profile(
    "quick",
    max_examples=int(os.environ.get("FAKESCOPE_FUZZ_EXAMPLES", "8")),
    deadline=None,
    database=ReadOnlyDatabase(_database.folder),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "fuzz",
    max_examples=10_000_000,
    deadline=None,
    database=_database,
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)
settings.load_profile("fuzz" if FUZZ_SECONDS > 0 else "quick")

_started: dict[str, float] = {}
_calls: dict[str, int] = {}
_Test = TypeVar("_Test", bound=Callable)


def deterministic(test: _Test) -> _Test:
    """A fixed seed in normal runs (the same examples every time: a test run never fails by chance, only because
    of a change); a fresh one under ``make fuzz``."""
    return test if FUZZ_SECONDS > 0 else seed(15)(test)


def within_budget(name: str) -> None:
    """In ``make fuzz``: end this property once its share of the time budget is spent, by skipping it (Hypothesis
    passes a skip straight through). A failure found before is already in the example database, where the replay
    run that ``make fuzz`` does next reports it. Does nothing in normal runs."""
    if FUZZ_SECONDS <= 0:
        return
    if name not in _started:
        _started[name] = time.monotonic()
        _database.spent = False
    started = _started[name]
    _calls[name] = _calls.get(name, 0) + 1
    if time.monotonic() - started >= FUZZ_SECONDS / PROPERTIES:
        _database.spent = True
        pytest.skip(f"{name}: fuzz budget of {FUZZ_SECONDS / PROPERTIES:.0f} s spent after {_calls[name]} examples")
