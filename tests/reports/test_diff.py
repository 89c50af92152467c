"""``statten-hw diff``: which fields of two report.json files differ, and the exit status."""
from __future__ import annotations

import argparse
import copy
import json

import pytest

from statten_hw.errors import InputError
from statten_hw.reports.diff import add_diff_parser, diff_reports, load_report, render_differences, run_diff
from statten_hw.reports.files import write_json


def _report(backend: str = "event") -> dict:
    """A hand-written two-layer, two-core report (schema version 1)."""
    return {"schema_version": 1, "tool": "statten-hw", "command": "simulate", "backend": backend,
            "target": "loihi2", "block_size": 2, "model": {"family": "statten"},
            "totals": {"cores": 2, "spikes": 30, "energy_j": 1.5e-6, "cycles": None},
            "layers": [{"name": "q_lif", "kind": "lif", "cores": [0], "spikes": 10, "sops": 40, "firing_rate": 0.25},
                       {"name": "k_lif", "kind": "lif", "cores": [1], "spikes": 20, "sops": 80, "firing_rate": 0.5}],
            "cores": [{"id": 0, "spikes_out": 10, "energy_j": 5e-7}, {"id": 1, "spikes_out": 20, "energy_j": 1e-6}]}


def _kinds(diffs) -> set[tuple[str, str, str]]:
    return {(d.where, d.field, d.kind) for d in diffs}


def test_identical_reports_have_no_differences():
    assert diff_reports(_report(), copy.deepcopy(_report())) == []
    assert render_differences([], "a.json", "b.json") == "no differences between a.json and b.json\n"


def test_value_changes_are_found_per_section_and_entry():
    a, b = _report(), _report()
    b["totals"]["spikes"] = 31
    b["layers"][1]["spikes"] = 21            # matched by name, not position
    b["layers"].reverse()
    b["cores"][0]["energy_j"] = 5.0000000001e-7  # within the float tolerance: equal
    b["cores"][1]["energy_j"] = 1.1e-6
    diffs = diff_reports(a, b)
    assert _kinds(diffs) == {("totals", "spikes", "differs"), ("layers[k_lif]", "spikes", "differs"),
                             ("cores[1]", "energy_j", "differs")}
    layer = next(d for d in diffs if d.where == "layers[k_lif]")
    assert (layer.a, layer.b) == (20, 21)


def test_null_versus_value_and_missing_entries_are_kept_apart():
    a, b = _report("event"), _report("lava")
    b["totals"]["energy_j"] = None           # lava does not measure energy
    del b["layers"][0]["sops"]               # an absent field counts as null
    a["totals"]["cycles"] = 1000             # only a measures cycles
    b["layers"].append({"name": "v_lif", "kind": "lif", "spikes": 3})
    del b["cores"][1]
    assert _kinds(diff_reports(a, b)) == {
        ("totals", "energy_j", "null_in_b"), ("totals", "cycles", "null_in_b"),
        ("layers[q_lif]", "sops", "null_in_b"), ("layers[v_lif]", "", "only_in_b"), ("cores[1]", "", "only_in_a")}


def test_entries_without_a_key_are_kept_apart():
    """SANA-FE reports add cores with id null (the replayed input): each is compared in its order."""
    a, b = _report(), _report()
    for doc in (a, b):
        doc["cores"] += [{"id": None, "spikes_out": 5}, {"id": None, "spikes_out": 6}]
    b["cores"][3]["spikes_out"] = 7
    assert _kinds(diff_reports(a, b)) == {("cores[None#2]", "spikes_out", "differs")}


def test_integers_compare_exactly_and_lists_by_value():
    a, b = _report(), _report()
    b["totals"]["spikes"] = 30.0             # same number as a float: equal within tolerance
    b["layers"][0]["cores"] = [0, 1]
    assert _kinds(diff_reports(a, b)) == {("layers[q_lif]", "cores", "differs")}


def test_render_lists_values_and_groups_one_sided_fields():
    a, b = _report("event"), _report("lava")
    b["layers"][0]["spikes"] = 11
    for row in b["layers"]:
        row["sops"] = None
    text = render_differences(diff_reports(a, b), "event.json", "lava.json")
    assert "3 differences: 1 differs, 2 null in b" in text
    assert "  layers[q_lif].spikes: 10 -> 11" in text
    assert "measured only by event.json (null in lava.json):\n  layers: sops (2)\n" in text


def _args(tmp_path, a: dict, b: dict, *flags):
    parser = argparse.ArgumentParser()
    add_diff_parser(parser.add_subparsers())
    write_json(tmp_path / "a.json", a)
    write_json(tmp_path / "b.json", b)
    return parser.parse_args(["diff", str(tmp_path / "a.json"), str(tmp_path / "b.json"), *flags])


def test_cli_exit_status_equal_and_different(tmp_path, capsys):
    args = _args(tmp_path, _report(), _report())
    assert args.func(args) == 0
    assert "no differences" in capsys.readouterr().out
    b = _report()
    b["layers"][0]["spikes"] = 99
    args = _args(tmp_path, _report(), b)
    assert run_diff(args) == 1
    assert "layers[q_lif].spikes: 10 -> 99" in capsys.readouterr().out


