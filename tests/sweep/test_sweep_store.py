"""Stored results of finished configurations (statten_hw/sweep/store.py)."""
from __future__ import annotations

import json

import pytest

from statten_hw.reports.schema import TOTAL_FIELDS
from statten_hw.sweep.config import Configuration
from statten_hw.sweep.store import ResultStore
from statten_hw.sweep.tasks import SIMULATED_TOTALS, result_record

KEY = "ab" * 32


CONFIG = Configuration(checkpoint="/x/ck.pth", target="loihi2", block_size=2, bits=8, dataset="digits", samples=4,
                       calibration_samples=8, engine="fast", series="ck.pth", key=KEY)


def _record() -> dict:
    """A finished configuration's record as the run stores it (`result_record` plus its retries)."""
    return {**result_record(CONFIG, "ok", totals={f: 1 for f in TOTAL_FIELDS}, accuracy=0.5, correct=2, n=4,
                            per_inference={f: 0.25 for f in SIMULATED_TOTALS}, memory_bytes=10, latency_steps=5,
                            lower_bound_cores=1, integer_overflows=0, inputs_clipped=0, simulation_agreeing=4),
            "retries": [{"task": "prepare", "worker_deaths": 1}]}


def test_round_trip_and_absent(tmp_path):
    store = ResultStore(tmp_path)
    assert store.load(KEY) is None
    assert store.save(_record()) == _record()
    path = store.path(KEY)
    assert path == tmp_path / "configurations" / f"{KEY}.json"
    assert store.load(KEY) == _record()
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left beside it


def _without(section: str, field: str):
    def edit(record):
        del record[section][field]
    return edit


@pytest.mark.parametrize("edit", [
    lambda r: r.pop("accuracy"), lambda r: r.pop("retries"), lambda r: r.pop("precision"),
    _without("totals", "cores"), _without("per_inference", "energy_j"),
    lambda r: r.update(totals=[1, 2]), lambda r: r.update(retries=[{"task": "prepare"}]),
    lambda r: r.update(retries=[{"worker_deaths": 1}]), lambda r: r.update(accuracy=None),
    lambda r: r.update(memory_bytes="10"), lambda r: r.update(totals=None), lambda r: r.update(status="done"),
    lambda r: r["totals"].update(cores="3"), lambda r: r["per_inference"].update(energy_j=[1.0]),
], ids=["accuracy", "retries", "precision", "totals.cores", "per_inference.energy_j", "totals-list",
        "retry-without-deaths", "retry-without-task", "null-accuracy", "text-memory", "ok-without-totals",
        "unknown-status", "text-cores", "list-energy"])
def test_a_record_missing_what_the_report_reads_is_computed_again_with_a_warning(tmp_path, edit):
    """A hand-edited record: recomputed (None), never a KeyError in the report later."""
    store = ResultStore(tmp_path)
    record = _record()
    edit(record)
    store.save(record)
    with pytest.warns(UserWarning, match=f"{KEY}.json: stored result is incomplete"):
        assert store.load(KEY) is None


def test_a_failed_configurations_record_is_complete(tmp_path):
    """Null sections are what a failed configuration stores: complete, read back as written."""
    record = {**result_record(CONFIG, "error", error="layer 'x' does not fit"), "retries": []}
    ResultStore(tmp_path).save(record)
    assert ResultStore(tmp_path).load(KEY) == record


@pytest.mark.parametrize("content", ["{\"key\": \"ab", "[1, 2]", json.dumps({"key": "other"}),
                                     "[" * 100_000 + "]" * 100_000, "{\"key\": " + "9" * 5000 + "}"])
def test_unusable_file_is_computed_again_with_a_warning(tmp_path, content):
    store = ResultStore(tmp_path)
    store.path(KEY).parent.mkdir(parents=True)
    store.path(KEY).write_text(content)
    with pytest.warns(UserWarning, match=KEY):
        assert store.load(KEY) is None
