"""Finished configurations under ``OUT/configurations/<key>.json``, one file each, written atomically.

A sweep that is stopped (Ctrl-C, a lost cluster, a power cut) keeps every configuration that
finished: each is written the moment its task completes, through `write_json` (atomic: a reader sees the
whole file or none). The next run looks each key up and computes only what is missing.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

from statten_hw.reports.files import JSON_READ_ERRORS, tidy_floats, write_json

from .tasks import record_problem

FOLDER = "configurations"


class ResultStore:
    """The results of one sweep folder, addressed by configuration key."""

    def __init__(self, out_dir):
        self.folder = Path(out_dir) / FOLDER

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def load(self, key: str) -> dict | None:
        """The stored result of ``key``; None when absent. A file that cannot be read, or a record
        missing what the report reads (`tasks.record_problem`), is recomputed, with a warning (atomic
        writes never leave one half-written; a hand edit or another version of the tool can)."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
        except JSON_READ_ERRORS as err:
            warnings.warn(f"{path}: unreadable stored result ({err}); computing it again", stacklevel=2)
            return None
        if not isinstance(result, dict) or result.get("key") != key:
            warnings.warn(f"{path}: stored result is not the one of key {key}; computing it again", stacklevel=2)
            return None
        if problem := record_problem(result):
            warnings.warn(f"{path}: stored result is incomplete ({problem}); computing it again", stacklevel=2)
            return None
        return result

    def save(self, result: dict) -> dict:
        """Store ``result``; returns it as stored (`tidy_floats`), so a result computed now equals the same
        one loaded by a later run."""
        result = tidy_floats(result)
        write_json(self.path(result["key"]), result)
        return result
