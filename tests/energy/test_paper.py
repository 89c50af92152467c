"""The paper's energy formulas (STAtten CVPR Table 7 / arXiv Table 6) against hand arithmetic."""
from __future__ import annotations

import json

import pytest

from conftest import official_checkpoint
from statten_hw import ModelConfig, load_checkpoint
from statten_hw.energy import (
    attention_energy,
    energy_table,
    layer_geometry,
    load_rate_profile,
    paper_energy,
    rate_keys,
)
from statten_hw.models import build_model

E_MAC, E_AC = 4.6e-12, 0.9e-12

TINY = ModelConfig(family="statten", attention="STAtten", depth=1, dim=16, heads=2, timesteps=2,
                   block_size=2, img_size=8, in_channels=3, num_classes=4)


def _profile(tmp_path, model, overrides=None, fill=0.0):
    data = {k: [fill] * n for k, n in rate_keys(model).items()}
    data.update(overrides or {})
    path = tmp_path / "rates.json"
    path.write_text(json.dumps(data))
    return load_rate_profile(path, model)


def test_tiny_model_energy_by_hand(tmp_path):
    model = build_model(TINY)
    rates = _profile(tmp_path, model, {
        "block.0.attn.q_conv": [0.25, 0.5],
        "block.0.attn.q_lif": [0.5, 0.5], "block.0.attn.k_lif": [0.25, 0.25], "block.0.attn.v_lif": [0.0, 0.5],
        "head": [1.0, 0.0],
    })
    rows = {r["name"]: r for r in energy_table(paper_energy(model, rates))}
    # First conv: 3x3, 8x8 output, 3 -> dim/8 = 2 channels: F = 9*64*3*2 = 3456; MAC on both of T = 2 steps.
    first = E_MAC * 3456 * 2                                   # 3.17952e-11 J
    # q_conv: 1x1 on the 2x2 token grid (8 -> 4 -> 2 with pooling "0011"), 16 -> 16: F = 4*256 = 1024;
    # E = 0.9 pJ * 1024 * (0.25 + 0.5).
    q_conv = E_AC * 1024 * 0.75                                # 6.912e-10 J
    # STAtten: T=2, N=4, D=16; S_Q = 0.5, S_K = 0.25, S_V = 0.25 (means over steps): 0.9 pJ*2*4*256*1.0.
    attn = E_AC * 2 * 4 * 256 * 1.0                            # 1.8432e-9 J
    # head: linear 16 -> 4 on one token per step: F = 64; Σ_t s_t = 1.
    head = E_AC * 64 * 1.0                                     # 5.76e-11 J
    assert rows["patch_embed.proj_conv"]["energy_j"] == pytest.approx(first, rel=1e-12)
    assert rows["patch_embed.proj_conv"]["op"] == "MAC" and rows["patch_embed.proj_conv"]["ops"] == 3456
    assert rows["block.0.attn.q_conv"]["energy_j"] == pytest.approx(q_conv, rel=1e-12)
    assert rows["block.0.attn.q_conv"]["ops"] == 1024
    assert rows["block.0.attn"]["energy_j"] == pytest.approx(attn, rel=1e-12)
    assert rows["head"]["energy_j"] == pytest.approx(head, rel=1e-12)
    # Every other layer had rate 0, so the total is these four terms alone.
    assert paper_energy(model, rates).total_j == pytest.approx(first + q_conv + attn + head, rel=1e-12)


