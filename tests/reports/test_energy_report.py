"""``statten-hw energy`` writes a schema-conformant report whose total is the sum of its layers."""
import json

import numpy as np
import pytest

from conftest import official_checkpoint, official_expected
from statten_hw.cli import main
from statten_hw.reports.schema import SCHEMA_VERSION, TOTAL_FIELDS


@pytest.fixture
def fixture_npz(tmp_path):
    x = official_expected("statten_cifar_t4_b2")["inputs"].numpy()
    path = tmp_path / "inputs.npz"
    np.savez(path, x=x, y=np.zeros(len(x), dtype=np.int64))
    return path


def test_energy_report_files_and_totals(tmp_path, fixture_npz):
    out = tmp_path / "rep"
    assert main(["energy", str(official_checkpoint("statten_cifar_t4_b2")), "--dataset", str(fixture_npz),
                 "-o", str(out)]) == 0
    doc = json.loads((out / "report.json").read_text())
    assert doc["schema_version"] == SCHEMA_VERSION and doc["command"] == "energy"
    assert set(doc["totals"]) == set(TOTAL_FIELDS)
    assert doc["totals"]["sops"] is None  # not measured by this command: null, never zero
    assert doc["totals"]["energy_j"] == pytest.approx(sum(row["energy_j"] for row in doc["layers"]))
    assert (out / "report.md").exists() and (out / "layers.csv").exists()
    assert "data:image/png;base64," in (out / "report.html").read_text()
    assert not list(out.glob(".*.tmp"))


def test_energy_report_is_deterministic(tmp_path, fixture_npz):
    args = [str(official_checkpoint("statten_cifar_t4_b2")), "--dataset", str(fixture_npz)]
    main(["energy", *args, "-o", str(tmp_path / "a")])
    main(["energy", *args, "-o", str(tmp_path / "b")])
    assert (tmp_path / "a" / "report.json").read_bytes() == (tmp_path / "b" / "report.json").read_bytes()


def test_energy_bad_profile_exits_2(tmp_path, capsys):
    bad = tmp_path / "rates.json"
    bad.write_text("{not json")
    assert main(["energy", str(official_checkpoint("statten_cifar_t4_b2")), "--rates", str(bad),
                 "-o", str(tmp_path / "r")]) == 2
    assert "rates.json" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
