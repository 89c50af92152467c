"""The tradeoff report (statten_hw/sweep/report.py), on hand-made results."""
from __future__ import annotations

import csv
import json

import pytest

from statten_hw.reports.schema import TOTAL_FIELDS
from statten_hw.sweep.config import Configuration
from statten_hw.sweep.report import pareto_cost, pareto_keys, write_sweep_report
from statten_hw.sweep.tasks import SIMULATED_TOTALS, result_record


def _result(key: str, target: str, b: int, accuracy: float, energy: float | None, steps: int = 8,
            precision: str = "graph") -> dict:
    config = Configuration(checkpoint=f"/x/ck_b{b}.pth", target=target, block_size=b, bits=8, dataset="digits-seq",
                           samples=10, calibration_samples=8, engine="fast" if energy is not None else "none",
                           series="own-B checkpoints", key=key, precision=precision)
    totals = {f: 1 for f in TOTAL_FIELDS} | {"energy_j": None if energy is None else energy * 10}
    per = {f: None if energy is None else 1.0 for f in SIMULATED_TOTALS} | {"energy_j": energy}
    return {**result_record(config, "ok", totals=totals, per_inference=per, memory_bytes=1000 * b,
                            latency_steps=steps, accuracy=accuracy, correct=round(10 * accuracy), n=10,
                            integer_overflows=0, inputs_clipped=0, simulation_agreeing=None if energy is None else 10),
            "retries": []}


def _costs(results):
    return pareto_keys(results, pareto_cost(results)[1])


def test_pareto_front_per_target_by_hand():
    results = [_result("a1", "A", 1, 0.90, 10.0), _result("a2", "A", 2, 0.80, 5.0),
               _result("a4", "A", 4, 0.80, 7.0),   # same accuracy as a2, dearer: dominated
               _result("a8", "A", 8, 0.95, 20.0),
               _result("b1", "B", 1, 0.50, 100.0),  # worse than everything on A, alone on B
               _result("b2", "B", 2, 0.50, 100.0)]  # a tie dominates neither
    assert pareto_cost(results)[0] == "energy_j"
    assert _costs(results) == {"a1", "a2", "a8", "b1", "b2"}


def test_each_precision_has_its_own_front_on_a_target(tmp_path):
    """A graph quantized for the graph and one quantized for the target's formats do not compete: the
    first's figures are approximate there. By hand: g2 would dominate t1 on one front."""
    results = [_result("g1", "A", 1, 0.90, 10.0), _result("g2", "A", 2, 0.95, 5.0),
               _result("t1", "A", 1, 0.90, 10.0, precision="target"),
               _result("t2", "A", 2, 0.85, 12.0, precision="target")]  # dominated by t1 on its own front
    assert _costs(results) == {"g2", "t1"}
    write_sweep_report(tmp_path, results, [], computed=4, reused=0)
    md = (tmp_path / "report.md").read_text()
    assert md.count("| 8-bit (target's formats) |") == 2 and md.count("| 8-bit |") == 2
    rows = list(csv.DictReader((tmp_path / "configurations.csv").open()))
    assert [r["precision"] for r in rows].count("target") == 2


def test_cost_falls_back_to_mapping_latency_when_nothing_was_simulated():
    results = [_result("a1", "A", 1, 0.9, None, steps=8), _result("a2", "A", 2, 0.9, None, steps=9)]
    assert pareto_cost(results)[0] == "latency_steps"
    assert _costs(results) == {"a1"}


