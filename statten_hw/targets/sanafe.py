"""SANA-FE architecture files (YAML) as statten-hw targets.

SANA-FE (Boyle et al., TCAD 2025) describes a chip as tiles on a mesh NoC; each tile has cores, each
core a pipeline of axon-in, synapse, dendrite, soma and axon-out units, and every unit states its
energy (J) and latency (s) per event. `read_architecture` reads such a file with PyYAML (SANA-FE
itself is needed only to find its shipped files) into a `SanafeArchitecture`, the exact per-event
costs; `to_target` turns that into a `Target`:

=============================  ===================================================================
Target field                   from the YAML (first core type; its first synapse, dendrite, soma)
=============================  ===================================================================
mesh_x, mesh_y, cores_per_tile ``width``, ``height``, cores per tile entry (one chip)
core.neurons_per_core          ``max_neurons_supported``
sop                            synapse ``*_process_spike`` + dendrite ``*_update`` (per synapse lookup)
neuron_update / _access, spike soma ``*_update_neuron`` / ``*_access_neuron`` / ``*_spike_out``
packet_pj                      axon-out ``energy_message_out`` + axon-in ``energy_message_in``
spike_packet_cycles,           axon-out ``latency_message_out``, axon-in ``latency_message_in``
packet_receive_cycles
noc_hop_pj, hop_cycles         mean of the four directions' hop costs
barrier_cycles                 ``latency_sync`` (a table keyed by tiles in use: its largest entry)
=============================  ===================================================================

Energies are converted to pJ, latencies to cycles of a 1 GHz clock (1 cycle = 1 ns). What the YAML
lacks comes from `DEFAULTS`; both that list and what the YAML says but the target cannot express
travel with the target as its `Provenance`. Tile ``k`` sits at ``x = k // height``, ``y = k % height``
(SANA-FE's ``Architecture::calculate_tile_coordinates``), and SANA-FE routes X then Y, so hops
between tiles are ``|dx| + |dy|`` as in `statten_hw.mapping.placement.hops`.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import yaml

from statten_hw.errors import TargetError
from statten_hw.targets.loader import parse_target, target_error
from statten_hw.targets.schema import Provenance, Target

PREFIX = "sanafe:"
#: Architecture files shipped inside the ``sanafe`` package (``sanafe/examples/<name>.yaml``).
SHIPPED: tuple[str, ...] = ("loihi", "truenorth")
FORMAT = "SANA-FE architecture YAML"
#: PyYAML's safe loader, in C (libyaml) when PyYAML was built with it: the Python one takes a second on
#: truenorth.yaml's 4096 tiles.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
CLOCK_HZ = 1e9  # SANA-FE counts seconds; statten-hw cycles of 1 ns carry them without rounding
PJ = 1e12  # joules -> picojoules

#: Values a SANA-FE file does not give, with the reason for each (dotted Target field -> (value, why)).
#: The Loihi 1 figures are the stand-ins the ``loihi2`` target cites from Davies et al. 2018 ([D18]).
DEFAULTS: dict[str, tuple[Any, str]] = {
    "execution": ("step", "SANA-FE advances every core one time step, then synchronizes"),
    "core.synapse_bytes_per_core": (131_072, "Loihi 1's 128 KiB synaptic memory per core [D18]; SANA-FE "
                                             "does not limit synapse memory"),
    "core.buffer_bytes_per_core": (65_536, "ASSUMPTION, as in the loihi2 target; SANA-FE has no buffer memory"),
    "core.fan_in": (4096, "Loihi 1's 4096 input axons per core [D18]; SANA-FE does not limit fan-in"),
    "core.fan_out": (4096, "Loihi 1's 4096 output axons per core [D18]; SANA-FE does not limit fan-out"),
    "precision.weight_bits": (8, "Loihi 1 weights [D18]; SANA-FE weights are doubles"),
    "precision.weight_exponent_bits": (4, "Loihi 1 weight exponent [D18]"),
    "precision.state_bits": (24, "Loihi's 24-bit membrane (Lava's bit-accurate LIF); SANA-FE potentials are doubles"),
    "precision.decay_bits": (12, "Loihi's 12-bit decay constants [D18]"),
    "timing.clock_hz": (CLOCK_HZ, "SANA-FE counts seconds; 1 cycle = 1 ns"),
    "energy.sram_read_byte_pj": (0.0, "SANA-FE models no buffer SRAM: not counted"),
    "energy.sram_write_byte_pj": (0.0, "SANA-FE models no buffer SRAM: not counted"),
    "energy.static_power_mw": (0.0, "SANA-FE models no leakage"),
}
MAC_NOTE = "energy.mac_pj = sop_pj: SANA-FE has no multiply-accumulate event; analog input costs a synaptic op"

_HOPS = ("north", "east", "south", "west")
_RANGE = re.compile(r"^(?P<base>.*)\[(?P<lo>\d+)\.\.(?P<hi>\d+)\]$")
_BUFFER_POSITIONS = ("dendrite", "soma", "axon_out")
_UNIT_SECTIONS = ("axon_in", "synapse", "dendrite", "soma", "axon_out")
#: Per-event costs read from each unit section, as (energy key, latency key) pairs.
_COSTS = {
    "axon_in": (("energy_message_in", "latency_message_in"),),
    "axon_out": (("energy_message_out", "latency_message_out"),),
    "synapse": (("energy_process_spike", "latency_process_spike"),),
    "dendrite": (("energy_update", "latency_update"),),
    "soma": (("energy_access_neuron", "latency_access_neuron"), ("energy_update_neuron", "latency_update_neuron"),
             ("energy_spike_out", "latency_spike_out")),
}
Cost = tuple[float, float]  # (J, s) of one event


@dataclass(frozen=True)
class SanafeArchitecture:
    """The exact per-event costs of a SANA-FE file (first core type), in J and s.

    ``sync_s``: ``(tiles, seconds)`` rows of the end-of-step synchronization, looked up with the tiles
    holding at least one neuron (`sync_seconds`). ``hop_*``: per direction, north, east, south, west.
    ``soma_unit``: the neuron soma (the first soma unit whose model is not ``input``); ``input_units``:
    how many ``input``-model soma units (spike sources, one train each) a core has, and their name base.
    """

    name: str
    source: str
    width: int
    height: int
    tiles: int
    cores_per_tile: int
    neurons_per_core: int
    hop_energy_j: tuple[float, float, float, float]
    hop_latency_s: tuple[float, float, float, float]
    sync_s: tuple[tuple[int, float], ...]
    synapse: Cost
    dendrite: Cost
    soma_access: Cost
    soma_update: Cost
    soma_spike: Cost
    message_out: Cost
    message_in: Cost
    soma_unit: str
    soma_model: str
    input_unit: str
    input_units: int
    unmodelled: tuple[str, ...]

    def sync_seconds(self, tiles_in_use: int) -> float:
        """SANA-FE's ``LookupTable::get``: the entry of the largest key <= tiles (else the first entry)."""
        below = [s for n, s in self.sync_s if n <= tiles_in_use]
        return below[-1] if below else self.sync_s[0][1]

    def tile_position(self, tile: int) -> tuple[int, int]:
        """(x, y) of tile ``tile``: SANA-FE fills the mesh column by column."""
        return tile // self.height, tile % self.height


