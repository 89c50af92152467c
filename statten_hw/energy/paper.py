"""Energy the STAtten paper's way: operation counts times 45 nm energies per operation.

Source: Lee et al., "Spiking Transformer with Spatial-Temporal Attention" (STAtten), CVPR 2025,
Table 7 (arXiv 2409.19764, Table 6), with the 45 nm CMOS energies of Horowitz, "Computing's energy
problem", ISSCC 2014: ``E_MAC = 4.6 pJ`` (32-bit float multiply-accumulate), ``E_AC = 0.9 pJ``
(32-bit float add). All energies below are in joules; ``F`` counts operations of one time step of
one sample; ``s_t`` is a firing rate in events per site per step (:mod:`statten_hw.energy.rates`).

    E = E_MAC · F_conv¹ · T                       first layer (direct-coded analog input)
      + Σ_layers E_AC · F · Σ_t s_t               every other conv / linear (spike input)
      + Σ_attention E_attn                        spiking self-attention, per mode (below)

* ``F_conv = K·K·H_out·W_out·C_in·C_out``; a linear layer ``F = tokens·C_in·C_out``.
* **First layer counted T times.** The paper writes ``E_MAC·F_conv`` for it. The models repeat a
  static image T times (``time_major``), and the first conv runs on every copy. We read the term as
  per-step, in the convention that the paper's energy analysis inherits through SDT: Yao et al.,
  "Attention Spiking Neural Networks" (TPAMI 2023), supplementary Table S1, writes
  ``FL_SNNConv¹ = T·FL_Conv¹·Φ⁰`` (MAC), with ``Φ⁰ = 1`` for static images. Event-frame input is
  also charged ``E_MAC`` per operation, rate-free, as the paper's table does.
* A layer fed a time-averaged tensor (Spikformer's head, ``head(mean_T mean_N x)``) runs once and
  sees real values: ``E_MAC·F`` once.
* Only synaptic operations are counted, as in the paper: LIF updates, BatchNorm (folded into the
  weights at inference), max-pools, residual additions and masks cost nothing here.

Attention, with ``T`` time steps, ``N`` tokens, ``D`` the embedding dimension, and ``S_Q, S_K, S_V``
the Q/K/V firing rates averaged over the steps (the table writes one scalar rate per operand):

* ``STAtten`` (block-wise):  ``E_AC · T · N · D² · (S_Q + S_K + S_V)``
* ``SDSA`` (SDT v1):          ``E_AC · T · N · D · (S_Q + S_K)``
* ``T_STAtten``:              ``E_AC · T · N · D² · (S_K·S_V + S_Q)``     (arXiv Table 6)
* ``N_STAtten``:              ``E_AC · T² · N · D · (S_Q·S_K + S_V)``     (arXiv Table 6)
* ``A2OS2A``: the STAtten form. Its products have STAtten's block-wise shape; its K (ReLU) and V
  (ternary) are not binary, and their rates count nonzero operands. The paper gives no row for it.
* ``SSA`` (Spikformer): ``E_AC · T · N² · D · (S_Q + S_K + S_V)``. This is our derivation, not a
  row of the table. We apply to Spikformer's product order ``(Q·Kᵀ)·V`` the counting rule that
  yields the STAtten row: each matrix product costs its dense size times the rates of its spike
  operands. ``Q·Kᵀ`` is ``N²·D`` times ``(S_Q + S_K)``, and ``(QKᵀ)·V`` is ``N²·D`` times ``S_V``,
  since the score matrix is not spikes. Under the same rule, ``Kᵀ·V`` is ``N·D²`` times
  ``(S_K + S_V)`` and ``Q·(KᵀV)`` is ``N·D²`` times ``S_Q``, which gives the STAtten row exactly.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from torch import nn

from statten_hw.errors import InputError, UnsupportedLayer

from .rates import QKV, AttentionGeometry, LayerRates, attention_geometry, layer_geometry

#: 45 nm energy of one 32-bit float multiply-accumulate, joules (Horowitz, ISSCC 2014).
E_MAC_J = 4.6e-12
#: 45 nm energy of one 32-bit float addition (accumulate), joules (Horowitz, ISSCC 2014).
E_AC_J = 0.9e-12


@dataclass(frozen=True)
class EnergyRow:
    """One line of the energy account.

    ``ops`` is the dense operation count of the term before rates: ``F`` per step for a
    conv/linear, and the attention prefactor (``T·N·D²``, ``T·N·D``, ``T²·N·D`` or ``T·N²·D``) for
    an attention. ``op`` is ``"MAC"`` or ``"AC"``. ``rates`` are the per-step input rates for a
    conv/linear (empty for a rate-free analog layer), and ``(S_Q, S_K, S_V)`` for an attention.
    ``formula`` is the term as the paper writes it; ``energy_j`` is in joules.
    """

    name: str
    kind: str
    op: str
    ops: int
    rates: tuple[float, ...]
    formula: str
    energy_j: float


@dataclass(frozen=True)
class EnergyReport:
    """The paper's energy estimate of one inference of one sample, joules (``total_j = Σ rows``)."""

    rows: tuple[EnergyRow, ...]
    total_j: float
    attention: str
    timesteps: int
    rate_source: str
    e_mac_j: float = E_MAC_J
    e_ac_j: float = E_AC_J


