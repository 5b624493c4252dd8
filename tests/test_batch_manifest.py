"""The manifest, its records and its lock (:mod:`instacolor.batch.manifest`)."""

from __future__ import annotations

import json

import pytest

from instacolor.batch.manifest import STATUSES, Manifest, Record, read_successes
from instacolor.errors import InputError, UsageError


def test_manifest_is_locked_and_ends_a_line_cut_short(tmp_path):
    path = tmp_path / "manifest.jsonl"
    path.write_text('{"status": "done", "output": "a"}\n{"status": "do')
    manifest = Manifest(path)
    try:
        with pytest.raises(UsageError, match="another instacolor batch"):
            Manifest(path)
        manifest.append(Record(status="failed", input="x.png", output="y.png", error="bad"))
    finally:
        manifest.close()
    lines = path.read_text().splitlines()
    assert json.loads(lines[-1])["error"] == "bad" and len(lines) == 3
    assert list(read_successes(path)) == ["a"]


def test_a_record_with_an_unknown_status_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match=r"status: expected one of .*received 'ok'") as info:
        Record(status="ok", input="x.png", output="y.png")
    assert isinstance(info.value, ValueError)
    for status in STATUSES:
        assert Record(status=status, input="x.png", output="y.png").status == status
