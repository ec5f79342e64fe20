"""The before/after table of the speed suite: two baseline files (``conftest.py``'s format) side by side.

    # the old checkout's suite, then this one's, one after the other on the same quiet machine
    (cd /tmp/dasm-old && pytest tests/benchmarks --benchmark-enable -m "" -k "not reference" \\
        --update-baseline --perf-baseline /tmp/before.json --perf-note "before: <commit>")
    pytest tests/benchmarks --benchmark-enable -m "" -k "not reference" --update-baseline --perf-note "after"
    python tests/benchmarks/before_after.py /tmp/before.json results/perf/baseline.json > results/perf/before_after.md

Prints a markdown table: every benchmark of either file, its median before and after, and the
speed-up before/after (> 1: faster now); benchmarks in one file only show ``-`` on the other side.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _fmt(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def table(before: dict, after: dict) -> list[str]:
    """Markdown rows for the benchmarks of both baseline files (their ``benchmarks`` mappings)."""
    lines = ["| benchmark | before (median) | after (median) | speed-up before/after | rounds after |",
             "|---|---|---|---|---|"]
    for name in sorted(before.keys() | after.keys()):
        b, a = before.get(name, {}).get("median_s"), after.get(name, {}).get("median_s")
        up = f"{b / a:.2f}x" if a and b else "-"
        rounds = after.get(name, {}).get("rounds", "-")
        lines.append(f"| `{name}` | {_fmt(b)} | {_fmt(a)} | {up} | {rounds} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    args = ap.parse_args()
    files = [json.loads(p.read_text(encoding="utf-8")) for p in (args.before, args.after)]
    for label, data in zip(("before", "after"), files):
        print(f"- {label}: recorded {data.get('recorded', '?')}; {data.get('conditions', '')}")
    print()
    print("\n".join(table(files[0].get("benchmarks", {}), files[1].get("benchmarks", {}))))


if __name__ == "__main__":
    main()
