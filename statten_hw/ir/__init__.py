"""Deployment IR: a networkx graph of typed, frozen nodes lowered from a float model.

``lower(model)`` builds it (shapes inferred, validated), ``run_float(g, x)`` executes it with the
model's own float semantics, ``save_graph``/``load_graph`` store it as JSON + npz.
"""
from .execute_float import run_float
from .lower import lower
from .nodes import NODE_KINDS
from .passes import PIPELINE, run_pipeline
from .serialize import load_graph, save_graph
from .validate import validate

__all__ = ["NODE_KINDS", "PIPELINE", "load_graph", "lower", "run_float", "run_pipeline", "save_graph", "validate"]
