"""Broken target files: each is refused with a `TargetError` naming the file and the dotted field."""
from __future__ import annotations

import re
from importlib import resources

import pytest

from statten_hw.errors import TargetError
from statten_hw.targets import BUILTIN_TARGETS, load_target

VALID = """\
name = "testchip"
description = "a valid target that each case breaks in one place"
execution = "step"

[mesh]
mesh_x = 4
mesh_y = 4
chips_x = 2
chips_y = 2

[core]
neurons_per_core = 1024
synapse_bytes_per_core = 65536
buffer_bytes_per_core = 16384
fan_in = 1024
fan_out = 1024

[precision]
weight_bits = 8
weight_exponent_bits = 0
state_bits = 16
decay_bits = 12

[timing]
clock_hz = 1.0e8
sop_cycles = 1
neuron_update_cycles = 2
spike_packet_cycles = 1
hop_cycles = 1
barrier_cycles = 10

[energy]
sop_pj = 1.0
mac_pj = 4.0
neuron_update_pj = 2.0
sram_read_byte_pj = 0.5
sram_write_byte_pj = 0.6
noc_hop_pj = 1.5
"""


def _drop_section(text: str, section: str) -> str:
    return re.sub(rf"\[{section}\]\n(?:[^\[\n][^\n]*\n)*\n?", "", text)


# (id, broken TOML text, dotted field the error must name)
CASES = [
    # missing
    ("missing-name", VALID.replace('name = "testchip"\n', ""), "name"),
    ("missing-execution", VALID.replace('execution = "step"\n', ""), "execution"),
    ("missing-neurons", VALID.replace("neurons_per_core = 1024\n", ""), "core.neurons_per_core"),
    ("missing-clock", VALID.replace("clock_hz = 1.0e8\n", ""), "timing.clock_hz"),
    ("missing-sop-energy", VALID.replace("sop_pj = 1.0\n", ""), "energy.sop_pj"),
    ("missing-section", _drop_section(VALID, "precision"), "precision"),
    # negative or zero
    ("negative-neurons", VALID.replace("neurons_per_core = 1024", "neurons_per_core = -5"), "core.neurons_per_core"),
    ("zero-mesh", VALID.replace("mesh_x = 4", "mesh_x = 0"), "mesh.mesh_x"),
    ("negative-buffer", VALID.replace("buffer_bytes_per_core = 16384", "buffer_bytes_per_core = -1"),
     "core.buffer_bytes_per_core"),
    ("zero-clock", VALID.replace("clock_hz = 1.0e8", "clock_hz = 0.0"), "timing.clock_hz"),
    ("denormal-clock", VALID.replace("clock_hz = 1.0e8", "clock_hz = 5e-324"), "timing.clock_hz"),  # NaN reports
    ("negative-sop-energy", VALID.replace("sop_pj = 1.0", "sop_pj = -0.9"), "energy.sop_pj"),
    ("negative-hop-energy", VALID.replace("noc_hop_pj = 1.5", "noc_hop_pj = -1"), "energy.noc_hop_pj"),
    ("negative-static", VALID + "static_power_mw = -3.0\n", "energy.static_power_mw"),
    ("too-wide-weight", VALID.replace("weight_bits = 8", "weight_bits = 65"), "precision.weight_bits"),
    ("nan-energy", VALID.replace("mac_pj = 4.0", "mac_pj = nan"), "energy.mac_pj"),
    ("inf-cycles", VALID.replace("sop_cycles = 1", "sop_cycles = inf"), "timing.sop_cycles"),
    # past int64 (counts times these numbers must stay finite), also where an integer rounds up to 2^63 as a float
    ("huge-energy", VALID.replace("sop_pj = 1.0", "sop_pj = 1e308"), "energy.sop_pj"),
    ("int-rounding-past-int64", VALID.replace("clock_hz = 1.0e8", "clock_hz = 9223372036854775296"), "timing.clock_hz"),
    ("packed-wider-than-slot", VALID.replace("decay_bits = 12", "decay_bits = 12\nweight_bits_min = 9"),
     "precision.weight_bits_min"),
    ("max-chips-below-grid", VALID.replace("chips_y = 2\n", "chips_y = 2\nmax_chips = 3\n"), "mesh.max_chips"),
    # too large to place (a mesh 20,000 wide cost 6.8 GB to map one core, as placement keeps per-axis tables)
    ("mesh-too-wide", VALID.replace("mesh_x = 4", "mesh_x = 20000"), "mesh.mesh_x"),
    ("too-many-cores-per-chip", VALID.replace("chips_y = 2\n", "chips_y = 2\ncores_per_tile = 70000\n"),
     "mesh.cores_per_tile"),
    # unknown
    ("unknown-core-key", VALID.replace("fan_in = 1024", "fan_in = 1024\nfanin = 7"), "core.fanin"),
    ("typo-key", VALID.replace("neurons_per_core", "neuron_per_core"), "core.neuron_per_core"),
    ("unknown-section", VALID + "\n[cache]\nbytes = 4\n", "cache"),
    ("unknown-top-level", VALID.replace('execution = "step"', 'execution = "step"\nvendor = "acme"'), "vendor"),
    # wrong type
    ("string-for-int", VALID.replace("fan_in = 1024", 'fan_in = "many"'), "core.fan_in"),
    ("float-for-int", VALID.replace("state_bits = 16", "state_bits = 16.5"), "precision.state_bits"),
    ("bool-for-float", VALID.replace("sop_pj = 1.0", "sop_pj = true"), "energy.sop_pj"),
    ("string-for-float", VALID.replace("hop_cycles = 1", 'hop_cycles = "1"'), "timing.hop_cycles"),
    ("array-for-int", VALID.replace("mesh_y = 4", "mesh_y = [4, 4]"), "mesh.mesh_y"),
    ("int-for-name", VALID.replace('name = "testchip"', "name = 5"), "name"),
    ("empty-name", VALID.replace('name = "testchip"', 'name = "  "'), "name"),
    ("section-not-table", VALID.replace("[mesh]\nmesh_x = 4\nmesh_y = 4\nchips_x = 2\nchips_y = 2\n", "mesh = 3\n"),
     "mesh"),
    # bad execution style
    ("bad-style", VALID.replace('execution = "step"', 'execution = "pipelined"'), "execution"),
    ("style-wrong-case", VALID.replace('execution = "step"', 'execution = "STEP"'), "execution"),
    ("style-not-string", VALID.replace('execution = "step"', "execution = 1"), "execution"),
]


