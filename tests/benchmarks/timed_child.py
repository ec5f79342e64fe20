"""One helper for the before/after scripts: run a Python snippet in a fresh process, read its JSON line.

Example::

    run_child("import json; print(json.dumps({'ok': 1}))", [], {}, Path("."), "demo")   # {'ok': 1}
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def run_child(code: str, argv: list[str], env: dict[str, str], cwd: Path, what: str) -> dict:
    """``python -c code *argv`` in ``cwd`` with ``env``; the last stdout line parsed as JSON. A failed
    run stops the script with its stderr tail (``what`` names it)."""
    out = subprocess.run([sys.executable, "-c", code, *argv], env=env, cwd=cwd, capture_output=True, text=True,
                         check=False)
    if out.returncode != 0:
        raise SystemExit(f"{what}: the run failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])
