"""Exit statuses of every subcommand, and the error that means "called wrongly" (status 2)."""
from __future__ import annotations

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A problem with how the command was called (exit status 2)."""