def is_sanafe_target(name_or_path: str | os.PathLike) -> bool:
    """``sanafe:<name>`` or a path ending in ``.yaml``/``.yml``."""
    if isinstance(name_or_path, str) and name_or_path.startswith(PREFIX):
        return True
    return Path(name_or_path).suffix.lower() in (".yaml", ".yml")


def load_sanafe_target(name_or_path: str | os.PathLike) -> Target:
    """``sanafe:loihi`` / ``sanafe:truenorth`` (files shipped with SANA-FE) or any SANA-FE YAML path."""
    if isinstance(name_or_path, str) and name_or_path.startswith(PREFIX):
        return to_target(read_architecture(shipped_path(name_or_path[len(PREFIX):])), name_or_path)
    arch = read_architecture(name_or_path)
    return to_target(arch, arch.name)


def shipped_path(name: str) -> Path:
    """The file of a shipped architecture, found in the installed ``sanafe`` package without importing it."""
    if name not in SHIPPED:
        raise TargetError(PREFIX + name, "(name)", f"unknown SANA-FE architecture (shipped: {', '.join(SHIPPED)})")
    spec = importlib.util.find_spec("sanafe")
    if spec is None or not spec.submodule_search_locations:
        raise TargetError(PREFIX + name, "(file)", "needs the sanafe package (pip install sanafe==2.2.9)")
    return Path(next(iter(spec.submodule_search_locations))) / "examples" / f"{name}.yaml"


