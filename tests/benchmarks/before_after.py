"""The before/after table of the speed suite: an old checkout's benchmarks against this one's.

    git worktree add --detach /tmp/dasm-old <commit>
    python tests/benchmarks/before_after.py --run /tmp/dasm-old [--rounds 3] > results/perf/before_after.md
    python tests/benchmarks/before_after.py BEFORE.json AFTER.json      # two baseline files (conftest.py's format)

``--run`` alternates: per round and per group of benchmarks (a test function), the old checkout's
suite and this one's run that group one after the other (order swapped every round), each writing
a baseline file. Two whole-suite runs minutes apart measured the same code up to 15% apart on this
shared machine (``import torch`` itself moved 0.86-1.15x), so only runs seconds apart are compared.
The table: each benchmark's median over rounds before and after, and the median (min-max) of the
per-round speed-ups before/after (> 1: faster now); a benchmark in one checkout only shows ``-``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

NEW = Path(__file__).resolve().parents[2]
# the groups run in turn (test functions); "reference" timings have their own script (compare_references.py)
GROUPS = ("test_mtt_memory.py::test_mtt_gradient_memory", "test_results_append.py::test_append_10000_rows",
          "test_speed.py::test_matching_iteration", "test_speed.py::test_mtt_unroll_and_meta_gradient",
          "test_speed.py::test_dasm_ranking_pass", "test_speed.py::test_evaluation_epoch",
          "test_speed.py::test_compile_cost", "test_speed.py::test_timm_resnet18_epoch",
          "test_speed.py::test_results_append", "test_speed.py::test_cli_startup")


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


def _suite(checkout: Path, group: str, out: Path) -> dict:
    """One group of ``checkout``'s benchmarks, timed; its medians ({} when the group is not there)."""
    path, _, name = group.partition("::")
    if not (checkout / "tests" / "benchmarks" / path).is_file():
        return {}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "pytest", f"tests/benchmarks/{path}", "-k", name,
                    "--benchmark-enable", "-m", "", "-q", "-p", "no:cacheprovider", "--update-baseline",
                    "--perf-baseline", str(out)], cwd=checkout, env=env, capture_output=True, check=False)
    subprocess.run(["git", "checkout", "-q", "--", "results/mtt/memory.md"], cwd=checkout, check=False,
                   capture_output=True)  # the memory benchmark rewrites its table
    return json.loads(out.read_text(encoding="utf-8"))["benchmarks"] if out.is_file() else {}


def run_alternating(old: Path, rounds: int, groups: tuple[str, ...] = GROUPS) -> list[str]:
    """Rows from ``rounds`` alternating runs of every group (see the module docstring)."""
    per: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            for g, group in enumerate(groups):
                sides = [("before", old), ("after", NEW)]
                for label, checkout in (sides if (r + g) % 2 == 0 else sides[::-1]):
                    out = Path(tmp) / f"{label}-{r}-{g}.json"
                    for name, entry in _suite(checkout, group, out).items():
                        per.setdefault(name, {"before": [], "after": []})[label].append(entry["median_s"])
                print(f"round {r + 1}/{rounds}: {group}", file=sys.stderr, flush=True)
    lines = ["| benchmark | before (median) | after (median) | speed-up before/after: median (min-max) | rounds |",
             "|---|---|---|---|---|"]
    for name in sorted(per):
        b, a = per[name]["before"], per[name]["after"]
        ups = sorted(x / y for x, y in zip(b, a))
        up = f"{statistics.median(ups):.2f}x ({ups[0]:.2f}-{ups[-1]:.2f})" if ups else "-"
        lines.append(f"| `{name}` | {_fmt(statistics.median(b)) if b else '-'} | "
                     f"{_fmt(statistics.median(a)) if a else '-'} | {up} | {max(len(a), len(b))} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", type=Path, nargs="*", help="BEFORE.json AFTER.json (without --run)")
    ap.add_argument("--run", type=Path, metavar="OLD_CHECKOUT", help="time the old checkout against this one")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", default="", help="with --run: only the groups whose name contains this")
    args = ap.parse_args()
    if args.run is not None:
        print(f"old = {args.run}, new = {NEW}; {args.rounds} alternating rounds per group, load average "
              f"{os.getloadavg()[0]:.1f}\n")
        groups = tuple(g for g in GROUPS if args.only in g)
        print("\n".join(run_alternating(args.run, args.rounds, groups)))
        print(f"\nload average after: {os.getloadavg()[0]:.1f}")
        return
    if len(args.files) != 2:
        ap.error("give BEFORE.json AFTER.json, or --run OLD_CHECKOUT")
    files = [json.loads(p.read_text(encoding="utf-8")) for p in args.files]
    for label, data in zip(("before", "after"), files):
        print(f"- {label}: recorded {data.get('recorded', '?')}; {data.get('conditions', '')}")
    print()
    print("\n".join(table(files[0].get("benchmarks", {}), files[1].get("benchmarks", {}))))


if __name__ == "__main__":
    main()
