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


def test_layer_memory_parts_add_up_to_the_placed_bytes(tmp_path):
    """With 256 neurons per core each attention layer's heads are split over cores, and every core
    holding part of a head keeps a copy of its accumulators: the parts of report.json's layer rows (what
    the HTML stacks) must add up to the placed bytes, the split's copies included."""
    from mapping_helpers import small_target

    result = map_model(statten_graph(), small_target(neurons_per_core=256), 2)
    doc = write_mapping_report(tmp_path, statten_model(), result)
    parts = ("qkv_bytes", "accumulator_bytes", "residual_bytes", "block_bytes", "pre_pool_bytes", "split_bytes")
    for row in doc["layers"]:
        assert sum(row[k] for k in parts) == row["buffer_bytes"] and min(row[k] for k in parts) >= 0
        if row["kind"] == "attention":
            assert len(row["cores"]) > 1 and row["split_bytes"] > 0
        if len(row["cores"]) == 1:
            assert row["split_bytes"] == 0
    assert sum(r["buffer_bytes"] for r in doc["layers"]) == doc["totals"]["buffer_bytes"]


def _png_sizes(html: str) -> list[tuple[int, int]]:
    """(width, height) in pixels of every PNG embedded in a report page, from each PNG's IHDR."""
    import base64
    import re
    import struct

    sizes = []
    for data in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html):
        header = base64.b64decode(data[:44])
        sizes.append(struct.unpack(">II", header[16:24]))
    return sizes


def test_a_mapping_on_hundreds_of_cores_and_chips_keeps_its_plots_readable(tmp_path):
    """One core per chip: a panel per chip and three bars per core made figures tens of thousands of
    pixels wide (SDT-8-768 on 312 chips: 87,105 px). Every plot now stays within 16 inches."""
    from mapping_helpers import small_target

    target = small_target(neurons_per_core=512, mesh={"mesh_x": 1, "mesh_y": 1, "chips_x": 4, "chips_y": 4,
                                                      "max_chips": 10_000})
    result = map_model(statten_graph(), target, 2)
    chips = {c.chip for c in result.cores}
    assert len(result.cores) > 150 and len(chips) > 8
    write_mapping_report(tmp_path, statten_model(), result)
    html = (tmp_path / "report.html").read_text()
    assert f"Placement on all {len(chips)} chips" in html
    sizes = _png_sizes(html)
    assert len(sizes) == 3 and all(w <= 16 * 90 + 200 and h <= 16 * 90 + 200 for w, h in sizes), sizes
