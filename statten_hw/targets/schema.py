"""The frozen `Target`: what one piece of hardware offers and what each event costs.

A target file (TOML) has three top-level keys, ``name``, ``description`` and ``execution``, and
five sections, one per nested dataclass below: ``[mesh]``, ``[core]``, ``[precision]``,
``[timing]`` and ``[energy]``. The dataclass fields *are* the schema: each field's metadata gives
its unit, its lower bound (``positive``: > 0, ``nonnegative``: >= 0), an optional upper bound,
and whether it may be left out. `statten_hw.targets.loader` validates against this metadata, so a
limit is written once, here, and nowhere else.
"""
from __future__ import annotations

import enum
from dataclasses import MISSING, asdict, dataclass, field


class ExecutionStyle(str, enum.Enum):
    """How layers share time on the hardware.

    ``step``: Loihi-like. Every layer advances one timestep per global step, and all cores meet at a
    barrier before the next step begins, so spikes from step t reach the next layer at step t.
    ``layer``: layer-by-layer. A layer processes a whole temporal block (B timesteps) before the next
    layer starts, so the block's output spikes must sit in an on-core buffer in between.
    """

    STEP = "step"
    LAYER = "layer"


def _spec(unit: str, doc: str, *, bound: str = "positive", maximum: float | None = None,
          minimum: float | None = None, default=MISSING):
    """Field declaration carrying the validation metadata the loader reads."""
    meta = {"unit": unit, "doc": doc, "bound": bound, "maximum": maximum, "minimum": minimum}
    if default is MISSING:
        return field(metadata=meta)
    return field(default=default, metadata=meta)


#: Largest mesh side and cores per chip a target may have: placement keeps per-axis distance tables
#: (side²) and one entry per core slot of every chip in use. TrueNorth, the largest mesh modelled
#: (SANA-FE's truenorth.yaml), is 64 x 64 tiles of one core.
MAX_MESH_SIDE = 1024
MAX_CORES_PER_CHIP = 1 << 20


@dataclass(frozen=True)
class Mesh:
    """Cores on a chip and chips in a system. Cores sit on a 2-D mesh network-on-chip (NoC).

    Each mesh position is a *tile*: one router shared by ``cores_per_tile`` cores (1 for most chips;
    SANA-FE's Loihi has 4). Spikes between cores of one tile cross no hop.
    """

    mesh_x: int = _spec("tiles", "mesh positions (routers) along x on one chip's mesh", maximum=MAX_MESH_SIDE)
    mesh_y: int = _spec("tiles", "mesh positions (routers) along y on one chip's mesh", maximum=MAX_MESH_SIDE)
    chips_x: int = _spec("chips", "chips along x in the modelled system", default=1)
    chips_y: int = _spec("chips", "chips along y in the modelled system", default=1)
    max_chips: int = _spec(
        "chips", "largest system of this kind that can be built; a mapping may grow to this many chips; "
        "0 in the file means chips_x * chips_y", bound="nonnegative", default=0)
    cores_per_tile: int = _spec("cores", "cores sharing the router of one mesh position", default=1)

    @property
    def cores_per_chip(self) -> int:
        """mesh_x * mesh_y * cores_per_tile (cores)."""
        return self.mesh_x * self.mesh_y * self.cores_per_tile

    @property
    def chips(self) -> int:
        """chips_x * chips_y (chips in the modelled system)."""
        return self.chips_x * self.chips_y

    @property
    def chip_limit(self) -> int:
        """max_chips, or chips_x * chips_y where max_chips is 0 (chips)."""
        return self.max_chips or self.chips


@dataclass(frozen=True)
class CoreLimits:
    """What one core holds. A mapping splits each layer over cores so that no core passes any limit."""

    neurons_per_core: int = _spec("neurons", "neurons (compartments) one core can update")
    synapse_bytes_per_core: int = _spec("bytes", "synaptic (weight) memory of one core")
    buffer_bytes_per_core: int = _spec(
        "bytes", "memory of one core for buffered spikes, accumulators and state held across steps",
        bound="nonnegative")
    fan_in: int = _spec("axons", "distinct presynaptic inputs (input axons) one core can receive")
    fan_out: int = _spec("axons", "distinct output routes (output axons) one core can send to")