#: Most units one entry may name (``tile[0..65535]``): a range is counted before anything expands, so a
#: two-line file naming 10^11 tiles is refused instead of filling the memory.
MAX_INSTANCES = 1 << 16


def instance_count(name: str) -> int:
    """How many units `instance_names` would give, without listing them."""
    match = _RANGE.match(name)
    return 1 if match is None else max(0, int(match["hi"]) - int(match["lo"]) + 1)


def instance_names(name: str) -> list[str]:
    """The units an entry name stands for, as SANA-FE expands it: ``foo[2..4]`` is ``foo[2]``, ``foo[3]``,
    ``foo[4]`` (an empty list if the range is empty); any other name is one unit."""
    match = _RANGE.match(name)
    if match is None:
        return [name]
    return [f"{match['base']}[{i}]" for i in range(int(match["lo"]), int(match["hi"]) + 1)]


def read_architecture(path: str | os.PathLike) -> SanafeArchitecture:
    """Parse and check a SANA-FE architecture file; one `TargetError` lists every problem found."""
    source = str(path)
    reader = _Reader(source)
    arch = reader.section(_load_yaml(Path(path)), "architecture", "")
    name = reader.text(arch, "name", "architecture")
    attrs = reader.section(arch, "attributes", "architecture")
    width = reader.integer(attrs, "width", "architecture.attributes")
    height = reader.integer(attrs, "height", "architecture.attributes")
    reader.integer(attrs, "link_buffer_size", "architecture.attributes", bound=0)
    sync = _sync_table(reader, attrs)
    tiles = reader.entries(arch, "tile", "architecture")
    if "topology" in attrs and attrs["topology"] != "mesh":
        reader.problem("architecture.attributes.topology", f"only 'mesh' is modelled, got {attrs['topology']!r}")
    reader.done()

    first_tile = tiles[0][1]
    hops = reader.section(first_tile, "attributes", "architecture.tile[0]")
    hop_path = "architecture.tile[0].attributes"
    hop_costs = [reader.cost(hops, f"energy_{d}_hop", f"latency_{d}_hop", hop_path) for d in _HOPS]
    core_entries = [reader.entries(tile, "core", f"architecture.tile[{i}]") for i, (_, tile) in enumerate(tiles)]
    reader.done()
    core = _read_core(reader, core_entries[0][0][1], "architecture.tile[0].core[0]")
    reader.done()

    n_tiles = sum(count for count, _ in tiles)
    per_tile = {sum(count for count, _ in entries) for entries in core_entries}
    if len(per_tile) > 1:
        reader.problem("architecture.tile", f"tiles hold different numbers of cores ({sorted(per_tile)}); "
                                            "statten-hw models identical tiles")
    if width > 0 and height > 0 and n_tiles != width * height:
        reader.problem("architecture.attributes.width", f"{n_tiles} tiles do not fill the {width} x {height} mesh")
    reader.done()

    notes = [*_unread(attrs, ("topology", "width", "height", "sync_model", "latency_sync", "link_buffer_size"),
                      "architecture.attributes"),
             f"architecture.attributes.link_buffer_size = {attrs['link_buffer_size']}: NoC congestion and "
             "blocking (SANA-FE's 'detailed' timing) are not modelled",
             *_unread(hops, [f"{k}_{d}_hop" for d in _HOPS for k in ("energy", "latency")], hop_path)]
    if len(sync) > 1:
        notes.append(f"latency_sync table {_table(sync)} (seconds by tiles in use): barrier_cycles takes its "
                     "largest entry, the worst case")
    if len(set(hop_costs)) > 1:
        notes.append("hop costs differ by direction (north, east, south, west: "
                     f"{', '.join(f'{e * PJ:g} pJ/{t * CLOCK_HZ:g} ns' for e, t in hop_costs)}); "
                     "noc_hop_pj and hop_cycles take their mean")
    notes += _heterogeneity(tiles, core_entries)
    notes += core.pop("notes")
    return SanafeArchitecture(
        name=name, source=source, width=width, height=height, tiles=n_tiles, cores_per_tile=per_tile.pop(),
        hop_energy_j=tuple(e for e, _ in hop_costs), hop_latency_s=tuple(t for _, t in hop_costs),
        sync_s=sync, unmodelled=tuple(notes), **core)


