"""Fuzzing the target loader (hypothesis): a target file loads or gives one TargetError line.

Bases: the three built-in TOML files (``loihi2``, ``layerwise``, ``paper45nm``), read as text.

* ``test_mutated_text`` (150 examples): characters replaced, TOML syntax inserted (brackets,
  quotes, ``=``, newlines, NUL, non-UTF-8 bytes), spans deleted or duplicated, the file cut short.
* ``test_mutated_tables`` (150 examples): the parsed tables edited before validation
  (``parse_target``): any field set to any TOML value (integers of 64 bits and beyond, a 401-digit
  one, NaN, Inf, bools,
  strings, dates, arrays, nested tables), fields and sections dropped, unknown keys added,
  sections replaced by non-tables.
* ``test_deep_nesting`` (20 examples): arrays and inline tables nested up to 20,000 deep.
* ``test_hostile_target_through_the_cli`` (5 files x ``map`` and ``simulate``): one line, exit 2.
* ``test_hostile_sanafe_yaml`` (6 SANA-FE architecture files through ``map``, the 2 deepest also
  through ``simulate --backend sanafe``), each in a real process, since libyaml's composer dies
  of a segfault, not an exception, on deep nesting: ``[``, ``{a:`` and ``- `` nested 100,000
  deep, a "billion laughs" of aliases, an alias inside its own anchor, a file of 17 MB.
"""
from __future__ import annotations

import copy
import re
import signal
import tomllib
from importlib import resources

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from robust_helpers import assert_one_line_error, run_cli
from statten_hw.cli import main
from statten_hw.errors import TargetError
from statten_hw.targets import BUILTIN_TARGETS, load_target
from statten_hw.targets.loader import INT64_MAX, parse_target
from statten_hw.targets.schema import SECTIONS, TOP_LEVEL

BUILTIN_TEXT = {name: resources.files("statten_hw.targets").joinpath("builtin", f"{name}.toml").read_text()
                for name in BUILTIN_TARGETS}
FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
SYNTAX = st.sampled_from(["[", "]", "[[", "{", "}", "=", '"', "'", '"""', "\n", ".", ",", "#", "\\", "\x00",
                          "1e999", "nan", "-inf", "0x", "9" * 30, "true", "1979-05-27T07:32:00Z", "[mesh]"])


@st.composite
def mutated_text(draw) -> bytes:
    text = draw(st.sampled_from(sorted(BUILTIN_TEXT.values())))
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["replace", "insert", "delete", "duplicate", "truncate"]))
        if kind == "replace":
            text = text[:pos] + draw(st.characters()) + text[pos + 1:]
        elif kind == "insert":
            text = text[:pos] + draw(SYNTAX | st.text(max_size=8)) + text[pos:]
        elif kind == "delete":
            text = text[:pos] + text[pos + draw(st.integers(1, 40)):]
        elif kind == "duplicate":
            text = text[:pos] + text[pos: pos + draw(st.integers(1, 80))] + text[pos:]
        else:
            text = text[:pos]
    data = text.encode("utf-8", "surrogatepass")
    return data + draw(st.sampled_from([b"", b"\xff\xfe", b"\x80"]))


TOML_VALUES = st.recursive(
    st.one_of(st.booleans(), st.integers(), st.floats(), st.text(max_size=8), st.datetimes(), st.dates(),
              st.sampled_from([2**63, -2**63 - 1, 10**400, 1e308, 5e-324])),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8)
FIELDS = [(None, name) for name in TOP_LEVEL] + [(section, f) for section, cls in SECTIONS.items()
                                                  for f in cls.__dataclass_fields__]


@st.composite
def mutated_tables(draw) -> dict:
    data = copy.deepcopy(tomllib.loads(draw(st.sampled_from(sorted(BUILTIN_TEXT.values())))))
    for _ in range(draw(st.integers(1, 4))):
        section, name = draw(st.sampled_from(FIELDS))
        table = data if section is None else data.get(section)
        kind = draw(st.sampled_from(["set", "drop", "unknown key", "section"]))
        if not isinstance(table, dict):
            continue
        if kind == "set":
            table[name] = draw(TOML_VALUES)
        elif kind == "drop":
            table.pop(name, None)
        elif kind == "unknown key":
            table[draw(st.text(max_size=10))] = draw(TOML_VALUES)
        elif section is not None:
            data[section] = draw(TOML_VALUES)
    return data


def check_target(target) -> None:
    """What a target that loads must satisfy whatever the file said: typed, finite, in range."""
    for section in SECTIONS:
        for name, value in vars(getattr(target, section)).items():
            assert not isinstance(value, bool) and isinstance(value, (int, float)), (section, name, value)
            assert abs(value) <= INT64_MAX and value == value and abs(value) != float("inf"), (section, name)


