"""Loading targets: the built-ins carry their cited numbers, user files load, the schema holds.

Expected numbers are the published figures cited in each built-in's comments, written here from
the sources (not read back from the TOML), so a typo in a TOML file fails a test.
"""
from __future__ import annotations

import dataclasses
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statten_hw.errors import TargetError
from statten_hw.targets import (
    BUILTIN_TARGETS, CoreLimits, Energy, ExecutionStyle, Mesh, Precision, Target, Timing,
    list_targets, load_target, parse_target,
)
from statten_hw.targets.schema import MAX_CORES_PER_CHIP, SECTIONS

KIB = 1024


@pytest.fixture(params=BUILTIN_TARGETS)
def builtin(request) -> Target:
    return load_target(request.param)


def test_builtin_loads_and_round_trips(builtin):
    assert isinstance(builtin, Target)
    assert builtin.name in BUILTIN_TARGETS
    assert parse_target(builtin.to_dict(), "round trip") == builtin


def test_builtin_is_frozen(builtin):
    with pytest.raises(dataclasses.FrozenInstanceError):
        builtin.core.neurons_per_core = 1  # type: ignore[misc]


def test_list_targets_names_every_builtin():
    listed = list_targets()
    assert [name for name, _ in listed] == list(BUILTIN_TARGETS)
    assert all(desc.strip() and "\n" not in desc for _, desc in listed)


def test_loihi2_published_figures():
    t = load_target("loihi2")
    assert t.execution is ExecutionStyle.STEP
    # Loihi 2 brief / Orchard et al. 2021: 128 neuromorphic cores, up to 1M neurons per chip.
    assert t.cores_per_chip == 128
    assert (t.mesh.mesh_x, t.mesh.mesh_y) == (8, 16)
    assert t.core.neurons_per_core == 8192
    assert t.core.neurons_per_core * t.cores_per_chip == 2**20  # "1M neurons"
    # 128 KiB synapse memory (approximation), the rest of the 192 KB core memory as buffer.
    assert t.core.synapse_bytes_per_core == 128 * KIB
    assert t.core.synapse_bytes_per_core + t.core.buffer_bytes_per_core == 192 * KIB
    # Kapoho Point 8 chips; Hala Point 1,152 chips.
    assert t.mesh.chips == 8
    assert t.mesh.max_chips == 1152
    # 8-bit weights with an exponent, 24-bit state, 12-bit decays.
    assert (t.precision.weight_bits, t.precision.state_bits, t.precision.decay_bits) == (8, 24, 12)
    assert t.precision.weight_exponent_bits > 0
    # Davies et al. 2018 (Loihi 1 stand-ins): 23.6 pJ/SOP, 52 pJ/neuron update, hops 3.0/4.0 pJ and
    # 4.1/6.5 ns (east-west / north-south), 3.5 ns per SOP, at 1 cycle = 1 ns.
    assert t.energy.sop_pj == pytest.approx(23.6)
    assert t.energy.neuron_update_pj == pytest.approx(52.0)
    assert t.energy.noc_hop_pj == pytest.approx((3.0 + 4.0) / 2)
    assert t.timing.clock_hz == pytest.approx(1e9)
    assert t.timing.sop_cycles == pytest.approx(3.5)
    assert t.timing.hop_cycles == pytest.approx((4.1 + 6.5) / 2)


def test_layerwise_figures():
    t = load_target("layerwise")
    assert t.execution is ExecutionStyle.LAYER
    assert t.energy.sop_pj == pytest.approx(0.96)  # ISCAS'24 chip, 0.96 pJ/SOP
    assert t.core.buffer_bytes_per_core == 256 * KIB
    loihi2 = load_target("loihi2")
    # Fewer, larger cores than Loihi 2.
    assert t.cores_per_chip < loihi2.cores_per_chip
    assert t.core.buffer_bytes_per_core > loihi2.core.buffer_bytes_per_core
    assert t.core.neurons_per_core > loihi2.core.neurons_per_core


def test_paper45nm_is_the_papers_energy_model():
    t = load_target("paper45nm")
    # STAtten paper / Horowitz 2014 (45 nm): E_AC = 0.9 pJ (fp32 add), E_MAC = 4.6 pJ (3.7 mult + 0.9 add).
    assert t.energy.sop_pj == pytest.approx(0.9)
    assert t.energy.mac_pj == pytest.approx(3.7 + 0.9)
    # Only synaptic operations are counted.
    others = dataclasses.replace(t.energy, sop_pj=0.0, mac_pj=0.0)
    assert all(v == 0 for v in dataclasses.asdict(others).values())
    # An energy model, not a chip: no limit is reachable.
    assert all(v >= 2**40 for v in dataclasses.asdict(t.core).values())


USER_TOML = """
name = "mychip"
description = "a user's chip"
execution = "layer"

[mesh]
mesh_x = 2
mesh_y = 3

[core]
neurons_per_core = 1000
synapse_bytes_per_core = 32768
buffer_bytes_per_core = 0
fan_in = 256
fan_out = 128

[precision]
weight_bits = 4
weight_exponent_bits = 0
state_bits = 16
decay_bits = 8

[timing]
clock_hz = 100_000_000
sop_cycles = 1
neuron_update_cycles = 2
spike_packet_cycles = 3
hop_cycles = 4
barrier_cycles = 5

[energy]
sop_pj = 0.5
mac_pj = 2
neuron_update_pj = 1.5
sram_read_byte_pj = 0.25
sram_write_byte_pj = 0.3
noc_hop_pj = 0.75
"""


