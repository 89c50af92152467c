"""SANA-FE backend: run the quantized, mapped network on SANA-FE's simulated chip.

``run_sanafe(deployment, x) -> SanafeRun`` (run.py) and ``sanafe_report(deployment, run) -> dict``
(report.py). ``sanafe`` itself is imported only by ``_sdk``.
"""
from .report import sanafe_report
from .run import CoreCounts, SanafeRun, StepCounts, run_sanafe

__all__ = ["CoreCounts", "SanafeRun", "StepCounts", "run_sanafe", "sanafe_report"]
