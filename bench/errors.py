"""One exception type for bad input: the CLI turns it into a one-line error and exit 2."""

from __future__ import annotations


class BenchError(Exception):
    """A user-facing error: bad input, a missing dataset, a corrupt file, a diverged run.

    Raised anywhere in the harness; ``bench.cli.main`` prints ``error: <message>`` and exits 2,
    never a traceback.
    """


class DivergedError(BenchError):
    """Training produced a NaN/inf loss."""
