"""SANA-FE architecture files as targets: the shipped ones, a user's own, broken ones.

Expected values are read from the YAML in each test with ``yaml.safe_load`` (and counted with
SANA-FE's own ``load_arch`` where it can say), never from the converter under test.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from statten_hw.errors import TargetError
from statten_hw.mapping.placement import hops, slot_position
from statten_hw.targets import load_target, parse_target
from statten_hw.targets.sanafe import DEFAULTS, SHIPPED, read_architecture, shipped_path

sanafe = pytest.importorskip("sanafe")


def _yaml(name: str) -> dict:
    return yaml.safe_load(shipped_path(name).read_text())["architecture"]


def _count(name: str) -> int:
    m = re.search(r"\[(\d+)\.\.(\d+)\]$", name)
    return int(m[2]) - int(m[1]) + 1 if m else 1


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_file_loads_with_its_values(name):
    raw = _yaml(name)
    tile = raw["tile"][0]
    core = tile["core"][0]
    first = {s: core[s][0]["attributes"] for s in ("synapse", "dendrite", "axon_in", "axon_out")}
    soma = next(u["attributes"] for u in core["soma"] if u["attributes"]["model"] != "input")
    t = load_target(f"sanafe:{name}")

    arch = sanafe.load_arch(str(shipped_path(name)))  # SANA-FE's own reading of the same file
    assert t.mesh.mesh_x * t.mesh.mesh_y == len(arch.tiles)
    assert t.cores_per_chip == len(arch.cores())
    assert (t.mesh.mesh_x, t.mesh.mesh_y) == (raw["attributes"]["width"], raw["attributes"]["height"])
    assert t.mesh.cores_per_tile == _count(core["name"])
    assert t.core.neurons_per_core == core["attributes"]["max_neurons_supported"]
    e, c = t.energy, t.timing
    assert e.sop_pj == pytest.approx((first["synapse"]["energy_process_spike"] + first["dendrite"]["energy_update"]) * 1e12)
    assert c.sop_cycles == pytest.approx((first["synapse"]["latency_process_spike"] + first["dendrite"]["latency_update"]) * 1e9)
    assert e.neuron_access_pj == pytest.approx(soma["energy_access_neuron"] * 1e12)
    assert e.neuron_update_pj == pytest.approx(soma["energy_update_neuron"] * 1e12)
    assert e.spike_pj == pytest.approx(soma["energy_spike_out"] * 1e12)
    assert c.neuron_access_cycles == pytest.approx(soma["latency_access_neuron"] * 1e9)
    assert c.neuron_update_cycles == pytest.approx(soma["latency_update_neuron"] * 1e9)
    assert c.spike_cycles == pytest.approx(soma["latency_spike_out"] * 1e9)
    assert e.packet_pj == pytest.approx((first["axon_out"]["energy_message_out"] + first["axon_in"]["energy_message_in"]) * 1e12)
    assert c.spike_packet_cycles == pytest.approx(first["axon_out"]["latency_message_out"] * 1e9)
    assert c.packet_receive_cycles == pytest.approx(first["axon_in"]["latency_message_in"] * 1e9)
    hop = tile["attributes"]
    assert e.noc_hop_pj == pytest.approx(sum(hop[f"energy_{d}_hop"] for d in ("north", "east", "south", "west")) / 4 * 1e12)
    assert c.hop_cycles == pytest.approx(sum(hop[f"latency_{d}_hop"] for d in ("north", "east", "south", "west")) / 4 * 1e9)
    sync = raw["attributes"]["latency_sync"]
    assert c.barrier_cycles == pytest.approx(max(sync.values()) * 1e9 if isinstance(sync, dict) else sync * 1e9)
    assert t.execution.value == "step" and t.mesh.chip_limit == 1


def test_loihi_provenance_lists_defaults_and_what_is_not_modelled():
    t = load_target("sanafe:loihi")
    p = t.provenance
    assert p.source == str(shipped_path("loihi")) and "SANA-FE" in p.format
    assert {d.split(" = ")[0] for d in p.defaults} >= set(DEFAULTS)
    assert t.core.synapse_bytes_per_core == DEFAULTS["core.synapse_bytes_per_core"][0]
    notes = " | ".join(p.unmodelled)
    for expected in ("link_buffer_size = 16", "latency_sync table", "hop costs differ by direction",
                     "loihi_sparse_synapse, loihi_conv_synapse", "loihi_dendrites_delay", "buffer_position = 'soma'",
                     "1024 'input' units"):
        assert expected in notes
    assert all("\n" not in n for n in p.unmodelled + p.defaults)


def test_truenorth_soma_model_is_flagged():
    notes = " | ".join(load_target("sanafe:truenorth").provenance.unmodelled)
    assert "model 'truenorth'" in notes and "leaky_integrate_fire" in notes


def test_sync_table_lookup_is_sanafes():
    # loihi.yaml: {1: 0.6 us, 2: 1.0 us, 4: 1.4 us, 29: 1.8 us}; the largest key <= tiles in use wins.
    arch = read_architecture(shipped_path("loihi"))
    assert [arch.sync_seconds(n) for n in (0, 1, 3, 4, 28, 29, 32)] == [0.6e-6, 0.6e-6, 1.0e-6, 1.4e-6, 1.4e-6,
                                                                          1.8e-6, 1.8e-6]


def test_tiles_fill_columns_and_slots_share_tiles():
    arch = read_architecture(shipped_path("loihi"))
    assert [arch.tile_position(k) for k in (0, 1, 3, 4, 31)] == [(0, 0), (0, 1), (0, 3), (1, 0), (7, 3)]
    t = load_target("sanafe:loihi")
    # Four consecutive slots share a tile (0 hops between them); the next tile is one hop away.
    assert [slot_position(s, t) for s in (0, 3, 4, 8 * 4)] == [(0, 0, 0), (0, 0, 0), (0, 1, 0), (0, 0, 1)]
    assert hops(slot_position(0, t), slot_position(3, t), t) == 0
    assert hops(slot_position(0, t), slot_position(127, t), t) == 7 + 3


def test_round_trip_through_the_toml_layout():
    t = load_target("sanafe:loihi")
    assert parse_target(t.to_dict(), "round trip") == dataclasses.replace(t, provenance=None)


USER_YAML = """\
architecture:
  name: my_chip
  attributes:
    width: 2
    height: 1
    link_buffer_size: 2
    sync_model: table
    latency_sync: [1e-7, 2e-7]
  tile:
    - name: t[0..1]
      attributes:
        energy_north_hop: 1e-12
        latency_north_hop: 1e-9
        energy_east_hop: 1e-12
        latency_east_hop: 1e-9
        energy_south_hop: 1e-12
        latency_south_hop: 1e-9
        energy_west_hop: 1e-12
        latency_west_hop: 1e-9
      core:
        - name: c[0..1]
          attributes:
            buffer_position: soma
            max_neurons_supported: 64
          axon_in:
            - name: a_in
              attributes: {energy_message_in: 2.0e-12, latency_message_in: 3.0e-9}
          synapse:
            - name: syn
              attributes: {model: current_based, energy_process_spike: 5.0e-12, latency_process_spike: 6.0e-9}
          dendrite:
            name: den
            attributes: {model: accumulator, energy_update: 1.0e-12, latency_update: 1.0e-9}
          soma:
            - name: lif
              attributes: {model: leaky_integrate_fire, energy_access_neuron: 7.0e-12, latency_access_neuron: 8.0e-9,
                           energy_update_neuron: 9.0e-12, latency_update_neuron: 10.0e-9,
                           energy_spike_out: 11.0e-12, latency_spike_out: 12.0e-9}
          axon_out:
            - name: a_out
              attributes: {energy_message_out: 13.0e-12, latency_message_out: 14.0e-9}
