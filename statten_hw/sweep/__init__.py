"""Sweeps on Dask: checkpoints × block sizes × targets × bit widths, resumable, with a tradeoff report.

`config.plan` checks every input and builds the grid of `Configuration` (each with a content key);
`run.execute` computes what `store.ResultStore` does not hold yet on a Dask cluster (`tasks` is
the work of one configuration); `report.write_sweep_report` writes what a person reads to pick B.
`command` is the ``statten-hw sweep`` sub-command.

>>> configs = plan([], "own", ["loihi2", "layerwise"], [8], samples=64)   # doctest: +SKIP
>>> outcome = execute(configs, "out/sweep")                               # doctest: +SKIP
"""
from .command import SweepFailed, add_sweep_parser, run_sweep
from .config import Configuration, plan
from .report import write_sweep_report
from .run import SweepOutcome, execute
from .store import ResultStore

__all__ = ["Configuration", "ResultStore", "SweepFailed", "SweepOutcome", "add_sweep_parser", "execute", "plan",
           "run_sweep", "write_sweep_report"]