@pytest.mark.parametrize("as_str", [True, False], ids=["str", "Path"])
def test_user_toml_loads(tmp_path, as_str):
    path = tmp_path / "mychip.toml"
    path.write_text(USER_TOML)
    t = load_target(str(path) if as_str else path)
    assert t == Target(
        name="mychip", description="a user's chip", execution=ExecutionStyle.LAYER,
        mesh=Mesh(mesh_x=2, mesh_y=3, chips_x=1, chips_y=1, max_chips=0),
        core=CoreLimits(1000, 32768, 0, 256, 128),
        precision=Precision(4, 0, 16, 8),
        timing=Timing(1e8, 1.0, 2.0, 3.0, 4.0, 5.0),
        energy=Energy(0.5, 2.0, 1.5, 0.25, 0.3, 0.75, static_power_mw=0.0),
    )
    assert t.cores_per_chip == 6
    assert t.mesh.chip_limit == 1  # max_chips left out = chips_x * chips_y
    assert isinstance(t.timing.sop_cycles, float)  # TOML integers become floats where the unit is


def test_unknown_name_is_refused():
    with pytest.raises(TargetError, match="built-ins: loihi2, layerwise, paper45nm"):
        load_target("loihi3")


# ---- property tests: random values inside the schema load, values below a bound are refused ----

def _numeric_fields():
    """(section, field, python type, metadata) for every numeric field of every section."""
    import typing
    out = []
    for section, cls in SECTIONS.items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            out.append((section, f.name, hints[f.name], f.metadata))
    return out


NUMERIC = _numeric_fields()


def _valid_value(kind, meta):
    low = 0 if meta["bound"] == "nonnegative" else 1
    if kind is int:
        return st.integers(min_value=low, max_value=int(meta["maximum"] or 2**40))
    return st.floats(min_value=meta.get("minimum") or (0.0 if low == 0 else 1e-6), max_value=1e12,
                     allow_nan=False, allow_infinity=False)


@st.composite
def valid_targets(draw):
    data = {"name": "random", "description": "hypothesis", "execution": draw(st.sampled_from(["step", "layer"]))}
    for section, name, kind, meta in NUMERIC:
        data.setdefault(section, {})[name] = draw(_valid_value(kind, meta))
    mesh = data["mesh"]
    # A chip grid whose size times 3 still fits TOML's 64-bit integers (2^40 x 2^40 chips did not).
    mesh["chips_x"], mesh["chips_y"] = (draw(st.integers(1, 1 << 20)) for _ in range(2))
    mesh["max_chips"] = mesh["chips_x"] * mesh["chips_y"] * draw(st.sampled_from([0, 1, 3]))
    mesh["cores_per_tile"] = draw(st.integers(1, max(1, MAX_CORES_PER_CHIP // (mesh["mesh_x"] * mesh["mesh_y"]))))
    precision = data["precision"]
    precision["weight_bits_min"] = draw(st.integers(0, precision["weight_bits"]))
    return data


def _render(data: dict) -> str:
    """Write the nested dict as TOML (strings JSON-quoted, floats by repr, which TOML reads exactly)."""
    def scalar(v):
        if isinstance(v, str):
            return json.dumps(v)
        return repr(v)
    lines = [f"{k} = {scalar(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for k, v in data.items():
        if isinstance(v, dict):
            lines.append(f"[{k}]")
            lines += [f"{kk} = {scalar(vv)}" for kk, vv in v.items()]
    return "\n".join(lines) + "\n"


@settings(max_examples=60, deadline=None)
@given(data=valid_targets())
def test_random_valid_targets_load(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("valid") / "random.toml"
    path.write_text(_render(data))
    t = load_target(path)
    for section, name, kind, _ in NUMERIC:
        value = getattr(getattr(t, section), name)
        assert value == data[section][name] and isinstance(value, kind)


@settings(max_examples=60, deadline=None)
@given(data=valid_targets(), which=st.sampled_from(NUMERIC), st_data=st.data())
def test_random_out_of_bound_values_are_refused(tmp_path_factory, data, which, st_data):
    section, name, kind, meta = which
    if kind is int:
        bad = st_data.draw(st.integers(max_value=-1 if meta["bound"] == "nonnegative" else 0, min_value=-2**40))
    else:
        bad = st_data.draw(st.floats(max_value=-1e-9, min_value=-1e12) if meta["bound"] == "nonnegative"
                           else st.floats(max_value=0.0, min_value=-1e12))
    data[section][name] = bad
    path = tmp_path_factory.mktemp("invalid") / "random.toml"
    path.write_text(_render(data))
    with pytest.raises(TargetError, match=f"{section}\\.{name}") as info:
        load_target(path)
    assert str(path) in str(info.value)
    assert math.isfinite(bad)


@pytest.mark.parametrize("zeroed,expected", [((), ()), (("timing",), ("timing",)), (("energy",), ("energy",)),
                                             (("timing", "energy"), ("timing", "energy"))])
def test_uncosted_names_the_sections_whose_every_cost_is_zero(zeroed, expected):
    data = load_target("loihi2").to_dict()
    for section in zeroed:
        data[section] = {k: (v if k == "clock_hz" else 0) for k, v in data[section].items()}
    assert parse_target(data, "zeroed").uncosted() == expected


def test_one_nonzero_cost_makes_a_section_costed():
    data = load_target("loihi2").to_dict()
    data["energy"] = {k: 0 for k in data["energy"]} | {"static_power_mw": 1.0}
    assert parse_target(data, "static only").uncosted() == ()
