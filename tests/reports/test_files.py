"""Written reports carry the cost model's numbers, not the float noise of summing them."""
from __future__ import annotations

import csv
import json
from fractions import Fraction

import numpy as np

from statten_hw.reports.files import write_csv, write_json

# Per-event cycle costs of the loihi2 target (sop, neuron update, packet), as the TOML writes them.
COSTS = ("3.5", "8.4", "2.1")
COUNTS = (1777, 8192, 1016)


def _float_sum() -> float:
    """The cycles as the simulator sums them: counts times float costs, one after another."""
    total = 0.0
    for count, cost in zip(COUNTS, COSTS):
        total += count * float(cost)
    return total


def _exact() -> float:
    """The same sum in exact decimal arithmetic, then the nearest float."""
    return float(sum(count * Fraction(cost) for count, cost in zip(COUNTS, COSTS)))


def test_float_sums_are_written_as_the_exact_decimal(tmp_path):
    assert _float_sum() != _exact()  # the noise this guards against is there before writing
    doc = {"cycles": _float_sum(), "per_step": [np.float64(_float_sum()) / 4], "n": 3, "name": "x", "none": None}
    read = json.loads(write_json(tmp_path / "r.json", doc).read_text())
    assert read == {"cycles": _exact(), "per_step": [float(Fraction(str(_exact())) / 4)], "n": 3, "name": "x",
                    "none": None}


def test_csv_cells_drop_the_noise_too(tmp_path):
    rows = [{"layer": "a", "cycles": _float_sum(), "spikes": 7}]
    with open(write_csv(tmp_path / "t.csv", rows), newline="") as f:
        row = next(csv.DictReader(f))
    assert row == {"layer": "a", "cycles": repr(_exact()), "spikes": "7"}


def test_small_and_large_magnitudes_keep_their_digits(tmp_path):
    values = [1.2711e-05, 6.02214076e23, 0.1 + 0.2, 123456789.123]
    read = json.loads(write_json(tmp_path / "v.json", values).read_text())
    assert read == [1.2711e-05, 6.02214076e23, 0.3, 123456789.123]
