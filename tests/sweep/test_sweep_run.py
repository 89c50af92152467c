"""Sweeps on a real Dask LocalCluster of 2 worker processes (statten_hw/sweep/run.py)."""
from __future__ import annotations

import argparse
import json
import os

import pytest
from sweep_processes import descendants, survivors
from sweep_tasks import counting_prepare, executions, failing_prepare, killing_prepare

from statten_hw.data import load_dataset
from statten_hw.pipeline import prepare
from statten_hw.quant import run_integer
from statten_hw.sweep import ResultStore, add_sweep_parser, execute, plan
from statten_hw.sweep.run import _environment_restored, dask_client
from sweep_fixtures import no_stray_processes, tiny  # noqa: F401 (pytest fixtures)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    """A LocalCluster of 2 single-threaded worker processes (with nannies), shared by the tests that
    do not need `execute` to start its own; its workers stay warm between tests."""
    from distributed import LocalCluster

    before = set(descendants())
    with _environment_restored(), LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                               dashboard_address=None,
                                               scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}) as local:
        yield local.scheduler_address
    assert not survivors(before), "the LocalCluster left processes behind"


def test_a_local_cluster_leaves_this_process_environment_as_it_was(no_stray_processes):
    """Dask writes its workers' thread and allocator settings into our environment while it spawns
    them; after the cluster, processes we start must not inherit them."""
    before = dict(os.environ)
    with dask_client(None, 1) as client:
        assert "MALLOC_TRIM_THRESHOLD_" in os.environ  # what dask sets for its workers
        assert client.submit(lambda: os.environ.get("OMP_NUM_THREADS")).result() == "1"
    assert dict(os.environ) == before


def _plan(tiny, block_sizes="1,4", engine="none", samples=None):
    ckpt, data = tiny
    return plan([str(ckpt)], block_sizes, ["loihi2", "layerwise"], [8], dataset=str(data), calibration_samples=8,
                engine=engine, samples=samples)


def test_sweep_computes_each_configuration_once_and_resumes(tiny, tmp_path, cluster, no_stray_processes):
    configs = _plan(tiny)
    markers, out = tmp_path / "markers", tmp_path / "out"
    # First run: execute starts (and stops) its own LocalCluster of 2 workers.
    first = execute(configs, out, workers=2, shard_size=10, progress=False, prepare=counting_prepare(markers))
    assert executions(markers) == {c.key: 1 for c in configs}
    assert sorted(first.computed) == sorted(c.key for c in configs) and first.reused == [] and first.failed == []
    assert [r["key"] for r in first.results] == [c.key for c in configs]
    assert {r["n"] for r in first.results} == {24} and all(r["retries"] == [] for r in first.results)

    # Each accuracy, counted shard by shard on the workers, equals one integer run on all samples here.
    x, y = load_dataset(str(tiny[1]), split="test")
    for config, result in zip(configs, first.results):
        if config.target == "loihi2":
            d = prepare(config.checkpoint, config.target, block_size=config.block_size, dataset=config.dataset,
                        calibration_samples=8)
            assert result["correct"] == int((run_integer(d.qgraph, x).predictions == y).sum())

    again = execute(configs, out, scheduler="tcp://127.0.0.1:1", progress=False,
                    prepare=counting_prepare(markers))  # nothing to compute: no cluster is even contacted
    assert executions(markers) == {c.key: 1 for c in configs}  # nothing ran a second time
    assert again.computed == [] and sorted(again.reused) == sorted(c.key for c in configs)
    assert again.results == first.results

    wider = _plan(tiny, "1,2,4")
    third = execute(wider, out, scheduler=cluster, progress=False, prepare=counting_prepare(markers))
    assert sorted(third.computed) == sorted(c.key for c in wider if c.block_size == 2)
    assert executions(markers) == {c.key: 1 for c in wider}


def test_killed_worker_is_retried_and_reported(tiny, tmp_path, cluster):
    configs = _plan(tiny, "1,2", engine="fast", samples=12)
    victim = configs[3]  # B = 2 on layerwise, submitted after three others
    markers = tmp_path / "markers"
    guard = tmp_path / "killed-once"
    outcome = execute(configs, tmp_path / "out", scheduler=cluster, shard_size=6, progress=False,
                      prepare=killing_prepare(markers, guard, victim.key))
    assert guard.exists()  # a worker really was killed
    assert outcome.failed == [] and sorted(outcome.computed) == sorted(c.key for c in configs)
    retried = {r["key"]: r["retries"] for r in outcome.results if r["retries"]}
    assert retried[victim.key] == [{"task": "prepare", "worker_deaths": 1}]
    # Any other task queued on the dead worker is retried (and reported) too; one death each.
    assert {x["worker_deaths"] for rs in retried.values() for x in rs} == {1}
    assert all(r["status"] == "ok" and r["simulation_agreeing"] == 12 for r in outcome.results)
    stored = json.loads((tmp_path / "out" / "configurations" / f"{victim.key}.json").read_text())
    assert stored["retries"] == [{"task": "prepare", "worker_deaths": 1}]
    assert f"{victim.label}: prepare task, 1 worker death(s)" in _report_md(outcome, tmp_path)


def test_a_defect_is_reported_not_stored_and_computed_by_the_next_run(tiny, tmp_path, cluster):
    configs = _plan(tiny)
    victim, markers, out = configs[0], tmp_path / "markers", tmp_path / "out"
    outcome = execute(configs, out, scheduler=cluster, progress=False, prepare=failing_prepare(markers, victim.key))
    assert outcome.failed == [{"key": victim.key, "label": victim.label,
                               "error": "RuntimeError: a defect in the prepare task", "retries": []}]
    assert victim.key not in {r["key"] for r in outcome.results} and not ResultStore(out).path(victim.key).exists()
    assert "RuntimeError: a defect in the prepare task" in _report_md(outcome, tmp_path)

    again = execute(configs, out, scheduler=cluster, progress=False, prepare=counting_prepare(markers))
    assert again.computed == [victim.key] and again.failed == [] and len(again.results) == len(configs)


def _report_md(outcome, folder) -> str:
    from statten_hw.sweep import write_sweep_report

    write_sweep_report(folder / "report", outcome.results, outcome.failed, len(outcome.computed), len(outcome.reused))
    return (folder / "report" / "report.md").read_text()


def test_command_writes_the_report_and_a_rerun_reuses_everything(tiny, tmp_path, cluster, capsys):
    parser = argparse.ArgumentParser()
    add_sweep_parser(parser.add_subparsers())
    ckpt, data = tiny
    argv = ["sweep", str(ckpt), "-B", "1,2", "--targets", "loihi2,layerwise", "--bits", "4,8", "--samples", "6",
            "--dataset", str(data), "--calibration-samples", "8", "--scheduler", cluster, "-o", str(tmp_path)]
    args = parser.parse_args(argv)
    args.func(args)
    printed = capsys.readouterr()
    assert "8 computed, 0 reused, 0 retried after a worker died, 0 failed" in printed.out
    assert "configurations: 100%" in printed.err and "| 8/8 [" in printed.err  # the progress bar
    doc = json.loads((tmp_path / "report.json").read_text())
    assert doc["command"] == "sweep" and doc["pareto_cost"] == "energy_j"
    assert [(c["target"], c["bits"], c["block_size"]) for c in doc["configurations"]] == [
        (t, w, b) for t in ("loihi2", "layerwise") for w in (4, 8) for b in (1, 2)]
    assert all(c["status"] == "ok" and c["simulation_agreeing"] == 6 for c in doc["configurations"])
    for name in ("report.md", "report.html", "configurations.csv"):
        assert (tmp_path / name).stat().st_size > 0
    assert len(list((tmp_path / "configurations").glob("*.json"))) == 8

    args = parser.parse_args(argv)
    args.func(args)
    printed = capsys.readouterr()
    assert "0 computed, 8 reused" in printed.out and "| 8/8 [" in printed.err
    assert json.loads((tmp_path / "report.json").read_text())["configurations"] == doc["configurations"]

    edited = tmp_path / "configurations" / f"{doc['configurations'][0]['key']}.json"  # a hand edit drops a field
    edited.write_text(json.dumps({k: v for k, v in json.loads(edited.read_text()).items() if k != "accuracy"}))
    args = parser.parse_args(argv)
    with pytest.warns(UserWarning, match="stored result is incomplete"):
        args.func(args)
    assert "1 computed, 7 reused" in capsys.readouterr().out
    assert json.loads((tmp_path / "report.json").read_text())["configurations"] == doc["configurations"]


def test_a_sweep_where_no_configuration_fits_fails(tiny, tmp_path, cluster):
    """Every configuration refused by its target (8 input axons per core): the report lists each, and the
    command exits with an error instead of a summary of nothing. A checkpoint named twice is one."""
    from importlib import resources

    from statten_hw.errors import StattenError

    parser = argparse.ArgumentParser()
    add_sweep_parser(parser.add_subparsers())
    ckpt, data = tiny
    toml = resources.files("statten_hw.targets").joinpath("builtin", "loihi2.toml").read_text()
    target = tmp_path / "narrow.toml"
    target.write_text(toml.replace("\nfan_in = 4096 ", "\nfan_in = 8 "))
    argv = ["sweep", str(ckpt), str(ckpt.parent / "." / ckpt.name), "-B", "1", "--targets", str(target),
            "--bits", "8", "--samples", "2", "--dataset", str(data), "--calibration-samples", "8",
            "--scheduler", cluster, "--no-progress", "-o", str(tmp_path / "out")]
    args = parser.parse_args(argv)
    with pytest.raises(StattenError, match="none of the 1 configuration"):
        args.func(args)
    doc = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [c["status"] for c in doc["configurations"]] == ["error"]
    assert "fan-in" in doc["configurations"][0]["error"]