"""


@pytest.mark.parametrize("suffix", [".yaml", ".yml"])
def test_user_file_loads(tmp_path, suffix):
    path = tmp_path / f"mine{suffix}"
    path.write_text(USER_YAML)
    t = load_target(path)
    assert t.name == "my_chip"
    assert (t.mesh.mesh_x, t.mesh.mesh_y, t.mesh.cores_per_tile, t.cores_per_chip) == (2, 1, 2, 4)
    assert t.core.neurons_per_core == 64
    # Values as written above: 5 + 1 pJ per synaptic event, 13 + 2 pJ per packet, unquoted 1e-7 is a number.
    assert (t.energy.sop_pj, t.timing.sop_cycles) == (pytest.approx(6.0), pytest.approx(7.0))
    assert (t.energy.packet_pj, t.timing.spike_packet_cycles, t.timing.packet_receive_cycles) == (
        pytest.approx(15.0), pytest.approx(14.0), pytest.approx(3.0))
    assert t.timing.barrier_cycles == pytest.approx(200.0)
    assert read_architecture(path).sync_s == ((0, 1e-7), (1, 2e-7))
    assert "input" not in " ".join(t.provenance.unmodelled)


def _broken(old: str, new: str) -> str:
    assert old in USER_YAML
    return USER_YAML.replace(old, new, 1)


BROKEN = [
    ("syntax", _broken("width: 2", "width: [2"), "(syntax)", "line"),
    ("not-a-mapping", "- just\n- a list\n", "architecture", "top level"),
    ("no-architecture", "chip: {}\n", "architecture", "missing section"),
    ("no-width", _broken("    width: 2\n", ""), "architecture.attributes.width", "missing required key"),
    ("zero-height", _broken("height: 1", "height: 0"), "architecture.attributes.height", ">= 1"),
    ("torus", _broken("    width: 2\n", "    width: 2\n    topology: torus\n"), "architecture.attributes.topology",
     "only 'mesh'"),
    ("missing-hop", _broken("        latency_west_hop: 1e-9\n", ""),
     "architecture.tile[0].attributes.latency_west_hop", "missing required key"),
    ("text-energy", _broken("energy_process_spike: 5.0e-12", "energy_process_spike: cheap"),
     "architecture.tile[0].core[0].synapse[0].attributes.energy_process_spike", "must be a number"),
    ("negative-latency", _broken("latency_spike_out: 12.0e-9", "latency_spike_out: -1.0e-9"),
     "architecture.tile[0].core[0].soma[0].attributes.latency_spike_out", ">= 0"),
    ("missing-soma-cost", _broken("energy_access_neuron: 7.0e-12, ", ""),
     "architecture.tile[0].core[0].soma[0].attributes.energy_access_neuron", "missing required key"),
    ("no-axon-out", _broken("          axon_out:\n            - name: a_out\n", "          other:\n            - name: a_out\n"),
     "architecture.tile[0].core[0].axon_out", "missing section"),
    ("no-neuron-limit", _broken("            max_neurons_supported: 64\n", ""),
     "architecture.tile[0].core[0].attributes.max_neurons_supported", "missing required key"),
    ("bad-buffer", _broken("buffer_position: soma", "buffer_position: synapse"),
     "architecture.tile[0].core[0].attributes.buffer_position", "must be one of"),
    # SANA-FE's other buffer places integrate per neuron (bit-exactness and dendrite costs change there).
    ("dendrite-buffer", _broken("buffer_position: soma", "buffer_position: dendrite"),
     "architecture.tile[0].core[0].attributes.buffer_position", "before the soma only"),
    ("buffer-in-unit", _broken("buffer_position: soma", "buffer_position: soma\n            buffer_inside_unit: true"),
     "architecture.tile[0].core[0].attributes.buffer_inside_unit", "outside the unit only"),
    ("only-inputs", _broken("model: leaky_integrate_fire", "model: input"), "architecture.tile[0].core[0].soma",
     "no soma unit for neurons"),
    ("too-few-tiles", _broken("t[0..1]", "t[0..0]"), "architecture.attributes.width", "do not fill"),
    ("empty-range", _broken("t[0..1]", "t[1..0]"), "architecture.tile[0].name", "empty range"),
    ("huge-range", _broken("t[0..1]", "t[0..99999999999]"), "architecture.tile[0].name",
     "a range of 100,000,000,000 units exceeds the limit of 65,536"),  # was a MemoryError (review)
    ("table-missing", _broken("    latency_sync: [1e-7, 2e-7]\n", ""), "architecture.attributes.latency_sync",
     "required by sync_model 'table'"),
    ("bad-sync-model", _broken("sync_model: table", "sync_model: magic"), "architecture.attributes.sync_model",
     "'fixed' or 'table'"),
]


@pytest.mark.parametrize("text,field,problem", [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN])
def test_broken_file_is_refused_naming_file_and_key(tmp_path, text, field, problem):
    path = tmp_path / "arch.yaml"
    path.write_text(text)
    with pytest.raises(TargetError) as info:
        load_target(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    assert field in info.value.field
    assert problem in message


def test_every_problem_is_listed_at_once(tmp_path):
    text = _broken("energy_spike_out: 11.0e-12", "energy_spike_out: x").replace("latency_message_out: 14.0e-9", "")
    path = tmp_path / "arch.yaml"
    path.write_text(text)
    with pytest.raises(TargetError, match="2 problems") as info:
        load_target(path)
    assert {f for f, _ in info.value.problems} == {
        "architecture.tile[0].core[0].soma[0].attributes.energy_spike_out",
        "architecture.tile[0].core[0].axon_out[0].attributes.latency_message_out"}


def test_tiles_with_different_core_counts_are_refused(tmp_path):
    two_tiles = _broken("    - name: t[0..1]\n", "    - name: t0\n")
    second = two_tiles[two_tiles.index("    - name: t0\n"):].replace("t0", "t1").replace("c[0..1]", "c0")
    path = tmp_path / "arch.yaml"
    path.write_text(two_tiles + second)
    with pytest.raises(TargetError, match=r"different numbers of cores \(\[1, 2\]\)"):
        load_target(path)


@pytest.mark.parametrize("name,match", [("sanafe:loihi3", "shipped: loihi, truenorth"),
                                        (Path("no/such/arch.yaml"), "no such file")])
def test_unknown_architecture_is_refused(name, match):
    with pytest.raises(TargetError, match=match):
        load_target(name)
