"""Lava backend: the quantized network as Lava processes run under ``Loihi2SimCfg(select_tag='fixed_pt')``,
bit-exact with the integer reference (`statten_hw.quant.run_integer`).

Entry points, imported from their modules (each reaches Lava only through `_compat`, so this package
imports without Lava installed): ``run.run_lava(qgraph, x) -> LavaRun``;
``report.lava_report(deployment, run) -> dict`` (written by `statten_hw.reports.simulation`);
``netx.export_netx(qgraph, path)`` and ``netx.run_netx(export, qgraph, x)`` for lava-dl netx.

Modules in the order a run uses them: `layout` (tensor layouts on ports), `schedule` (delays and
sample windows), `neurons` (LIF models), `synapses` (weights, Conv model), `graded`, `processes` and
`attention` (our processes), `hostio` (injector and recorder), `build` (graph -> processes),
`runtime` (start, step, always stop), `run`, `report`, `netx`.
"""
