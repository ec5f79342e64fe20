"""Benchmarks run on one thread, and a run's medians are compared with the committed baseline.

After a timed run (``--benchmark-enable``, as ``nox -s bench`` does) the terminal summary lists
every benchmark's median, the baseline's median and their ratio, and flags ratios above
``SLOWER`` (1.25x). ``--update-baseline`` writes this run's medians into the baseline file
(benchmarks not run keep their old entry); ``--perf-baseline PATH`` reads/writes another file,
``--perf-note TEXT`` records the conditions (e.g. "quiet machine").

Example::

    nox -s bench                                   # ratios to results/perf/baseline.json
    nox -s bench -- -k matching                    # a subset
    nox -s bench -- --update-baseline --perf-note "quiet 2-core machine"
    nox -s bench -- --device cuda -k "evaluation or timm" --perf-baseline results/perf/baseline-cuda.json
"""

from __future__ import annotations

import datetime
import json
import os
import platform
from pathlib import Path

import pytest
import torch

SLOWER = 1.25
MIN_ROUNDS = 3     # fewer rounds (the single-shot memory/10k-append benchmarks) are shown, not flagged
STARTUP_TARGET = 1.3  # `dasm-bench list` and bad-input errors vs `python -c "import torch"`
DEFAULT_BASELINE = Path(__file__).resolve().parents[2] / "results" / "perf" / "baseline.json"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dasm-bench perf baseline")
    group.addoption("--update-baseline", action="store_true",
                    help="write this run's benchmark medians into the baseline file")
    group.addoption("--perf-baseline", default=str(DEFAULT_BASELINE),
                    help="baseline JSON to compare with / update (default: results/perf/baseline.json)")
    group.addoption("--perf-note", default="", help="conditions recorded with --update-baseline")
    group.addoption("--device", dest="bench_device", default="cpu",
                    help="device of the evaluation/timm training benchmarks (default: cpu); with cuda they are "
                         "timed in synchronised wall seconds: compare with a CUDA baseline (--perf-baseline)")


@pytest.fixture
def bench_device(request) -> torch.device:
    """The training benchmarks' device (``--device``); a CUDA device that is not there skips them.
    On CUDA it switches the test module's timer to synchronised wall seconds (``CUDA_TIMING``)."""
    name = request.config.getoption("bench_device")
    if name.startswith("cuda") and not torch.cuda.is_available():
        pytest.skip(f"--device {name}: no CUDA device here")
    device = torch.device(name)
    request.module.CUDA_TIMING = device.type == "cuda"
    return device


