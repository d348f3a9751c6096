"""experiments: one module per experiment kind, each turning a config into rows (``experiment=`` picks it).

Imports: the mechanisms (forward, tiers, codecs, kv, audit, measure, model), economics, rows, config.
"""

from __future__ import annotations

from kvbench.experiments.base import Experiment, RowsExperiment, RunContext


def get_experiment(name: str) -> Experiment | RowsExperiment:
    """The experiment registered under ``name`` (imported lazily: each may pull heavy deps)."""
    if name == "reuse":
        from kvbench.experiments.reuse import ReuseExperiment

        return ReuseExperiment()
    if name == "compress":
        from kvbench.experiments.compress import CompressExperiment

        return CompressExperiment()
    if name == "tiers":
        from kvbench.experiments.tiers import TiersExperiment

        return TiersExperiment()
    if name == "throughput":
        from kvbench.experiments.throughput import ThroughputExperiment

        return ThroughputExperiment()
    if name == "economics":
        from kvbench.experiments.economics import EconomicsExperiment

        return EconomicsExperiment()
    if name == "audit":
        from kvbench.experiments.audit import AuditExperiment

        return AuditExperiment()
    raise KeyError(f"unknown experiment {name!r}")


__all__ = ["Experiment", "RowsExperiment", "RunContext", "get_experiment"]
