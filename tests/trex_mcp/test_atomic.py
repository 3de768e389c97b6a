"""Atomic writes: the old content survives a failed write, and no temp file is left behind."""

from __future__ import annotations

import json
import os

import pytest

from trex_mcp.atomic import (
    atomic_write_json,
    atomic_write_text,
    is_complete,
    new_tmp_dir,
    publish_dir,
)


def test_a_write_failing_midway_keeps_the_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "result.json"
    atomic_write_text(target, "old")

    def broken_fsync(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(target, "new content")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_json_writes_replace_non_finite_numbers_with_null(tmp_path):
    target = tmp_path / "r.json"
    atomic_write_json(target, {"loss": float("nan"), "nested": [float("inf"), 1.5]})
    assert json.loads(target.read_text()) == {"loss": None, "nested": [None, 1.5]}


def test_publish_dir_renames_a_complete_folder_into_place_and_replaces_an_older_one(tmp_path):
    final = tmp_path / "adapter"
    for content in ("first", "second"):
        tmp = new_tmp_dir(final)
        (tmp / "weights").write_text(content)
        publish_dir(tmp, final)
        assert is_complete(final) and (final / "weights").read_text() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]