@pytest.fixture(autouse=True)
def _one_thread():
    """Benchmarks are single-threaded: comparable across machines and under load; restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def benchmark_key(fullname: str) -> str:
    """``tests/benchmarks/test_speed.py::test_x[a]`` -> ``test_speed.py::test_x[a]`` (stable across roots)."""
    path, sep, rest = fullname.partition("::")
    return path.replace("\\", "/").rsplit("/", 1)[-1] + sep + rest


def _medians(config: pytest.Config) -> dict[str, dict]:
    session = getattr(config, "_benchmarksession", None)
    out = {}
    for bench in getattr(session, "benchmarks", []) if session is not None else []:
        if not bench or bench.has_error:
            continue
        out[benchmark_key(bench.fullname)] = {"median_s": float(bench.report.stats.median),
                                              "rounds": int(bench.report.stats.rounds)}
    return out


def load_baseline(path: Path) -> dict:
    if not path.is_file():
        return {"benchmarks": {}}
    return json.loads(path.read_text(encoding="utf-8"))


def compare(current: dict[str, dict],
            baseline: dict[str, dict]) -> list[tuple[str, float, float | None, float | None, int]]:
    """(name, median, baseline median, ratio, rounds) per benchmark of this run; ratio > 1 is slower."""
    rows = []
    for name, entry in sorted(current.items()):
        base = baseline.get(name, {}).get("median_s")
        ratio = entry["median_s"] / base if base else None
        rows.append((name, entry["median_s"], base, ratio, int(entry.get("rounds", MIN_ROUNDS))))
    return rows


def is_slower(row, slower: float = SLOWER) -> bool:
    """Flagged: a ratio above ``slower`` from a real median (single-round timings are indicative only)."""
    return row[3] is not None and row[3] > slower and row[4] >= MIN_ROUNDS


def format_table(rows, slower: float = SLOWER) -> list[str]:
    lines = [f"{'benchmark':<66} {'median':>10} {'baseline':>10} {'ratio':>7}"]
    for row in rows:
        name, median, base, ratio, rounds = row
        flag = "" if ratio is None else f"  SLOWER (>{slower}x)" if is_slower(row, slower) else \
            "  (1 round: indicative)" if rounds < MIN_ROUNDS else "  faster" if ratio < 1 / slower else ""
        lines.append(f"{name:<66} {_fmt(median):>10} {_fmt(base):>10} "
                     f"{('%.2fx' % ratio) if ratio is not None else 'new':>7}{flag}")
    return lines


def _fmt(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1e3:.1f}ms" if seconds < 1 else f"{seconds:.2f}s"


def write_baseline(path: Path, current: dict[str, dict], note: str) -> None:
    from bench.files import write_atomically

    data = load_baseline(path)
    data["benchmarks"] = {**data.get("benchmarks", {}), **current}
    data["recorded"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    data["conditions"] = note or data.get("conditions", "")
    data["machine"] = {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                       "python": platform.python_version(), "torch": torch.__version__, "torch_threads": 1,
                       "measure": "CPU-seconds of the process and its waited children (tests/benchmarks/test_speed.py)"}
    data["command"] = "nox -s bench -- --update-baseline --perf-note '<conditions>'"
    write_atomically(path, json.dumps(data, indent=1, sort_keys=True) + "\n")


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    current = _medians(config)
    if not current:
        return
    path = Path(config.getoption("perf_baseline", str(DEFAULT_BASELINE)))
    baseline = load_baseline(path)
    rows = compare(current, baseline.get("benchmarks", {}))
    tr = terminalreporter
    tr.write_sep("=", f"medians vs baseline {path.name} ({baseline.get('conditions') or 'no baseline yet'})")
    for line in format_table(rows):
        tr.write_line(line)
    slow = [r[0] for r in rows if is_slower(r)]
    tr.write_line(f"{len(slow)} of {len(rows)} benchmarks more than {SLOWER}x slower than the baseline"
                  + (f": {', '.join(slow)}" if slow else ""))
    torch_key = "test_speed.py::test_cli_startup[import-torch]"
    if torch_key in current:
        ratios = [f"{k.split('[')[1].rstrip(']')} {v['median_s'] / current[torch_key]['median_s']:.2f}x"
                  for k, v in sorted(current.items())
                  if k.startswith("test_speed.py::test_cli_startup[") and k != torch_key]
        tr.write_line(f"start-up / `import torch` (target <= {STARTUP_TARGET}x for list and errors): "
                      f"{', '.join(ratios)}")
    compiled = {k: v for k, v in current.items() if k.startswith("test_speed.py::test_evaluation_epoch_compiled[")}
    pairs = [(k.split("[")[1].rstrip("]"), current[k.replace("_compiled[", "[")]["median_s"] / v["median_s"])
             for k, v in sorted(compiled.items()) if k.replace("_compiled[", "[") in current]
    if pairs:
        tr.write_line("evaluation epoch eager / compiled (--compile on; compile cost: test_compile_cost): "
                      + ", ".join(f"{name} {ratio:.2f}x" for name, ratio in pairs))
    if config.getoption("update_baseline", False):
        write_baseline(path, current, config.getoption("perf_note", ""))
        tr.write_line(f"baseline updated: {path} ({len(current)} benchmarks)")
