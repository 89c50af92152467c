"""Fuzzing ``--rates`` profiles (hypothesis): ``load_rate_profile`` gives checked rates or one InputError line.

Model: the embedded STAtten digits checkpoint (its 13 rate keys, each with T = 4 steps).

* ``test_any_json_document`` (60 examples): arbitrary JSON values (nested lists, objects, numbers,
  strings), written as the profile.
* ``test_mutated_profile`` (60 examples): a valid profile with 1-3 edits: a layer's list replaced
  by any JSON value, one rate set to any number (integers of any size, floats near 0 and 1, NaN,
  Infinity) or any JSON value, a layer dropped, a layer invented (any text, newlines included),
  a list lengthened or shortened.
* ``test_mutated_text`` (100 examples): the valid profile's text with tokens inserted (``NaN``,
  ``Infinity``, ``1e999``, a 5000-digit integer, 100,000 brackets, quotes, non-UTF-8 bytes, a BOM),
  spans deleted, the text cut short.
* ``test_deep_nesting_and_long_numbers`` (20 examples): lists nested up to 200,000 deep around an
  integer of up to 6000 digits (Python refuses more than 4300).
* ``test_hostile_profile_through_the_cli`` (6 files): ``statten-hw energy --rates FILE`` exits 2
  with one line and writes nothing.
"""
from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from robust_helpers import assert_one_line_error
from statten_hw import load_checkpoint
from statten_hw.cli import main
from statten_hw.defaults import default_checkpoint
from statten_hw.energy import load_rate_profile, rate_keys
from statten_hw.energy.rates import max_input_rate
from statten_hw.errors import InputError

MODEL = load_checkpoint(default_checkpoint())
KEYS = rate_keys(MODEL)
VALID = {k: [0.25] * n for k, n in KEYS.items()}
FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12)
NUMBERS = st.one_of(st.sampled_from([-0.0, 1.0, 1 + 1e-12, -1e-300, 2**64, 10**400]), st.integers(), st.floats())


def check_profile(path) -> None:
    """The property: rates for exactly the model's keys, one per step, firing rates in [0, 1] and input
    rates in [0, max_input_rate]; or one InputError line."""
    try:
        rates = load_rate_profile(path, MODEL)
    except InputError as err:
        assert "\n" not in str(err) and str(err).startswith(str(path)), str(err)
        return
    assert set(rates.rates) == set(KEYS)
    for key, values in rates.rates.items():
        top = 1.0 if key.endswith(("q_lif", "k_lif", "v_lif")) else max_input_rate(MODEL)
        assert len(values) == KEYS[key] and all(isinstance(v, float) and 0.0 <= v <= top for v in values)


def _dump(doc) -> str:
    return json.dumps(doc, allow_nan=True)  # NaN and Infinity as Python's json writes them


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz_rates") / "rates.json"


@settings(FUZZ, max_examples=60)
@given(doc=JSON)
def test_any_json_document(scratch, doc):
    scratch.write_text(_dump(doc))
    check_profile(scratch)


@st.composite
def mutated_profile(draw) -> dict:
    doc = json.loads(json.dumps(VALID))
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(sorted(KEYS)))
        kind = draw(st.sampled_from(["list", "rate", "rate any", "drop", "invent", "length"]))
        if kind == "list":
            doc[key] = draw(JSON)
        elif kind in ("rate", "rate any") and isinstance(doc.get(key), list) and doc[key]:
            doc[key][draw(st.integers(0, len(doc[key]) - 1))] = draw(NUMBERS if kind == "rate" else JSON)
        elif kind == "drop":
            doc.pop(key, None)
        elif kind == "invent":
            doc[draw(st.text(max_size=30))] = [0.5] * 4
        elif kind == "length" and isinstance(doc.get(key), list):
            doc[key] = doc[key] + [0.5] if draw(st.booleans()) else doc[key][:-1]
    return doc


@settings(FUZZ, max_examples=60)
@given(doc=mutated_profile())
def test_mutated_profile(scratch, doc):
    scratch.write_text(_dump(doc))
    check_profile(scratch)


TOKENS = st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "9" * 5000, "[" * 100_000, "[", "]", "{", "}",
                          '"', ",", ":", "null", "\\u0000", "-", "0.", ".5"])


@settings(FUZZ, max_examples=100)
@given(cut=st.integers(0, 10**6), insert=TOKENS | st.text(max_size=6), delete=st.integers(0, 20),
       tail=st.sampled_from([b"", b"\xff", b"\xc3"]), bom=st.booleans())
def test_mutated_text(scratch, cut, insert, delete, tail, bom):
    text = _dump(VALID)
    pos = cut % (len(text) + 1)
    data = (text[:pos] + insert + text[pos + delete:]).encode("utf-8", "surrogatepass") + tail
    scratch.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    check_profile(scratch)


@settings(FUZZ, max_examples=20)
@given(depth=st.integers(1, 200_000), digits=st.integers(1, 6000))
def test_deep_nesting_and_long_numbers(scratch, depth, digits):
    scratch.write_text("[" * depth + "9" * digits + "]" * depth)
    check_profile(scratch)


HOSTILE_PROFILES = {
    "nested 100,000 deep": (b"[" * 100_000 + b"]" * 100_000, r"not valid JSON"),
    "5000-digit integer": (("{" + json.dumps(next(iter(KEYS))) + ": [" + "9" * 5000 + "]}").encode(),
                           r"not valid JSON"),
    "400-digit rate": (_dump({**VALID, "head": [10**400] * KEYS["head"]}).encode(), r"'head': rate at step 0 is 1000"),
    "Infinity rate": (_dump({**VALID, "head": [math.inf] * KEYS["head"]}).encode(),
                      r"'head': rate at step 0 is not a number"),
    "layer name with a newline": (_dump({**VALID, "evil\nlayer": [0.5]}).encode(), r"unknown layer 'evil\\nlayer'"),
    "not UTF-8": (b'{"head": [0.5, \xff]}', r"not valid JSON"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_PROFILES))
def test_hostile_profile_through_the_cli(tmp_path, capsys, case):
    data, pattern = HOSTILE_PROFILES[case]
    rates, out = tmp_path / "rates.json", tmp_path / "out"
    rates.write_bytes(data)
    rc = main(["energy", "--rates", str(rates), "-o", str(out)])
    assert_one_line_error(rc, capsys.readouterr().err, pattern)
    assert not out.exists()
