"""Energy estimates: the STAtten paper's 45 nm operation-count model and the firing rates it needs."""
from .paper import (
    E_AC_J,
    E_MAC_J,
    EnergyReport,
    EnergyRow,
    analog_energy,
    attention_energy,
    energy_table,
    paper_energy,
    spike_energy,
)
from .rates import (
    AttentionGeometry,
    LayerGeometry,
    LayerRates,
    attention_geometry,
    layer_geometry,
    load_rate_profile,
    measure_rates,
    rate_keys,
)

__all__ = [
    "E_AC_J", "E_MAC_J", "EnergyReport", "EnergyRow", "analog_energy", "attention_energy",
    "energy_table", "paper_energy", "spike_energy",
    "AttentionGeometry", "LayerGeometry", "LayerRates", "attention_geometry", "layer_geometry",
    "load_rate_profile", "measure_rates", "rate_keys",
]