def _line_of(text: str, line: str) -> int:
    return text.splitlines().index(line) + 1


SYNTAX_CASES = [
    ("missing-value", VALID.replace("fan_out = 1024", "fan_out ="), "fan_out ="),
    ("unterminated-string", VALID.replace('name = "testchip"', 'name = "testchip'), 'name = "testchip'),
    ("duplicate-key", VALID.replace("state_bits = 16", "state_bits = 16\nstate_bits = 17"), "state_bits = 17"),
    ("bad-header", VALID.replace("[timing]", "[timing"), "[timing"),
]


def _write(tmp_path, text: str):
    path = tmp_path / "broken.toml"
    path.write_text(text)
    return path


def test_valid_base_loads(tmp_path):
    assert load_target(_write(tmp_path, VALID)).name == "testchip"


@pytest.mark.parametrize("text,field", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_broken_target_names_the_field(tmp_path, text, field):
    path = _write(tmp_path, text)
    with pytest.raises(TargetError, match=re.escape(field)) as info:
        load_target(path)
    err = info.value
    assert err.source == str(path) and str(path) in str(err)
    assert field in [f for f, _ in err.problems]
    assert "\n" not in str(err)


@pytest.mark.parametrize("text,bad_line", [c[1:] for c in SYNTAX_CASES], ids=[c[0] for c in SYNTAX_CASES])
def test_syntax_error_names_file_and_line(tmp_path, text, bad_line):
    path = _write(tmp_path, text)
    line = _line_of(text, bad_line)
    with pytest.raises(TargetError, match=rf"line {line}\b") as info:
        load_target(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_all_problems_are_reported_at_once(tmp_path):
    text = (VALID.replace("neurons_per_core = 1024", "neurons_per_core = -1")
                 .replace('execution = "step"', 'execution = "warp"')
                 .replace("sop_pj = 1.0", 'sop_pj = "cheap"')
                 .replace("hop_cycles = 1\n", "")
                 .replace("fan_in = 1024", "fan_in = 1024\nfan_inn = 2"))
    with pytest.raises(TargetError) as info:
        load_target(_write(tmp_path, text))
    err = info.value
    expected = {"execution", "core.neurons_per_core", "core.fan_inn", "timing.hop_cycles", "energy.sop_pj"}
    assert {f for f, _ in err.problems} == expected
    message = str(err)
    assert "\n" not in message and message.count("; ") == len(expected) - 1
    assert all(f in err.field for f in expected)


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(TargetError, match="no such file"):
        load_target(tmp_path / "nope.toml")


@pytest.mark.parametrize("name", BUILTIN_TARGETS)
@pytest.mark.parametrize("key,section", [("neurons_per_core", "core"), ("sop_pj", "energy"),
                                         ("clock_hz", "timing"), ("mesh_x", "mesh")])
def test_builtin_with_negative_value_is_refused(tmp_path, name, key, section):
    text = resources.files("statten_hw.targets").joinpath("builtin", f"{name}.toml").read_text()
    broken, n = re.subn(rf"^{key} = [^ \n]+", f"{key} = -1", text, flags=re.M)
    assert n == 1
    with pytest.raises(TargetError, match=re.escape(f"{section}.{key}")):
        load_target(_write(tmp_path, broken))