def test_cli_values_only_ignores_what_one_side_did_not_measure(tmp_path, capsys):
    b = _report("lava")
    b["totals"]["energy_j"] = None
    assert run_diff(_args(tmp_path, _report(), b)) == 1
    assert run_diff(_args(tmp_path, _report(), b, "--values-only")) == 0
    capsys.readouterr()


@pytest.mark.parametrize("content, match", [
    (None, "no such file"),
    ("{not json", "not a readable JSON file"),
    (json.dumps([1, 2]), "not a statten-hw report.json"),
    (json.dumps({"tool": "other", "schema_version": 1}), "not a statten-hw report.json"),
    (json.dumps({"tool": "statten-hw", "schema_version": 1, "layers": {}}), "key 'layers' must be a JSON array"),
    (json.dumps({"tool": "statten-hw", "schema_version": 1, "cores": [3]}), "every entry of 'cores' must be"),
    # Found by review: these were TypeError tracebacks (unhashable keys), or NaN differing from itself.
    (json.dumps({"tool": "statten-hw", "schema_version": 1, "layers": [{"name": ["a"]}]}),
     "every entry of 'layers' needs 'name' as a string, got list"),
    (json.dumps({"tool": "statten-hw", "schema_version": 1, "cores": [{"id": {"x": 1}}]}),
     "every entry of 'cores' needs 'id' as an integer or null, got dict"),
    ('{"tool": "statten-hw", "schema_version": 1, "totals": {"energy_j": NaN}}', "NaN is not a JSON number"),
    # Found by review: RecursionError and ValueError tracebacks.
    ("[" * 100_000 + "]" * 100_000, "not a readable JSON file"),
    ('{"tool": "statten-hw", "schema_version": ' + "9" * 5000 + "}", "not a readable JSON file"),
])
def test_bad_files_raise_one_line_input_errors_naming_the_file(tmp_path, content, match):
    path = tmp_path / "r.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InputError, match=match) as info:
        load_report(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_cli_refuses_reports_of_different_schema_versions(tmp_path):
    b = _report()
    b["schema_version"] = 2
    with pytest.raises(InputError, match="schema version 2"):
        run_diff(_args(tmp_path, _report(), b))


def test_cli_refuses_an_energy_report_against_a_run(tmp_path):
    """energy_j is per sample in an energy report and summed over the samples in a simulate report (4
    samples looked 3.6x the energy), firing_rate an input rate in one and an output rate in the other."""
    energy = _report()
    energy["command"] = "energy"
    with pytest.raises(InputError, match=r"\(simulate\) and .*b.json \(energy\): an energy report's energy_j"):
        run_diff(_args(tmp_path, _report(), energy))


@pytest.mark.parametrize("field, value", [("command", "map"), ("target", "layerwise"), ("block_size", 4)])
def test_reports_of_other_runs_are_never_equal(field, value):
    """Same measurements, but another command, target or block size, or another model or T: the header
    says so and the reports differ (before, a map report and a simulate report could be 'equal')."""
    b = _report()
    b[field] = value
    assert _kinds(diff_reports(_report(), b)) == {("header", field, "differs")}
    b = _report()
    b["model"] = {"family": "statten", "timesteps": 8}
    assert _kinds(diff_reports(_report(), b)) == {("header", "model.timesteps", "null_in_a")}


def test_runs_of_other_data_or_bits_differ_in_the_header_and_accuracy_in_the_outcome():
    """An 8-bit and a 4-bit run of other samples, 87.5 % and 100 %: diff named neither (review finding)."""
    a, b = _report(), _report()
    for doc, bits, samples, accuracy in ((a, 8, 16, 0.875), (b, 4, 8, 1.0)):
        doc["data"] = {"input": "digits", "samples": samples, "calibration": "digits"}
        doc["precision"] = {"quantized_for": "graph", "graph": {"weight_bits": bits, "state_bits": 24},
                            "inputs_clipped": 0, "saturated": {"q_lif": 3} if bits == 4 else {}}
        doc["simulation"] = {"accuracy": accuracy}
    assert _kinds(diff_reports(a, b)) == {("header", "data.samples", "differs"),
                                         ("header", "precision.graph.weight_bits", "differs"),
                                         ("outcome", "accuracy", "differs"),
                                         ("outcome", "values_saturated", "differs")}


def test_a_sweep_report_is_refused_in_one_line(tmp_path):
    path = tmp_path / "report.json"
    write_json(path, {"schema_version": 1, "tool": "statten-hw", "command": "sweep", "configurations": []})
    with pytest.raises(InputError, match="a sweep report .*diff compares the report.json of one map, simulate"):
        load_report(path)


def test_an_edited_outcome_of_other_types_is_compared_not_summed():
    """A hand-edited report whose saturated counts are not integers: no TypeError, the field is unknown."""
    a, b = _report(), _report()
    a["precision"] = {"saturated": {"q_lif": "many"}, "inputs_clipped": 0}
    b["precision"] = {"saturated": {"q_lif": 2}, "inputs_clipped": 0}
    assert ("outcome", "values_saturated", "null_in_a") in _kinds(diff_reports(a, b))


def test_an_integer_beyond_every_float_differs_from_a_float():
    """math.isclose raised OverflowError on a 401-digit integer against a float (review)."""
    a, b = _report(), _report()
    a["totals"]["cores"], b["totals"]["cores"] = 1.5, 10 ** 400
    assert ("totals", "cores", "differs") in _kinds(diff_reports(a, b))
