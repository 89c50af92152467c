"""The report.json contract of DESIGN.md: schema version 1; fields a run cannot measure are null."""
from __future__ import annotations

SCHEMA_VERSION = 1
TOTAL_FIELDS = ("chips", "cores", "neurons", "synapse_bytes", "state_bytes", "buffer_bytes", "spikes", "sops",
                "neuron_updates", "cycles", "latency_s", "energy_j")
#: The totals a mapping decides (every backend's report takes them from its deployment's mapping).
STATIC_TOTALS = TOTAL_FIELDS[:6]


def model_section(model) -> dict:
    cfg = model.config
    return {"family": cfg.family, "attention": cfg.attention, "depth": cfg.depth, "dim": cfg.dim,
            "heads": cfg.heads, "timesteps": cfg.timesteps, "input_shape": list(cfg.input_shape),
            "params": sum(p.numel() for p in model.parameters())}


def empty_report(command: str, model, target: str, block_size: int, backend: str) -> dict:
    """A report skeleton with every total null, to be filled by whatever the command measures."""
    return {"schema_version": SCHEMA_VERSION, "tool": "statten-hw", "command": command,
            "model": model_section(model), "target": target, "block_size": block_size, "backend": backend,
            "totals": {field: None for field in TOTAL_FIELDS}, "layers": [], "cores": []}
