"""Sweeps on an external cluster: ``dask scheduler`` and ``dask worker`` started as separate processes."""
from __future__ import annotations

import pytest
from sweep_processes import descendants, external_cluster, survivors
from sweep_tasks import counting_prepare, executions

from statten_hw.sweep import execute, plan
from sweep_fixtures import tiny  # noqa: F401 (pytest fixtures)

pytestmark = pytest.mark.slow


def test_sweep_on_an_external_scheduler_resumes_and_leaves_nothing_running(tiny, tmp_path):
    ckpt, data = tiny
    configs = plan([str(ckpt)], "2", ["loihi2", "layerwise"], [8], samples=12, dataset=str(data),
                   calibration_samples=8)
    markers = tmp_path / "markers"
    before = set(descendants())
    with external_cluster(workers=1) as address:
        assert len(descendants()) - len(before) >= 3  # scheduler, nanny, worker process
        first = execute(configs, tmp_path / "out", scheduler=address, shard_size=5, progress=False,
                        prepare=counting_prepare(markers))
        again = execute(configs, tmp_path / "out", scheduler=address, progress=False,
                        prepare=counting_prepare(markers))
    assert not survivors(before), "the scheduler or a worker is still running"
    assert first.failed == [] and sorted(first.computed) == sorted(c.key for c in configs)
    assert all(r["status"] == "ok" and r["n"] == 12 and r["simulation_agreeing"] == 12 for r in first.results)
    assert again.computed == [] and again.results == first.results
    assert executions(markers) == {c.key: 1 for c in configs}
