"""The mapping report folder (tests/mapping/ mirrors statten_hw/reports/mapping.py's subject)."""
from __future__ import annotations

import csv
import json

from mapping_helpers import statten_graph, statten_model
from statten_hw.mapping import map_model
from statten_hw.reports.mapping import write_mapping_report


def test_report_files(tmp_path):
    result = map_model(statten_graph(), "loihi2", 2)
    doc = write_mapping_report(tmp_path, statten_model(), result)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cores.csv", "layers.csv", "report.html", "report.json",
                                                           "report.md"]
    data = json.loads((tmp_path / "report.json").read_text())
    assert data == doc
    assert data["schema_version"] == 1 and data["command"] == "map" and data["target"] == "loihi2"
    assert data["block_size"] == 2 and data["backend"] == "none"
    totals = data["totals"]
    assert totals["cores"] == len(data["cores"]) == len(result.cores)
    assert totals["neurons"] == sum(c["neurons"] for c in data["cores"])
    assert all(totals[k] is None for k in ("spikes", "sops", "neuron_updates", "cycles", "latency_s", "energy_j"))
    assert all(c["sops"] is None and c["energy_j"] is None for c in data["cores"])
    assert {"id", "chip", "x", "y", "layers", "neurons", "synapse_bytes", "state_bytes", "buffer_bytes"} <= set(data["cores"][0])
    assert data["mapping"]["lower_bound"]["cores"] == result.lower_bound.cores
    rows = list(csv.DictReader((tmp_path / "cores.csv").open()))
    assert len(rows) == len(result.cores)
    assert len(list(csv.DictReader((tmp_path / "layers.csv").open()))) == len(result.layers)
    html = (tmp_path / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3
    assert "lower bound" in (tmp_path / "report.md").read_text()
    assert not list(tmp_path.glob(".*.tmp"))
