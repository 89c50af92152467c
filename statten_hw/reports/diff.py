"""Where two report.json files disagree: ``statten-hw diff a/report.json b/report.json``.

The walk covers what a run measures: its ``outcome`` (accuracy, input values clipped, values
saturated), ``totals``, ``layers`` (matched by ``name``) and ``cores`` (matched by ``id``), after the
``header``: the command, target, block size, model, data and integer graph (what it was quantized
for, its widest weights and state) of each report, so that two reports of different targets, models,
T, samples or bits are never called equal (the backend is left out: comparing backends is what the
command is for). A field is *different* when both reports give a value and the values differ
(floats within a relative 1e-9 count as equal, integers must match exactly); it is *measured by one
only* when one side is null (or lacks the field) and the other is not, which is how a backend that
cannot measure a field reports it (DESIGN.md), so it is listed apart. A layer or core present in one
report only is listed too. An energy report is compared only with another: its ``energy_j`` is per
sample and its ``firing_rate`` an input rate, where a run's are sums and output rates. Exit status: 0
equal, 1 different, 2 unreadable or incomparable input.
"""
from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from statten_hw.errors import InputError, brief

from .files import JSON_READ_ERRORS

#: Kinds of `Difference`, in the order the renderer prints them.
KINDS = ("differs", "only_in_a", "only_in_b", "null_in_a", "null_in_b")
#: Relative tolerance for float fields (energies, latencies, rates computed in different orders).
REL_TOL = 1e-9


@dataclass(frozen=True)
class Difference:
    """``where``: ``totals``, ``layers[<name>]`` or ``cores[<id>]``; ``field``: the key (empty for a
    whole entry present in one report only); ``a``/``b``: the two values (None when null/absent)."""

    where: str
    field: str
    a: object
    b: object
    kind: str


def _equal(a, b) -> bool:
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
    if numbers and (isinstance(a, float) or isinstance(b, float)):
        try:
            return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=0.0)
        except OverflowError:  # an integer beyond any float: no float is close to it
            return False
    return a == b


def _fields(where: str, a: dict, b: dict) -> list[Difference]:
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if va is None and vb is None:
            continue
        if va is None or vb is None:
            out.append(Difference(where, key, va, vb, "null_in_a" if va is None else "null_in_b"))
        elif not _equal(va, vb):
            out.append(Difference(where, key, va, vb, "differs"))
    return out


def _keyed(rows: list, key: str) -> dict:
    """Rows by ``key``; a key seen again (SANA-FE's unmapped cores have id null) gets ``#2``, ``#3``..."""
    out, seen = {}, {}
    for row in rows:
        k = row.get(key)
        seen[k] = seen.get(k, 0) + 1
        out[k if seen[k] == 1 else f"{k}#{seen[k]}"] = row
    return out


def _entries(section: str, key: str, a: list, b: list) -> list[Difference]:
    rows_a, rows_b = _keyed(a, key), _keyed(b, key)
    out = []
    for k in [*rows_a, *(k for k in rows_b if k not in rows_a)]:
        where = f"{section}[{k}]"
        if k not in rows_b:
            out.append(Difference(where, "", k, None, "only_in_a"))
        elif k not in rows_a:
            out.append(Difference(where, "", None, k, "only_in_b"))
        else:
            out.extend(_fields(where, rows_a[k], rows_b[k]))
    return out


def _section_of(doc: dict, key: str) -> dict:
    return doc.get(key) if isinstance(doc.get(key), dict) else {}


def _header(doc: dict) -> dict:
    """What the run was of: command, target, B, model, data, and the integer graph's numbers."""
    precision = _section_of(doc, "precision")
    graph = _section_of(precision, "graph")
    return {"command": doc.get("command"), "target": doc.get("target"), "block_size": doc.get("block_size"),
            **{f"model.{k}": v for k, v in _section_of(doc, "model").items()},
            **{f"data.{k}": v for k, v in _section_of(doc, "data").items()},
            "precision.quantized_for": precision.get("quantized_for"),
            **{f"precision.graph.{k}": v for k, v in graph.items()}}


def _outcome(doc: dict) -> dict:
    """What a run found beyond the counts: accuracy, and the values its integer run clipped."""
    precision = _section_of(doc, "precision")
    counts = list(_section_of(precision, "saturated").values())
    numeric = all(isinstance(n, int) and not isinstance(n, bool) for n in counts)
    return {"accuracy": _section_of(doc, "simulation").get("accuracy"),
            "inputs_clipped": precision.get("inputs_clipped"),
            "values_saturated": sum(counts) if "saturated" in precision and numeric else None}


def diff_reports(a: dict, b: dict) -> list[Difference]:
    """Every difference between two report dicts (module docstring): header, outcome, totals, layers,
    cores."""
    return [*_fields("header", _header(a), _header(b)),
            *_fields("outcome", _outcome(a), _outcome(b)),
            *_fields("totals", a.get("totals") or {}, b.get("totals") or {}),
            *_entries("layers", "name", a.get("layers") or [], b.get("layers") or []),
            *_entries("cores", "id", a.get("cores") or [], b.get("cores") or [])]