@dataclass(frozen=True)
class Precision:
    """Integer widths of the stored quantities (two's complement where signed)."""

    weight_bits: int = _spec("bits", "synaptic weight mantissa width", maximum=64)
    weight_exponent_bits: int = _spec(
        "bits", "width of the shared weight exponent (weight = mantissa << exp); 0 = no exponent",
        bound="nonnegative", maximum=16)
    state_bits: int = _spec("bits", "membrane potential / synaptic current width", maximum=64)
    decay_bits: int = _spec("bits", "leak (decay) constant width", maximum=64)
    weight_bits_min: int = _spec(
        "bits", "narrowest mantissa the synapses store packed at its own width (Loihi: 1-8 bits); 0 = every "
        "weight takes a weight_bits wide slot", bound="nonnegative", maximum=64, default=0)

    def stored_weight_bits(self, network_bits: int | None = None) -> int:
        """Bits one weight of a ``network_bits``-bit network takes in synaptic memory: its own width
        where the synapses pack narrower weights (down to ``weight_bits_min``), else the slot's; a
        network wider than the slot takes its own width (the report's precision section flags it).
        ``weight_bits`` for a network not quantized yet (None)."""
        if network_bits is None:
            return self.weight_bits
        return max(network_bits, self.weight_bits_min or self.weight_bits)


@dataclass(frozen=True)
class Timing:
    """Time per event on one core, in clock cycles; seconds = cycles / clock_hz.

    Fractional cycles model parallel lanes: 0.0625 cycles per synaptic op = 16 ops per cycle. An
    event may take 0 cycles (a purely functional model such as SANA-FE's TrueNorth file). The last
    three fields split costs the way SANA-FE's architecture files do; 0 leaves them out.
    """

    # at least 1 Hz: a clock of 5e-324 Hz made every latency infinite and the report NaN (review)
    clock_hz: float = _spec("Hz", "core clock (for asynchronous chips, the nominal rate cycles are counted at)",
                            minimum=1.0)
    sop_cycles: float = _spec("cycles", "one synaptic operation (one weight read and accumulate)",
                              bound="nonnegative")
    neuron_update_cycles: float = _spec("cycles", "one neuron state update (leak, integrate, fire)",
                                        bound="nonnegative")
    spike_packet_cycles: float = _spec("cycles", "sending or receiving one spike packet at a core",
                                       bound="nonnegative")
    hop_cycles: float = _spec("cycles", "one router-to-router hop of a spike packet on the NoC", bound="nonnegative")
    barrier_cycles: float = _spec(
        "cycles", "global barrier at the end of each step (execution 'step'); 0 = none",
        bound="nonnegative")
    neuron_access_cycles: float = _spec(
        "cycles", "visiting one neuron in a step, whether or not it updates (every neuron, every step)",
        bound="nonnegative", default=0.0)
    spike_cycles: float = _spec("cycles", "a neuron emitting one output spike", bound="nonnegative", default=0.0)
    packet_receive_cycles: float = _spec(
        "cycles", "receiving one spike packet at its destination core (then spike_packet_cycles is the "
        "sending side only)", bound="nonnegative", default=0.0)


@dataclass(frozen=True)
class Energy:
    """Energy per event, in picojoules (pJ). 0 means the event is not counted by this model."""

    sop_pj: float = _spec("pJ", "one synaptic operation (accumulate, E_AC)", bound="nonnegative")
    mac_pj: float = _spec(
        "pJ", "one multiply-accumulate, for the analog (direct-coded) first-layer input (E_MAC)",
        bound="nonnegative")
    neuron_update_pj: float = _spec("pJ", "one neuron state update", bound="nonnegative")
    sram_read_byte_pj: float = _spec("pJ/byte", "reading one byte of buffer SRAM", bound="nonnegative")
    sram_write_byte_pj: float = _spec("pJ/byte", "writing one byte of buffer SRAM", bound="nonnegative")
    noc_hop_pj: float = _spec("pJ", "one spike packet crossing one NoC hop", bound="nonnegative")
    static_power_mw: float = _spec(
        "mW", "static (leakage) power of one chip, charged for the run's duration", bound="nonnegative",
        default=0.0)
    neuron_access_pj: float = _spec(
        "pJ", "visiting one neuron in a step, whether or not it updates (every neuron, every step)",
        bound="nonnegative", default=0.0)
    spike_pj: float = _spec("pJ", "a neuron emitting one output spike", bound="nonnegative", default=0.0)
    packet_pj: float = _spec("pJ", "one spike packet between cores, sending and receiving ends together",
                             bound="nonnegative", default=0.0)


