"""The architecture the backend loads is the target's, with only the 'input' units each core uses."""
from __future__ import annotations

import pytest

from sanafe_nets import small_loihi
from statten_hw.simulator.sanafe.build import load_hardware
from statten_hw.simulator.sanafe.plan import REPLAYED, SYNAPSES, GroupPlan, LayerPlan
from statten_hw.targets.sanafe import read_architecture

sanafe = pytest.importorskip("sanafe")


def test_cut_architecture_keeps_every_core_in_place(tmp_path):
    source = small_loihi(tmp_path)
    arch = read_architecture(source)
    plans = {"in": LayerPlan("in", "input", REPLAYED, 1, 1, (7,), ""),
             "lif": LayerPlan("lif", "lif", SYNAPSES, 2, 1, (5,), "")}
    groups = [GroupPlan("in#0", "in", 0, 7, 3, None), GroupPlan("lif#0", "lif", 0, 5, 3, 0)]
    folder = tmp_path / "cut"
    folder.mkdir()
    cut, full = load_hardware(sanafe, arch, groups, plans, folder), sanafe.load_arch(str(source))
    assert [c.name for c in cut.cores()] == [c.name for c in full.cores()]
    assert [t.name for t in cut.tiles] == [t.name for t in full.tiles]
    units = [[u.name for u in c.pipeline_hw] for c in cut.cores()]
    inputs = [[n for n in names if n.startswith(arch.input_unit)] for names in units]
    assert inputs[3] == [f"{arch.input_unit}[{i}]" for i in range(7)]  # the core with the replayed group
    assert all(not names for k, names in enumerate(inputs) if k != 3)
    others = [[n for n in names if not n.startswith(arch.input_unit)] for names in units]
    assert others == [[u.name for u in c.pipeline_hw if not u.name.startswith(arch.input_unit)] for c in full.cores()]
