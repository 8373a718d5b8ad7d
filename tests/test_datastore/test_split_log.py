"""The store's split log: the on-disk format stays readable, replay by time, durable appends."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from medstore.datastore import LocalDatastore, ReadOnlyError, SplitLog, seeded_order_key

# Lines as earlier medstore versions wrote them (sorted keys, ISO-8601 UTC "at"), plus a line from
# a newer format and a torn last line, both skipped.
_OLD_LOG = "\n".join(
    [
        '{"at": "2026-11-21T10:00:00.000000Z", "event": "assign", "format_version": 1, '
        '"image_id": "a", "record_id": "r1", "source": "local", "split": "train"}',
        '{"at": "2026-11-21T10:00:00.000000Z", "event": "assign", "format_version": 1, '
        '"image_id": "b", "record_id": "r2", "source": "local", "split": "val"}',
        '{"at": "2026-11-22T10:00:00.000000Z", "event": "delete", "format_version": 1, '
        '"image_id": "a", "record_id": "r1"}',
        '{"at": "2026-11-22T10:00:00.000000Z", "event": "assign", "format_version": 1, '
        '"image_id": "a", "record_id": "r3", "source": "nnunet", "split": "val"}',
        '{"at": "2026-11-23T10:00:00.000000Z", "event": "assign", "format_version": 2, '
        '"image_id": "b", "record_id": "r4", "split": "test"}',
        '{"at": "2026-11-23T1',
    ]
)


def _store(tmp_path: Path, log: str | None = None) -> LocalDatastore:
    store = LocalDatastore(tmp_path / "store")
    if log is not None:
        path = store.side_path("splits.jsonl")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(log)
    return store


def test_existing_log_replays_now_and_as_of(tmp_path: Path) -> None:
    log = SplitLog(_store(tmp_path, _OLD_LOG))
    assert {k: v.split for k, v in log.assignments().items()} == {"a": "val", "b": "val"}
    assert log.assignments()["a"].record_id == "r3"
    then = log.assignments("2026-11-21T12:00:00Z")
    assert {k: v.split for k, v in then.items()} == {"a": "train", "b": "val"}
    moment = dt.datetime(2026, 11, 21, 12, tzinfo=dt.UTC)
    assert log.assignments(moment) == then
    assert log.assignments("2026-11-20T00:00:00Z") == {}
    with pytest.raises(ValueError, match="ISO-8601"):
        log.assignments("yesterday")


def test_save_appends_the_same_line_format(tmp_path: Path) -> None:
    store = _store(tmp_path, _OLD_LOG)
    log = SplitLog(store)
    assert log.save({"a": "val", "b": "train", "c": "train"}, source="tags", force=True) == 2
    lines = log.path.read_text().splitlines()
    assert lines[5] == '{"at": "2026-11-23T1'  # the torn line is kept, never rewritten
    events = [json.loads(line) for line in lines[6:]]
    assert [(e["event"], e["image_id"]) for e in events] == [
        ("delete", "b"),
        ("assign", "b"),
        ("assign", "c"),
    ]
    assign = events[1]
    assert sorted(assign) == [
        "at",
        "event",
        "format_version",
        "image_id",
        "record_id",
        "save",
        "source",
        "split",
    ]
    assert len({e["save"] for e in events}) == 1  # one save: replayed whole or not at all
    assert [e.get("save_end") for e in events] == [None, None, True]
    assert assign["format_version"] == 1 and assign["source"] == "tags"
    assert assign["at"].endswith("Z") and len(assign["at"]) == len("2026-11-21T10:00:00.000000Z")
    assert events[0]["record_id"] == "r2"  # the withdrawn assignment
    assert {k: v.split for k, v in log.assignments().items()} == {
        "a": "val",
        "b": "train",
        "c": "train",
    }


def test_conflicts_need_force_and_read_only_stores_refuse(tmp_path: Path) -> None:
    store = _store(tmp_path, _OLD_LOG)
    with pytest.raises(ValueError, match="force=True"):
        SplitLog(store).save({"b": "train"}, source="local")
    assert SplitLog(store).save({"b": "val"}, source="local") == 0  # already there
    read_only = LocalDatastore(store.root, read_only=True)
    with pytest.raises(ReadOnlyError, match="read-only"):
        SplitLog(read_only).save({"z": "train"}, source="local")


def test_seeded_order_key_is_fixed_across_versions() -> None:
    # The local split and the nnU-Net fold export order groups by these; changing them would
    # change every seeded split.
    assert seeded_order_key(0, "patient:P1").hex()[:16] == "5a0964f21aba0e5f"
    assert seeded_order_key(7, "image:a").hex()[:16] == "a541fc415af91d8f"