@dataclass(frozen=True)
class Provenance:
    """Where a target converted from another tool's format came from, and what the conversion did.

    ``defaults``: fields the source does not give, each with the value used and why. ``unmodelled``:
    what the source says that statten-hw's cost model cannot express (and what it does instead).
    Reports print both lists, so nothing is dropped silently.
    """

    source: str
    format: str
    defaults: tuple[str, ...]
    unmodelled: tuple[str, ...]


@dataclass(frozen=True)
class Target:
    """One hardware target: mesh, per-core limits, precision, per-event timing and energy.

    Build one with `statten_hw.targets.load_target`; the loader has checked every field's type and
    bounds, so code downstream may trust the values.
    """

    name: str = _spec("", "short identifier, e.g. 'loihi2'")
    description: str = _spec("", "one line saying what the target models and where its numbers come from")
    execution: ExecutionStyle = _spec("", "'step' (Loihi-like, barrier per step) or 'layer' (layer-by-layer)")
    mesh: Mesh = _spec("", "[mesh] section")
    core: CoreLimits = _spec("", "[core] section")
    precision: Precision = _spec("", "[precision] section")
    timing: Timing = _spec("", "[timing] section")
    energy: Energy = _spec("", "[energy] section")
    provenance: Provenance | None = _spec(
        "", "set when the target was converted from another format (not a TOML key)", default=None)

    @property
    def cores_per_chip(self) -> int:
        """Cores on one chip (mesh_x * mesh_y * cores_per_tile)."""
        return self.mesh.cores_per_chip

    def uncosted(self) -> tuple[str, ...]:
        """The sections among ``timing`` and ``energy`` whose every per-event cost is 0, as in SANA-FE's
        purely functional truenorth.yaml: a report's cycles or energy on such a target are 0 by
        construction, not an estimate, and the command line says so (`uncosted_warning`)."""
        costs = {"timing": [v for k, v in asdict(self.timing).items() if k != "clock_hz"],
                 "energy": list(asdict(self.energy).values())}
        return tuple(section for section, values in costs.items() if not any(values))

    def uncosted_warning(self) -> str | None:
        """The warning line for an `uncosted` target; None when it costs something in both."""
        if not (sections := self.uncosted()):
            return None
        figures = {"timing": "cycles and latency", "energy": "energy"}
        return (f"warning: {self.name} gives every {' and every '.join(sections)} cost as 0, so the report's "
                f"{' and '.join(figures[s] for s in sections)} are 0 by construction, not estimates")

    def to_dict(self) -> dict:
        """Plain nested dict in the TOML file's layout (execution as its string; no provenance)."""
        data = asdict(self)
        data["execution"] = self.execution.value
        del data["provenance"]
        return data


#: The TOML sections, in file order, and the dataclass each one fills.
SECTIONS: dict[str, type] = {"mesh": Mesh, "core": CoreLimits, "precision": Precision, "timing": Timing, "energy": Energy}

#: Top-level scalar keys of a target file.
TOP_LEVEL = ("name", "description", "execution")


def is_required(f) -> bool:
    """A field with no default must appear in the file."""
    return f.default is MISSING and f.default_factory is MISSING


__all__ = ["ExecutionStyle", "Mesh", "CoreLimits", "Precision", "Timing", "Energy", "Provenance", "Target",
           "SECTIONS", "TOP_LEVEL", "is_required"]
