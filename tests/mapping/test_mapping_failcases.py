"""A network that cannot fit: MappingError names the layer and the limit (custom TOML targets)."""
from __future__ import annotations

import pytest

from mapping_helpers import statten_graph, write_target_toml
from statten_hw.errors import MappingError
from statten_hw.mapping import map_model


@pytest.mark.parametrize("overrides, layer, limit, used, cap", [
    # The first conv reads 3·3·3 = 27 inputs per neuron.
    ({"core__fan_in": 16}, "patch_embed.proj_lif", "fan-in per neuron", 27, 16),
    # proj_conv2 (16 -> 32, 3x3): a 144-byte kernel per channel does not fit 100 bytes.
    ({"core__synapse_bytes_per_core": 100}, "patch_embed.proj_lif2", "synapse bytes", 144, 100),
    # 1 neuron of 24-bit state is 3 bytes.
    ({"core__buffer_bytes_per_core": 2}, "patch_embed.proj_lif", "buffer bytes (state + buffers)", 3, 2),
    # 64 neurons per core on one 2x2 chip: 143,434 neurons need 2,242 cores, the chip has 4.
    ({"core__neurons_per_core": 64, "mesh__mesh_x": 2, "mesh__mesh_y": 2, "mesh__chips_x": 1, "mesh__chips_y": 1,
      "mesh__max_chips": 1}, "patch_embed.proj_lif", "cores in the system", 2242, 4),
])
def test_infeasible_target_names_layer_and_limit(tmp_path, overrides, layer, limit, used, cap):
    path = write_target_toml(tmp_path / "tiny.toml", **overrides)
    with pytest.raises(MappingError) as info:
        map_model(statten_graph(), path, 2)
    err = info.value
    assert (err.layer, err.limit, err.used, err.cap) == (layer, limit, used, cap)
    assert repr(layer) in str(err) and limit in str(err)