def to_target(arch: SanafeArchitecture, name: str) -> Target:
    """The `Target` of ``arch`` (module docstring), validated by the TOML schema, with its `Provenance`."""
    sop = _add(arch.synapse, arch.dendrite)
    packet = _add(arch.message_out, arch.message_in)
    data: dict[str, Any] = {
        "name": name,
        "description": f"SANA-FE architecture '{arch.name}' ({arch.tiles} tiles x {arch.cores_per_tile} cores on a "
                       f"{arch.width} x {arch.height} mesh) from {Path(arch.source).name}",
        "mesh": {"mesh_x": arch.width, "mesh_y": arch.height, "cores_per_tile": arch.cores_per_tile,
                 "chips_x": 1, "chips_y": 1, "max_chips": 1},
        "core": {"neurons_per_core": arch.neurons_per_core},
        "precision": {},
        "timing": {"sop_cycles": sop[1] * CLOCK_HZ, "neuron_update_cycles": arch.soma_update[1] * CLOCK_HZ,
                   "neuron_access_cycles": arch.soma_access[1] * CLOCK_HZ,
                   "spike_cycles": arch.soma_spike[1] * CLOCK_HZ,
                   "spike_packet_cycles": arch.message_out[1] * CLOCK_HZ,
                   "packet_receive_cycles": arch.message_in[1] * CLOCK_HZ,
                   "hop_cycles": _mean(arch.hop_latency_s) * CLOCK_HZ,
                   "barrier_cycles": max(s for _, s in arch.sync_s) * CLOCK_HZ},
        "energy": {"sop_pj": sop[0] * PJ, "mac_pj": sop[0] * PJ, "neuron_update_pj": arch.soma_update[0] * PJ,
                   "neuron_access_pj": arch.soma_access[0] * PJ, "spike_pj": arch.soma_spike[0] * PJ,
                   "packet_pj": packet[0] * PJ, "noc_hop_pj": _mean(arch.hop_energy_j) * PJ},
    }
    for dotted, (value, _) in DEFAULTS.items():
        section, _, key = dotted.rpartition(".")
        (data[section] if section else data)[key] = value
    target = parse_target(data, arch.source)
    defaults = tuple(f"{dotted} = {value}: {why}" for dotted, (value, why) in DEFAULTS.items()) + (MAC_NOTE,)
    return dataclasses.replace(target, provenance=Provenance(arch.source, FORMAT, defaults, arch.unmodelled))


# ---- reading -------------------------------------------------------------------------------------------