# T = 4, N = 16, D = 64, S_Q = 0.1, S_K = 0.2, S_V = 0.3:
#   STAtten / A2OS2A: 0.9 pJ * 4*16*64²  (=262144) * 0.6          = 1.4155776e-7
#   SDSA:             0.9 pJ * 4*16*64   (=4096)   * 0.3          = 1.10592e-9
#   T_STAtten:        0.9 pJ * 262144 * (0.2*0.3 + 0.1 = 0.16)     = 3.7748736e-8
#   N_STAtten:        0.9 pJ * 4²*16*64  (=16384)  * (0.02 + 0.3)  = 4.718592e-9
#   SSA:              0.9 pJ * 4*16²*64  (=65536)  * 0.6          = 3.538944e-8
@pytest.mark.parametrize("mode, expected", [
    ("STAtten", 1.4155776e-7), ("A2OS2A", 1.4155776e-7), ("SDSA", 1.10592e-9),
    ("T_STAtten", 3.7748736e-8), ("N_STAtten", 4.718592e-9), ("SSA", 3.538944e-8),
])
def test_attention_formulas(mode, expected):
    assert attention_energy(mode, 4, 16, 64, 0.1, 0.2, 0.3) == pytest.approx(expected, rel=1e-12)


def test_sps_conv_flops_of_cifar_fixture():
    model = load_checkpoint(official_checkpoint("statten_cifar_t4_b2"))
    flops = {g.name: g.flops for g in layer_geometry(model)}
    # dim 64: widths 3 -> 8 -> 16 -> 32 -> 64; 32 px, pooling "0011" pools after stage 2 (-> 16 px)
    # and after proj_conv3 (-> 8 px, the token grid). All 3x3, stride 1, padding 1.
    assert flops["patch_embed.proj_conv"] == 3 * 3 * 32 * 32 * 3 * 8      # 221184
    assert flops["patch_embed.proj_conv1"] == 3 * 3 * 32 * 32 * 8 * 16    # 1179648
    assert flops["patch_embed.proj_conv2"] == 3 * 3 * 32 * 32 * 16 * 32   # 4718592
    assert flops["patch_embed.proj_conv3"] == 3 * 3 * 16 * 16 * 32 * 64   # 4718592 (pool after conv)
    assert flops["patch_embed.rpe_conv"] == 3 * 3 * 8 * 8 * 64 * 64       # 2359296
    assert flops["block.0.attn.q_conv"] == 1 * 1 * 8 * 8 * 64 * 64        # 262144
    assert flops["block.0.mlp.fc1_conv"] == 1 * 1 * 8 * 8 * 64 * 256      # 1048576
    assert flops["head"] == 64 * 10


def test_all_ones_profile_gives_dense_ac_energy(tmp_path):
    model = load_checkpoint(official_checkpoint("statten_cifar_t4_b2"))
    report = paper_energy(model, _profile(tmp_path, model, fill=1.0))
    T = 4
    # ΣF of every spike-fed layer: SPS 1179648 + 4718592 + 4718592 + 2359296 = 12976128;
    # per block 4 x 262144 (q, k, v, proj) + 2 x 1048576 (fc1, fc2) = 3145728, two blocks 6291456;
    # head 640. Total 19268224.
    dense = (E_MAC * 221184 * T                       # first conv, MAC, every step
             + E_AC * 19268224 * T                    # every AC layer with s_t = 1
             + 2 * E_AC * T * 64 * 64 ** 2 * 3)       # two STAtten layers, N = 64, D = 64, S = 1
    assert report.total_j == pytest.approx(dense, rel=1e-12)
    for row in report.rows:
        if row.kind != "attention" and row.op == "AC":
            assert row.energy_j == pytest.approx(E_AC * row.ops * T, rel=1e-12), row.name


def test_energy_table_rows_are_plain_and_sum_to_total():
    from statten_hw.energy import measure_rates
    from conftest import official_expected

    model = load_checkpoint(official_checkpoint("sdt_cifar_t4"))
    report = paper_energy(model, measure_rates(model, official_expected("sdt_cifar_t4")["inputs"]))
    table = energy_table(report)
    assert json.loads(json.dumps(table)) == table
    assert sum(r["energy_j"] for r in table) == pytest.approx(report.total_j, rel=1e-12)
    assert {r["formula"] for r in table if r["kind"] == "attention"} == {"E_AC·T·N·D·(S_Q+S_K)"}
