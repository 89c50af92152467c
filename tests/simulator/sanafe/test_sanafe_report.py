"""report.json of a SANA-FE run: schema fields, totals from SANA-FE's counters, null where it measures nothing."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "ir"))
from ir_nets import small_input, small_model  # noqa: E402
from sanafe_nets import deployment  # noqa: E402
from statten_hw.ir import lower  # noqa: E402
from statten_hw.reports.files import write_json  # noqa: E402
from statten_hw.reports.schema import TOTAL_FIELDS  # noqa: E402
from statten_hw.simulator.sanafe import run_sanafe, sanafe_report  # noqa: E402
from statten_hw.simulator.sanafe.plan import SYNAPSES  # noqa: E402

pytest.importorskip("sanafe")


@pytest.fixture(scope="module")
def report():
    model = small_model("statten")
    x = small_input(model)
    d = deployment(lower(model), x, "sanafe:loihi", model)
    run = run_sanafe(d, x)
    return d, run, sanafe_report(d, run)


def test_report_header_and_totals(report):
    d, run, doc = report
    assert (doc["schema_version"], doc["command"], doc["backend"], doc["target"]) == (1, "simulate", "sanafe",
                                                                                       "sanafe:loihi")
    assert set(doc["totals"]) == {*TOTAL_FIELDS, "active_updates"}
    steps = [s for sample in run.steps for s in sample]
    t = doc["totals"]
    assert t["spikes"] == sum(s.spikes for s in steps) > 0
    assert t["sops"] == sum(s.synaptic_events for s in steps) > 0
    # SANA-FE's updates are the active ones (the event report's active_updates), not every neuron every step.
    assert t["active_updates"] == sum(s.neuron_updates for s in steps) and t["neuron_updates"] is None
    assert t["cores"] == len(doc["cores"]) and t["neurons"] == sum(c["neurons"] for c in doc["cores"])
    assert t["neurons"] == sum(r["neurons"] for r in doc["layers"])  # no replayed input here
    assert t["energy_j"] == pytest.approx(sum(s.energy_j["total"] for s in steps))
    assert t["latency_s"] == pytest.approx(sum(s.sim_time_s for s in steps))
    assert t["cycles"] is None  # SANA-FE reports seconds, not cycles
    assert t["synapse_bytes"] == d.mapping.totals.synapse_bytes
    sanafe = doc["sanafe"]
    assert sanafe["energy_j"]["total"] == pytest.approx(t["energy_j"])
    assert sanafe["samples"] == 2 and len(sanafe["steps"]) == 2 and len(sanafe["per_sample"]) == 2


def test_layers_say_how_each_was_run(report):
    d, run, doc = report
    rows = {r["name"]: r for r in doc["layers"]}
    assert list(rows) == [r.name for r in d.mapping.layers]
    for row in rows.values():
        assert row["sops"] is None and row["energy_j"] is None
        assert (row["approximation"] is None) == (row["sanafe_mode"] == SYNAPSES)
        assert row["reference_mismatches"] == 0
    attention = rows["block.0.attn.attn_lif"]
    assert attention["sanafe_mode"] == "injected-current" and "attention" in attention["approximation"]
    assert {a["layer"] for a in doc["sanafe"]["approximations"]} == {
        n for n, r in rows.items() if r["sanafe_mode"] != SYNAPSES}
    spikes = sum(r["spikes"] for r in rows.values() if r["spikes"] is not None)
    assert spikes == doc["totals"]["spikes"]  # no replayed input here: every spike is a layer's


def test_cores_carry_sanafe_counters(report):
    d, run, doc = report
    cores = doc["cores"]
    assert [c["id"] for c in cores] == [c.id for c in d.mapping.cores]
    assert sum(c["spikes_out"] for c in cores) == doc["totals"]["spikes"]
    assert sum(c["sops"] for c in cores) == doc["totals"]["sops"]
    assert sum(c["noc_packets"] for c in cores) == doc["sanafe"]["packets"]
    assert all(c[k] is None for c in cores for k in ("neuron_updates", "cycles_busy", "energy_j"))


def test_report_is_strict_json_with_the_target_provenance(report, tmp_path):
    _, _, doc = report
    path = write_json(tmp_path / "report.json", doc)
    back = json.loads(path.read_text())
    assert back["sanafe"]["target_unmodelled"] and back["sanafe"]["target_defaults"]
    assert any("link_buffer_size" in n for n in back["sanafe"]["target_unmodelled"])


def test_report_has_the_precision_section_the_event_simulator_gives(report):
    """Formats, saturated values and clipped inputs of the same deployment and inputs, both backends."""
    from statten_hw.simulator import simulate

    d, _, doc = report
    x = small_input(small_model("statten"))
    assert doc["precision"] == simulate(d, x).report["precision"]


def test_markdown_names_every_layer_sanafe_does_not_run_as_synapses(report, tmp_path):
    from statten_hw.reports.simulation import write_simulation_report

    _, run, doc = report
    write_simulation_report(tmp_path, doc)
    md = (tmp_path / "report.md").read_text()
    others = [p for p in run.plans if p.mode != SYNAPSES]
    assert others and "## Layers SANA-FE does not run as synapses" in md
    assert all(f"- {p.name} ({p.mode}): {p.note}" in md for p in others)
    assert "None" not in md
