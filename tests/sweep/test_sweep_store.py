"""Stored results of finished configurations (statten_hw/sweep/store.py)."""
from __future__ import annotations

import json

import pytest

from statten_hw.sweep.store import ResultStore

KEY = "ab" * 32


def test_round_trip_and_absent(tmp_path):
    store = ResultStore(tmp_path)
    assert store.load(KEY) is None
    path = store.save({"key": KEY, "accuracy": 0.5, "totals": {"cores": 3}})
    assert path == tmp_path / "configurations" / f"{KEY}.json"
    assert store.load(KEY) == {"key": KEY, "accuracy": 0.5, "totals": {"cores": 3}}
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left beside it


@pytest.mark.parametrize("content", ["{\"key\": \"ab", "[1, 2]", json.dumps({"key": "other"})])
def test_unusable_file_is_computed_again_with_a_warning(tmp_path, content):
    store = ResultStore(tmp_path)
    store.path(KEY).parent.mkdir(parents=True)
    store.path(KEY).write_text(content)
    with pytest.warns(UserWarning, match=KEY):
        assert store.load(KEY) is None
