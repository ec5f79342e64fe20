"""dasm-bench harness: data, models, synthetic sets, evaluation, results and CLI.

The public API is importable from here; each name is loaded on first use (PEP 562), so
``import bench`` (and so the CLI's start) stays light: torch is imported only when needed.

Example::

    from bench import distill, evaluate, load_dataset
    syn = distill("herding", load_dataset("digits"), ipc=5)
    print(evaluate(syn, epochs=50, num_models=2).last_mean)
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_API = {
    # distill, evaluate, tabulate
    "distill": "bench.api", "evaluate": "bench.api", "results_row": "bench.api",
    "load_dataset": "bench.data", "Dataset": "bench.data", "make_dataset": "bench.data",
    "SyntheticSet": "bench.synthetic",
    "DistillRequest": "bench.registry",
    "EvalProtocol": "bench.evaluation", "EvalResult": "bench.evaluation", "get_protocol": "bench.evaluation",
    "ResultsTable": "bench.results", "summarise": "bench.results",
    "markdown_table": "bench.plots", "saturation_figure": "bench.plots", "write_reports": "bench.plots",
    "create_model": "bench.models",
    # experiments
    "run_experiment": "bench.experiment_run", "load_spec": "bench.experiment", "ExperimentSpec": "bench.experiment",
    "run_grid": "bench.runner", "GridSpec": "bench.grid",
    "import_set": "bench.importers", "compare_results": "bench.compare",
    # registries
    "register_method": "bench.registry", "list_methods": "bench.registry", "get_method": "bench.registry",
    "register_dataset": "bench.data", "list_datasets": "bench.data",
    "register_architecture": "bench.models", "list_architectures": "bench.models",
    "BenchError": "bench.errors",
}

__all__ = sorted(_API) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'bench' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