def _show(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return json.dumps(value) if isinstance(value, (list, dict, str)) else str(value)


def _section(where: str) -> str:
    return where.split("[", 1)[0]


def render_differences(diffs: list[Difference], a_label: str = "a", b_label: str = "b") -> str:
    """Text for a terminal: the differing values one per line; the fields measured by one report only,
    one line per section, each with how many entries it concerns."""
    if not diffs:
        return f"no differences between {a_label} and {b_label}\n"
    by_kind: dict[str, list[Difference]] = defaultdict(list)
    for d in diffs:
        by_kind[d.kind].append(d)
    counts = ", ".join(f"{len(by_kind[k])} {k.replace('_', ' ')}" for k in KINDS if by_kind[k])
    lines = [f"a = {a_label}", f"b = {b_label}", f"{len(diffs)} differences: {counts}"]
    if by_kind["differs"]:
        lines += ["", "values that differ (a -> b):"]
        lines += [f"  {d.where}.{d.field}: {_show(d.a)} -> {_show(d.b)}" for d in by_kind["differs"]]
    for kind, label in (("only_in_a", a_label), ("only_in_b", b_label)):
        if by_kind[kind]:
            lines += ["", f"entries only in {label}:"]
            lines += [f"  {d.where}" for d in by_kind[kind]]
    for kind, label in (("null_in_a", a_label), ("null_in_b", b_label)):
        if by_kind[kind]:
            groups: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
            for d in by_kind[kind]:
                groups[_section(d.where)][d.field] += 1
            lines += ["", f"measured only by {b_label if kind == 'null_in_a' else a_label} (null in {label}):"]
            for section, fields in groups.items():
                lines.append(f"  {section}: " + ", ".join(f if section == "totals" else f"{f} ({n})"
                                                          for f, n in fields.items()))
    return "\n".join(lines) + "\n"


def load_report(path) -> dict:
    """A report.json as a dict; `InputError` naming the file when it is missing, not JSON or no report."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"), parse_constant=_refuse_constant)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except JSON_READ_ERRORS as err:
        raise InputError(f"{path}: not a readable JSON file ({str(err)[:160]})".replace("\n", " ")) from None
    if not isinstance(doc, dict) or doc.get("tool") != "statten-hw" or "schema_version" not in doc:
        raise InputError(f"{path}: not a statten-hw report.json (no 'tool': 'statten-hw' and 'schema_version')")
    if doc.get("command") == "sweep":
        raise InputError(f"{path}: a sweep report (many configurations); diff compares the report.json of one "
                         "map, simulate or energy run")
    for key, kind in (("totals", dict), ("layers", list), ("cores", list)):
        if not isinstance(doc.get(key, kind()), kind):
            raise InputError(f"{path}: key {key!r} must be a JSON {'object' if kind is dict else 'array'}")
    for key in ("layers", "cores"):
        if not all(isinstance(row, dict) for row in doc.get(key, [])):
            raise InputError(f"{path}: every entry of {key!r} must be a JSON object")
    for key, ident, kinds, what in (("layers", "name", (str,), "a string"), ("cores", "id", (int, type(None)),
                                                                               "an integer or null")):
        bad = [row.get(ident) for row in doc.get(key, []) if not isinstance(row.get(ident), kinds)
               or isinstance(row.get(ident), bool)]
        if bad:
            raise InputError(f"{path}: every entry of {key!r} needs {ident!r} as {what}, got {brief(bad[0])}")
    return doc


def _refuse_constant(name: str):
    """Reports are written with ``allow_nan=False``: NaN or Infinity in one is not ours."""
    raise ValueError(f"{name} is not a JSON number")


def add_diff_parser(sub) -> None:
    """``statten-hw diff A B [--values-only]``."""
    p = sub.add_parser("diff", help="where two report.json files disagree (exit 0 equal, 1 different)")
    p.add_argument("a", help="first report.json")
    p.add_argument("b", help="second report.json")
    p.add_argument("--values-only", action="store_true",
                   help="compare only fields both reports measured (ignore null-vs-value)")
    p.set_defaults(func=run_diff)


def run_diff(args) -> int:
    """Print the differences; return the exit status (0 equal, 1 different)."""
    a, b = load_report(args.a), load_report(args.b)
    if a["schema_version"] != b["schema_version"]:
        raise InputError(f"{args.b}: schema version {b['schema_version']} differs from {args.a}'s "
                         f"{a['schema_version']}; reports of different versions are not compared")
    if (a.get("command") == "energy") != (b.get("command") == "energy"):
        raise InputError(f"{args.a} ({a.get('command')}) and {args.b} ({b.get('command')}): an energy "
                         "report's energy_j and firing_rate are the paper model's per sample and input rates, a run's "
                         "are sums over its samples and output rates; diff compares energy reports with each other")
    diffs = diff_reports(a, b)
    if args.values_only:
        diffs = [d for d in diffs if d.kind in ("differs", "only_in_a", "only_in_b")]
    print(render_differences(diffs, f"{args.a} ({a.get('backend')}, {a.get('command')})",
                             f"{args.b} ({b.get('backend')}, {b.get('command')})"), end="")
    return 1 if diffs else 0


__all__ = ["Difference", "diff_reports", "render_differences", "load_report", "add_diff_parser", "run_diff"]
