"""The code version recorded with every synthetic set and results row."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

from bench import __version__


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """Package version plus the git commit (and '+dirty') when run from a checkout."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=10", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5, check=True).stdout.strip()
        return f"{__version__}+g{sha}{'.dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        return __version__
