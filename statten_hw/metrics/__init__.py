"""Metrics of a run under other tools' names: NeuroBench's complexity metrics (:mod:`.neurobench`).

``neurobench_metrics(qgraph, run, model=None) -> dict`` for the integer deployment (what reports
carry); ``float_neurobench_metrics(model, graph, x) -> dict`` for the float model, as NeuroBench
itself measures it.
"""
from .neurobench import NEUROBENCH_VERSION, float_neurobench_metrics, neurobench_metrics

__all__ = ["NEUROBENCH_VERSION", "float_neurobench_metrics", "neurobench_metrics"]