class _Reader:
    """Collects (dotted YAML key, problem) pairs; `done` raises them as one `TargetError`."""

    def __init__(self, source: str):
        self.source, self.problems = source, []

    def problem(self, where: str, what: str) -> None:
        self.problems.append((where, what))

    def done(self) -> None:
        if self.problems:
            raise target_error(self.source, self.problems)

    def section(self, node: Mapping, key: str, where: str) -> Mapping:
        """A required mapping; a missing or malformed one stops the reading at once."""
        path = f"{where}.{key}" if where else key
        value = node.get(key)
        if not isinstance(value, Mapping):
            self.problem(path, "missing section" if value is None else f"must be a mapping, got {_kind(value)}")
            self.done()
        return value

    def entries(self, node: Mapping, key: str, where: str) -> list[tuple[int, Mapping]]:
        """A required list (or single mapping) of named entries, as (instances of its name range, entry)."""
        value = node.get(key)
        items = [value] if isinstance(value, Mapping) else value
        if not isinstance(items, list) or not items:
            self.problem(f"{where}.{key}", "missing section" if value is None else f"must be a list of entries, "
                                                                                   f"got {_kind(value)}")
            self.done()
        out = []
        for i, item in enumerate(items):
            path = f"{where}.{key}[{i}]"
            if not isinstance(item, Mapping):
                self.problem(path, f"must be a mapping, got {_kind(item)}")
                continue
            out.append((self.instances(self.text(item, "name", path), f"{path}.name"), item))
        self.done()
        return out

    def instances(self, name: str, where: str) -> int:
        count = instance_count(name or "")
        if not count:
            self.problem(where, f"empty range {name!r}")
        elif count > MAX_INSTANCES:
            self.problem(where, f"a range of {count:,} units exceeds the limit of {MAX_INSTANCES:,}")
        return count

    def text(self, node: Mapping, key: str, where: str) -> str:
        value = node.get(key)
        if not isinstance(value, str) or not value.strip():
            self.problem(f"{where}.{key}", "missing required key" if value is None else
                         f"must be a non-empty string, got {_kind(value)}")
            return ""
        return value

    def integer(self, node: Mapping, key: str, where: str, bound: int = 1) -> int:
        value = node.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < bound:
            self.problem(f"{where}.{key}", "missing required key" if value is None else
                         f"must be an integer >= {bound}, got {_kind(value)}")
            return 0
        return value

    def number(self, node: Mapping, key: str, where: str) -> float:
        """A finite number >= 0. PyYAML (YAML 1.1) reads ``1e-9`` as a string; rapidyaml, SANA-FE's
        parser, reads it as a number, so numeric strings are numbers here too."""
        value = node.get(key)
        try:
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
        except (TypeError, ValueError):
            self.problem(f"{where}.{key}", "missing required key (a per-event cost statten-hw needs)"
                         if value is None else f"must be a number, got {_kind(value)}")
            return 0.0
        if not 0 <= number < float("inf"):
            self.problem(f"{where}.{key}", f"must be a finite number >= 0, got {value!r}")
            return 0.0
        return number

    def cost(self, node: Mapping, energy: str, latency: str, where: str) -> Cost:
        return self.number(node, energy, where), self.number(node, latency, where)


#: Limits of `_prescan`; SANA-FE's own files are a few kB, nest 9 deep and hold a few hundred nodes.
MAX_YAML_BYTES = 16 << 20
MAX_YAML_DEPTH = 100
MAX_YAML_NODES = 1_000_000


