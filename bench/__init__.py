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
    "load_dataset": "bench.data.datasets", "Dataset": "bench.data.datasets", "make_dataset": "bench.data.datasets",
    "SyntheticSet": "bench.store.synthetic",
    "DistillRequest": "bench.methods.registry",
    "EvalProtocol": "bench.train.evaluation", "EvalResult": "bench.train.evaluation",
    "get_protocol": "bench.train.evaluation",
    "ResultsTable": "bench.store.results", "summarise": "bench.store.results",
    "markdown_table": "bench.report.plots", "saturation_figure": "bench.report.plots",
    "write_reports": "bench.report.plots",
    "create_model": "bench.train.models",
    # experiments
    "run_experiment": "bench.run.experiment_run", "load_spec": "bench.spec.experiment",
    "ExperimentSpec": "bench.spec.experiment",
    "run_grid": "bench.run.runner", "GridSpec": "bench.spec.grid",
    "import_set": "bench.published.importers", "compare_results": "bench.report.compare",
    # registries
    "register_method": "bench.methods.registry", "list_methods": "bench.methods.registry",
    "get_method": "bench.methods.registry",
    "register_dataset": "bench.data.datasets", "list_datasets": "bench.data.datasets",
    "register_architecture": "bench.train.models", "list_architectures": "bench.train.models",
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
