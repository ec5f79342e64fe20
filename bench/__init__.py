"""dasm-bench harness: data, models, synthetic sets, evaluation, results and CLI."""

__version__ = "0.1.0"