def test_report_folder(tmp_path):
    results = [_result("a1", "loihi2", 1, 0.9, 10e-6), _result("a2", "loihi2", 2, 0.8, 5e-6),
               _result("c2", "layerwise", 2, 0.7, 1e-6)]
    results[1]["retries"] = [{"task": "samples 0-10", "worker_deaths": 1}]
    broken = Configuration("/x/big.pth", "layerwise", 4, 8, "digits", 10, 8, "fast", "big.pth", "e4")
    results.append({**result_record(broken, "error", error="layer 'x' does not fit: neurons needs 9, limit is 8"),
                    "retries": []})
    failed = [{"key": "f1", "label": "ck B=8 loihi2 8-bit", "error": "KilledWorker: too many deaths",
               "retries": [{"task": "prepare", "worker_deaths": 4}]}]
    doc = write_sweep_report(tmp_path, results, failed, computed=3, reused=1)

    stored = json.loads((tmp_path / "report.json").read_text())
    assert stored == doc
    assert (stored["schema_version"], stored["tool"], stored["command"]) == (1, "statten-hw", "sweep")
    # Reading order: by target as given, then bits, series ("big.pth" < "own-B ...") and B.
    assert [c["key"] for c in stored["configurations"]] == ["a1", "a2", "e4", "c2"]
    assert [c["pareto"] for c in stored["configurations"]] == [True, True, False, True]
    assert stored["run"] == {"computed": 3, "reused": 1} and stored["failed"] == failed

    with open(tmp_path / "configurations.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["target"], r["block_size"], r["status"]) for r in rows] == [
        ("loihi2", "1", "ok"), ("loihi2", "2", "ok"), ("layerwise", "4", "error"), ("layerwise", "2", "ok")]
    assert float(rows[1]["energy_j_per_inference"]) == 5e-6 and rows[1]["worker_deaths"] == "1"
    assert rows[2]["accuracy"] == "" and rows[2]["error"].startswith("layer 'x' does not fit")

    md = (tmp_path / "report.md").read_text()
    assert "| ck_b2.pth | loihi2 | 8-bit | 2 | 1 | 2.0 |" in md  # 2000 B of memory = 2.0 KiB
    assert "80.00 % (8/10) | ★ |" in md
    assert "big.pth B=4 layerwise 8-bit: layer 'x' does not fit" in md
    assert "ck_b2.pth B=2 loihi2 8-bit: samples 0-10 task, 1 worker death(s)" in md
    assert "ck B=8 loihi2 8-bit: prepare task, 4 worker death(s)" in md
    assert "ck B=8 loihi2 8-bit: KilledWorker: too many deaths" in md

    page = (tmp_path / "report.html").read_text()
    # memory, latency (simulated), latency (mapping), energy, accuracy, Pareto view
    assert page.count("<img") == 6 and "Pareto view: accuracy vs energy_j" in page


def test_disagreeing_simulation_and_overflows_are_reported(tmp_path):
    result = _result("a1", "loihi2", 1, 0.9, 1e-6)
    result["simulation_agreeing"] = 9
    result["integer_overflows"] = 1234
    result["inputs_clipped"] = 56
    write_sweep_report(tmp_path, [result], [], computed=1, reused=0)
    md = (tmp_path / "report.md").read_text()
    assert "ck_b1.pth B=1 loihi2 8-bit: 1 of 10 samples" in md
    assert "ck_b1.pth B=1 loihi2 8-bit: 1,234 values" in md
    clipped = md.split("Input values clipped at the input quantizer's range")[1]
    assert "ck_b1.pth B=1 loihi2 8-bit: 56 values" in clipped


@pytest.mark.parametrize("failed_only", [True, False])
def test_report_without_any_successful_configuration(tmp_path, failed_only):
    failed = [{"key": "f", "label": "x", "error": "KilledWorker: k", "retries": []}]
    doc = write_sweep_report(tmp_path, [], failed if failed_only else [], computed=0, reused=0)
    assert doc["pareto_cost"] is None and "<img" not in (tmp_path / "report.html").read_text()


@pytest.mark.parametrize("failing", ["plots", "write_json"])
def test_a_failing_report_writer_leaves_the_previous_report_whole(tmp_path, monkeypatch, failing):
    """A second sweep whose plot, or whose last file, fails must not leave its CSV and Markdown beside
    the first sweep's report.json: the folder keeps the first report, byte for byte, and no stray file."""
    import statten_hw.reports.files as files
    import statten_hw.sweep.report as report

    write_sweep_report(tmp_path, [_result("a1", "A", 1, 0.9, 10.0)], [], computed=1, reused=0)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(report if failing == "plots" else files, failing, broken)
    with pytest.raises(OSError, match="disk full"):
        write_sweep_report(tmp_path, [_result("b2", "B", 2, 0.5, 99.0)], [], computed=1, reused=0)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