def analog_energy(flops: int, steps: int, e_mac_j: float = E_MAC_J) -> float:
    """``E_MAC · F · steps``: a layer with real-valued input does every multiply-accumulate each step."""
    return e_mac_j * flops * steps


def spike_energy(flops: int, rates: Sequence[float], e_ac_j: float = E_AC_J) -> float:
    """``E_AC · F · Σ_t s_t``: only input events trigger accumulates (STAtten Table 7, conv/linear row)."""
    return e_ac_j * flops * sum(rates)


def _attention_terms(mode: str, T: int, N: int, D: int, s_q: float, s_k: float, s_v: float):
    """``(formula, dense prefactor, rate factor)`` of one attention mode; energy = E_AC · prefactor · factor."""
    if mode in ("STAtten", "A2OS2A"):
        return "E_AC·T·N·D²·(S_Q+S_K+S_V)", T * N * D * D, s_q + s_k + s_v
    if mode == "SDSA":
        return "E_AC·T·N·D·(S_Q+S_K)", T * N * D, s_q + s_k
    if mode == "T_STAtten":
        return "E_AC·T·N·D²·(S_K·S_V+S_Q)", T * N * D * D, s_k * s_v + s_q
    if mode == "N_STAtten":
        return "E_AC·T²·N·D·(S_Q·S_K+S_V)", T * T * N * D, s_q * s_k + s_v
    if mode == "SSA":
        return "E_AC·T·N²·D·(S_Q+S_K+S_V)", T * N * N * D, s_q + s_k + s_v
    raise UnsupportedLayer("attention", mode, "no energy formula for this attention mode")


def attention_energy(mode: str, T: int, N: int, D: int, s_q: float, s_k: float, s_v: float,
                     e_ac_j: float = E_AC_J) -> float:
    """Energy of one spiking self-attention layer in joules; the formulas are in the module docstring."""
    _, dense, factor = _attention_terms(mode, T, N, D, s_q, s_k, s_v)
    return e_ac_j * dense * factor


def _rates_for(rates: LayerRates, key: str, steps: int) -> tuple[float, ...]:
    if key not in rates.rates:
        raise InputError(f"rates from {rates.source}: layer {key!r} has no rates")
    values = rates.rates[key]
    if len(values) != steps:
        raise InputError(f"rates from {rates.source}: layer {key!r}: expected {steps} rates, got {len(values)}")
    return values


def paper_energy(model: nn.Module, rates: LayerRates) -> EnergyReport:
    """The STAtten paper's energy (CVPR Table 7 / arXiv Table 6) of ``model`` under ``rates``.

    ``rates`` comes from :func:`~statten_hw.energy.rates.measure_rates` or
    :func:`~statten_hw.energy.rates.load_rate_profile`. Rows follow execution order, and each
    attention's row comes just before its block's first conv. Raises ``InputError`` if a layer's
    rates are missing or have the wrong length.
    """
    cfg = model.config
    if rates.timesteps != cfg.timesteps:
        raise InputError(f"rates from {rates.source} are for T = {rates.timesteps}, the model has T = {cfg.timesteps}")
    attn_by_prefix: dict[str, AttentionGeometry] = {a.name: a for a in attention_geometry(model)}
    rows: list[EnergyRow] = []
    for g in layer_geometry(model):
        for prefix in [p for p in attn_by_prefix if g.name.startswith(p + ".")]:
            rows.append(_attention_row(attn_by_prefix.pop(prefix), rates))
        if g.analog:
            rows.append(EnergyRow(g.name, g.kind, "MAC", g.flops, (), f"E_MAC·F·{g.steps}",
                                  analog_energy(g.flops, g.steps)))
        else:
            r = _rates_for(rates, g.name, g.steps)
            rows.append(EnergyRow(g.name, g.kind, "AC", g.flops, r, "E_AC·F·Σ_t s_t", spike_energy(g.flops, r)))
    rows.extend(_attention_row(a, rates) for a in attn_by_prefix.values())
    return EnergyReport(tuple(rows), sum(r.energy_j for r in rows), cfg.attention, cfg.timesteps, rates.source)


def _attention_row(a: AttentionGeometry, rates: LayerRates) -> EnergyRow:
    s = [sum(v) / len(v) for v in (_rates_for(rates, f"{a.name}.{q}", a.timesteps) for q in QKV)]
    formula, dense, factor = _attention_terms(a.mode, a.timesteps, a.tokens, a.dim, *s)
    return EnergyRow(a.name, "attention", "AC", dense, tuple(s), formula, E_AC_J * dense * factor)


def energy_table(report: EnergyReport) -> list[dict]:
    """One plain dict per row (JSON/CSV-ready) for the CLI and reports; the total is ``report.total_j``.

    Keys: ``name, kind, op, ops, rates, mean_rate, formula, energy_j``. ``mean_rate`` is the
    rate averaged over its list (``None`` for a rate-free analog layer).
    """
    return [
        {
            "name": r.name, "kind": r.kind, "op": r.op, "ops": r.ops, "rates": list(r.rates),
            "mean_rate": (sum(r.rates) / len(r.rates)) if r.rates else None,
            "formula": r.formula, "energy_j": r.energy_j,
        }
        for r in report.rows
    ]