def _load_yaml(path: Path) -> Mapping:
    if not path.is_file():
        raise TargetError(str(path), "(file)", "no such file")
    try:
        if path.stat().st_size > MAX_YAML_BYTES:
            raise TargetError(str(path), "(file)", f"{path.stat().st_size:,} bytes; an architecture file is "
                                                   f"at most {MAX_YAML_BYTES:,}")
        text = path.read_bytes().decode("utf-8")
        _prescan(text, str(path))
        data = yaml.load(text, Loader=SAFE_LOADER)
    except OSError as exc:
        raise TargetError(str(path), "(file)", f"cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise TargetError(str(path), "(syntax)", f"not UTF-8 text (byte {exc.start})") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = getattr(exc, "problem", None) or str(exc)
        raise TargetError(str(path), "(syntax)", " ".join(f"invalid YAML{where}: {what}".split())) from exc
    if not isinstance(data, Mapping):
        raise TargetError(str(path), "architecture", f"not a SANA-FE architecture (top level is {_kind(data)})")
    return data


def _prescan(text: str, source: str) -> None:
    """Refuse YAML that would crash or exhaust the loader, judged from libyaml's event stream (a flat
    loop: its parser keeps explicit stacks). PyYAML's C composer recurses once per nesting level and
    overflows the C stack, a segfault, on ``[`` or ``- `` repeated 10^5 times; aliases can make a
    file of a few hundred bytes stand for 10^9 nodes ("billion laughs") or for itself."""
    nodes = 0
    opened: list[tuple[str | None, int]] = []  # per open collection: its anchor, the node count before it
    sizes: dict[str | None, int] = {}  # nodes each anchor stands for
    for event in _events(text, source):
        if isinstance(event, yaml.CollectionEndEvent):
            anchor, before = opened.pop()
            sizes[anchor] = nodes - before
        elif isinstance(event, yaml.AliasEvent):
            if any(anchor == event.anchor for anchor, _ in opened):
                raise TargetError(source, "(syntax)", f"alias *{event.anchor} refers to a collection containing it")
            nodes += sizes.get(event.anchor, 1)  # an undefined alias: the loader reports it
        elif isinstance(event, yaml.NodeEvent):  # a scalar or the start of a collection
            if isinstance(event, yaml.CollectionStartEvent):
                opened.append((event.anchor, nodes))
                if len(opened) > MAX_YAML_DEPTH:
                    raise TargetError(source, "(syntax)", f"nested more than {MAX_YAML_DEPTH} levels deep")
            nodes += 1
            sizes[event.anchor] = 1
        if nodes > MAX_YAML_NODES:
            raise TargetError(source, "(syntax)", f"more than {MAX_YAML_NODES:,} nodes (aliases expanded)")


def _events(text: str, source: str) -> Iterator[yaml.Event]:
    """libyaml's events. libyaml 0.2.6 on (PyYAML 6.0.4's wheels) stops at 1000 levels of its own, while
    scanning ahead, before the events reach the depth check: past its limit is past ours, so say it as we
    do whichever libyaml is installed."""
    try:
        yield from yaml.parse(text, Loader=SAFE_LOADER)
    except yaml.YAMLError as exc:
        if "maximum nesting depth" in str(getattr(exc, "problem", "")):
            raise TargetError(source, "(syntax)", f"nested more than {MAX_YAML_DEPTH} levels deep") from exc
        raise


def _sync_table(reader: _Reader, attrs: Mapping) -> tuple[tuple[int, float], ...]:
    """``sync_model: fixed`` (one ``latency_sync``, default 0) or ``table`` (tiles -> seconds, or a list)."""
    where = "architecture.attributes"
    model = attrs.get("sync_model", "fixed")
    if model == "fixed":
        return ((0, reader.number(attrs, "latency_sync", where) if "latency_sync" in attrs else 0.0),)
    if model != "table":
        reader.problem(f"{where}.sync_model", f"must be 'fixed' or 'table', got {model!r}")
        return ((0, 0.0),)
    table = attrs.get("latency_sync")
    if isinstance(table, list):
        table = dict(enumerate(table))
    if not isinstance(table, Mapping) or not table:
        reader.problem(f"{where}.latency_sync", "a table of tiles: seconds is required by sync_model 'table'")
        return ((0, 0.0),)
    rows = []
    for tiles in table:
        if isinstance(tiles, bool) or not isinstance(tiles, int) or tiles < 0:
            reader.problem(f"{where}.latency_sync", f"keys must be tile counts (integers >= 0), got {tiles!r}")
            continue
        rows.append((tiles, reader.number(table, tiles, f"{where}.latency_sync")))
    return tuple(sorted(rows)) or ((0, 0.0),)


def _read_core(reader: _Reader, core: Mapping, where: str) -> dict[str, Any]:
    """Limits and unit costs of one core type, and notes on what of it is not modelled."""
    attrs = reader.section(core, "attributes", where)
    neurons = reader.integer(attrs, "max_neurons_supported", f"{where}.attributes")
    position = reader.text(attrs, "buffer_position", f"{where}.attributes")
    if position and position not in _BUFFER_POSITIONS:
        reader.problem(f"{where}.attributes.buffer_position", f"must be one of {', '.join(_BUFFER_POSITIONS)}, "
                                                               f"got {position!r}")
    elif position and position != "soma":
        # SANA-FE then integrates (and charges the dendrite) per neuron at the buffer, not per event:
        # another neuron model and cost model than the one statten-hw counts and runs.
        reader.problem(f"{where}.attributes.buffer_position", f"statten-hw models SANA-FE's buffer before the "
                                                               f"soma only ('soma'), got {position!r}")
    if attrs.get("buffer_inside_unit", False) is not False:
        reader.problem(f"{where}.attributes.buffer_inside_unit", "statten-hw models a buffer outside the unit "
                                                                  f"only (false), got {attrs['buffer_inside_unit']!r}")
    units = {s: reader.entries(core, s, where) for s in _UNIT_SECTIONS}
    notes = [f"{where}.attributes.buffer_position = {position!r}: a spike reaches the next layer's soma one "
             "step after it is sent (SANA-FE's time-step buffer); statten-hw's 'step' execution delivers it "
             "within the step",
             *_unread(attrs, ("max_neurons_supported", "buffer_position", "buffer_inside_unit"), f"{where}.attributes")]
    somas = [(i, e) for i, (_, e) in enumerate(units["soma"]) if _model(e) != "input"]
    inputs = [(n, e) for n, e in units["soma"] if _model(e) == "input"]
    if not somas:
        reader.problem(f"{where}.soma", "no soma unit for neurons (every soma unit has model 'input')")
        reader.done()
    first = {"axon_in": 0, "axon_out": 0, "synapse": 0, "dendrite": 0, "soma": somas[0][0]}
    costs = {}
    for section, index in first.items():
        entry = units[section][index][1]
        path = f"{where}.{section}[{index}]"
        unit_attrs = reader.section(entry, "attributes", path)
        costs[section] = [reader.cost(unit_attrs, e, t, f"{path}.attributes") for e, t in _COSTS[section]]
        read = ["model", *(k for pair in _COSTS[section] for k in pair)]
        notes += _unread(unit_attrs, read, f"{path}.attributes")
        others = [e["name"] for i, (_, e) in enumerate(units[section]) if i != index and _model(e) != "input"]
        if others:
            notes.append(f"{where}.{section}: units {', '.join(others)} are not modelled; every "
                         f"{section.replace('_', '-')} event costs as '{entry['name']}', SANA-FE's default unit")
    soma = somas[0][1]
    if inputs:
        notes.append(f"{where}.soma: {sum(n for n, _ in inputs)} 'input' units are spike sources (one spike train "
                     "each), used by '--backend sanafe' to replay spikes; the target has no cost for them")
    if _model(soma) != "leaky_integrate_fire":
        notes.append(f"{where}.soma '{soma['name']}' has model {_model(soma)!r}, not statten-hw's integer LIF; "
                     "'--backend sanafe' needs model 'leaky_integrate_fire'")
    return {"neurons_per_core": neurons, "synapse": costs["synapse"][0], "dendrite": costs["dendrite"][0],
            "soma_access": costs["soma"][0], "soma_update": costs["soma"][1], "soma_spike": costs["soma"][2],
            "message_in": costs["axon_in"][0], "message_out": costs["axon_out"][0],
            "soma_unit": soma["name"], "soma_model": _model(soma),
            "input_unit": _RANGE.sub(r"\g<base>", inputs[0][1]["name"]) if inputs else "",
            "input_units": sum(n for n, _ in inputs), "notes": notes}


def _heterogeneity(tiles, core_entries) -> list[str]:
    """Tile or core entries that differ from the first: statten-hw costs every tile and core as the first."""
    notes = []
    for i, (_, tile) in enumerate(tiles[1:], start=1):
        if tile.get("attributes") != tiles[0][1].get("attributes"):
            notes.append(f"architecture.tile[{i}] hop costs differ from tile[0]; every tile costs as tile[0]")
    first = {k: v for k, v in core_entries[0][0][1].items() if k != "name"}
    for i, entries in enumerate(core_entries):
        for j, (_, core) in enumerate(entries):
            if {k: v for k, v in core.items() if k != "name"} != first:
                notes.append(f"architecture.tile[{i}].core[{j}] differs from tile[0].core[0]; every core is "
                             "modelled as tile[0].core[0]")
    return notes


def _unread(attrs: Mapping, read, where: str) -> list[str]:
    return [f"{where}.{k} = {v!r}: not modelled" for k, v in attrs.items() if k not in read]


def _model(entry: Mapping) -> str:
    attrs = entry.get("attributes")
    return attrs.get("model", "") if isinstance(attrs, Mapping) else ""


def _add(a: Cost, b: Cost) -> Cost:
    return a[0] + b[0], a[1] + b[1]


def _mean(values) -> float:
    return sum(values) / len(values)


def _table(rows) -> str:
    return "{" + ", ".join(f"{n}: {s:g}" for n, s in rows) + "}"


def _kind(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"[:80]


__all__ = ["DEFAULTS", "PREFIX", "SHIPPED", "SanafeArchitecture", "instance_names", "is_sanafe_target",
           "load_sanafe_target", "read_architecture", "shipped_path", "to_target"]