def check_one_line(err: TargetError, source: str) -> None:
    assert "\n" not in str(err) and str(err).startswith(source), str(err)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz_targets") / "target.toml"


@settings(FUZZ, max_examples=150)
@given(data=mutated_text())
def test_mutated_text(scratch, data):
    scratch.write_bytes(data)
    try:
        check_target(load_target(scratch))
    except TargetError as err:
        check_one_line(err, str(scratch))


@settings(FUZZ, max_examples=150)
@given(data=mutated_tables())
def test_mutated_tables(data):
    try:
        check_target(parse_target(data, "fuzzed"))
    except TargetError as err:
        check_one_line(err, "fuzzed")


@settings(FUZZ, max_examples=20)
@given(depth=st.integers(1, 20_000), inline_table=st.booleans())
def test_deep_nesting(scratch, depth, inline_table):
    value = "{a = " * depth + "1" + "}" * depth if inline_table else "[" * depth + "]" * depth
    scratch.write_text(BUILTIN_TEXT["loihi2"] + f"\nextra = {value}\n")
    with pytest.raises(TargetError) as info:  # an unknown key at best, too deep at worst
        load_target(scratch)
    check_one_line(info.value, str(scratch))


HOSTILE_TARGETS = {
    "deeply nested array": (b"x = " + b"[" * 100_000 + b"]" * 100_000, r"nested too deeply"),
    "integer beyond 64 bits": (BUILTIN_TEXT["loihi2"].replace("fan_in = 4096", "fan_in = " + "9" * 40).encode(),
                               r"core\.fan_in.*at most 2\*\*63 - 1"),
    "float field given a 400-digit integer": (
        BUILTIN_TEXT["loihi2"].replace("clock_hz = 1.0e9", "clock_hz = 1" + "0" * 400).encode(),
        r"timing\.clock_hz.*must be finite"),
    "binary garbage": (bytes(range(256)) * 8, r"not UTF-8 text"),
    "empty file": (b"", r"missing"),
}


@pytest.mark.parametrize("command", ["map", "simulate"])
@pytest.mark.parametrize("case", sorted(HOSTILE_TARGETS))
def test_hostile_target_through_the_cli(tmp_path, capsys, case, command):
    data, pattern = HOSTILE_TARGETS[case]
    target, out = tmp_path / "target.toml", tmp_path / "out"
    target.write_bytes(data)
    rc = main([command, "--target", str(target), "-o", str(out)])
    assert_one_line_error(rc, capsys.readouterr().err, pattern)
    assert not out.exists()


def _laughs(levels: int = 9) -> bytes:
    """Aliases 10 wide and ``levels`` deep: a few hundred bytes that stand for 10^levels strings."""
    lines = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, levels + 1)]
    return ("\n".join(lines) + "\narchitecture: *l%d\n" % levels).encode()


DEEP = r"'\(syntax\)': nested more than 100 levels deep"
HOSTILE_YAML = {  # name -> (file, expected message after "FILE: field ", also through simulate --backend sanafe)
    "[ nested 100,000 deep": (b"architecture: " + b"[" * 100_000 + b"]" * 100_000, DEEP, True),
    "- nested 100,000 deep": (b"architecture:\n" + b"- " * 100_000 + b"x\n", DEEP, True),
    "{a: nested 100,000 deep": (b"architecture: " + b"{a: " * 100_000 + b"1" + b"}" * 100_000, DEEP, False),
    "billion laughs": (_laughs(), r"'\(syntax\)': more than 1,000,000 nodes \(aliases expanded\)", False),
    "alias inside its own anchor": (b"architecture: &a {tile: [*a]}\n",
                                    r"'\(syntax\)': alias \*a refers to a collection containing it", False),
    "17 MB": (b"architecture: {}\n" + b"#" * (17 << 20),
              r"'\(file\)': 17,825,809 bytes; an architecture file is at most 16,777,216", False),
}


@pytest.mark.parametrize("case, command", [(case, command) for case, (_, _, deep) in sorted(HOSTILE_YAML.items())
                                           for command in (["map", "simulate"] if deep else ["map"])])
def test_hostile_sanafe_yaml(tmp_path, case, command):
    data, pattern, _ = HOSTILE_YAML[case]
    target, out = tmp_path / "arch.yaml", tmp_path / "out"
    target.write_bytes(data)
    backend = ["--backend", "sanafe", "--samples", "1"] if command == "simulate" else []
    done = run_cli(command, "--target", str(target), *backend, "-o", str(out))
    assert done.returncode != -signal.SIGSEGV, "segmentation fault"
    assert_one_line_error(done.returncode, done.stderr, rf"{re.escape(str(target))}: field {pattern}")
    assert not out.exists()
