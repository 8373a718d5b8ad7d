"""split(): seeded local ratios (by patient), the persisted append-only log, legacy tags."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest
from medstore.datasets import VolumeDataset
from medstore.datastore import SplitLog
from medstore.datastore.store.local import LocalDatastore
from support.stores import MakeStore, simple_case


def _store(make_store: MakeStore, n: int = 10) -> LocalDatastore:
    cases = {}
    for i in range(n):
        case = simple_case(i, shape=(3, 3, 2))
        case.info = {"patient_id": f"P{i // 3}"}
        cases[f"img_{i:02d}"] = case
    return make_store(cases)


def _ids(ds: VolumeDataset) -> list[str]:
    return sorted(ds.get_image_id(i) for i in range(len(ds)))


def test_local_split_ratios_and_metadata(make_store: MakeStore) -> None:
    ds = VolumeDataset(_store(make_store))
    parts = ds.split(train=0.7, val=0.2, test=0.1, seed=3)
    assert list(parts) == ["train", "val", "test"]
    assert [len(parts[k]) for k in parts] == [7, 2, 1]
    assert sorted(i for p in parts.values() for i in _ids(p)) == _ids(ds)
    assert parts["val"].split_name == "val" and parts["val"].split_source == "local"
    assert parts["val"].split_as_of_timestamp is None and parts.source == "local"
    again = ds.split(train=0.7, val=0.2, test=0.1, seed=3)
    assert all(_ids(again[k]) == _ids(parts[k]) for k in parts)
    assert _ids(ds.split(train=0.7, val=0.3, seed=4)["val"]) != _ids(parts["val"])


@pytest.mark.slow
def test_seeded_split_identical_in_another_process(make_store: MakeStore) -> None:
    store = _store(make_store)
    mine = _ids(VolumeDataset(store).split(train=0.5, val=0.5, seed=11)["val"])
    code = (
        "import sys; sys.path.insert(0, 'tests/test_datasets');"
        "from medstore.datasets import VolumeDataset;"
        f"p = VolumeDataset({str(store.root)!r}).split(train=0.5, val=0.5, seed=11);"
        "print(sorted(p['val'].get_image_id(i) for i in range(len(p['val']))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123", "PATH": ""},
    )
    assert out.stdout.strip() == str(mine)


def test_by_patient_never_splits_a_patient(make_store: MakeStore) -> None:
    ds = VolumeDataset(_store(make_store))
    for seed in range(5):
        parts = ds.split(train=0.6, val=0.4, seed=seed, by_patient=True)
        patients = [{r.info["patient_id"] for r in p.index.image_records()} for p in parts.values()]
        assert not patients[0] & patients[1]
        assert sum(len(p) for p in parts.values()) == 10


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"train": 0.5, "val": 0.2}, "sum to 1"),
        ({"train": 1.2, "val": -0.2}, "positive"),
        ({"train": 0.5, "val": 0.5, "use_project_splits": True}, "cannot be combined"),
        ({"use_project_splits": True, "use_server_splits": True}, "exclusive"),
        ({"train": 1.0, "as_of_timestamp": "2026-01-01T00:00:00Z"}, "persisted"),
        ({"by_patient": True}, "local ratio"),
        ({"use_project_splits": True, "as_of_timestamp": "yesterday"}, "ISO-8601"),
    ],
)
def test_bad_split_arguments(make_store: MakeStore, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        VolumeDataset(_store(make_store, 3)).split(**kwargs)


def test_legacy_tags(make_store: MakeStore) -> None:
    store = _store(make_store, 4)
    store.add_tags("img_00", ["split:train"])
    store.add_tags("img_01", ["split:test"])
    ds = VolumeDataset(store)
    with pytest.deprecated_call():
        parts = ds.split(use_server_splits=True)
    assert {k: _ids(v) for k, v in parts.items()} == {"test": ["img_01"], "train": ["img_00"]}
    assert parts["train"].split_source == "tags"
    auto = ds.split()  # no ratios, no persisted log → tags
    assert auto.source == "tags"


def test_no_tags_and_no_log_is_an_error(make_store: MakeStore) -> None:
    with pytest.raises(ValueError, match="split:<name>"):
        VolumeDataset(_store(make_store, 2)).split()


def test_save_then_replay_persisted_splits(make_store: MakeStore) -> None:
    store = _store(make_store, 6)
    ds = VolumeDataset(store)
    first = ds.split(train=0.5, val=0.5, seed=1)
    assert first.save() == 6 and first.save() == 0  # idempotent
    log = store.side_path("splits.jsonl")
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert all(e["format_version"] == 1 and e["event"] == "assign" for e in events)

    auto = VolumeDataset(store).split()  # no ratios + a log → persisted mode
    assert auto.source == "store" and auto["val"].split_source == "store"
    assert {k: _ids(v) for k, v in auto.items()} == {k: _ids(v) for k, v in first.items()}
    stamp = auto["val"].split_as_of_timestamp
    assert stamp is not None and stamp.endswith("Z")
    time.sleep(0.01)
    between = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    time.sleep(0.01)

    second = ds.split(train=0.5, val=0.5, seed=2)
    moved = [i for i in _ids(second["train"]) if i in _ids(first["val"])]
    assert moved
    with pytest.raises(ValueError, match="force=True"):
        second.save()
    assert second.save(force=True) == len(moved) * 2  # moved images in both directions
    now = VolumeDataset(store).split(use_project_splits=True)
    assert {k: _ids(v) for k, v in now.items()} == {k: _ids(v) for k, v in second.items()}
    then = VolumeDataset(store).split(as_of_timestamp=between)
    assert {k: _ids(v) for k, v in then.items()} == {k: _ids(v) for k, v in first.items()}
    assert then["train"].split_as_of_timestamp == between
    deletes = [json.loads(x) for x in log.read_text().splitlines() if '"delete"' in x]
    assert len(deletes) == len(moved) * 2  # soft-deleted, never rewritten
    with pytest.raises(ValueError, match="no split assignments"):
        VolumeDataset(store).split(as_of_timestamp="2000-01-01T00:00:00.000000Z")


def test_torn_last_line_is_ignored(make_store: MakeStore) -> None:
    store = _store(make_store, 2)
    VolumeDataset(store).split(a=0.5, b=0.5, seed=0).save()
    log = store.side_path("splits.jsonl")
    with open(log, "ab") as handle:
        handle.write(b'{"format_version": 1, "event": "assi')
    assert len(SplitLog(store).assignments()) == 2
    assert VolumeDataset(store).split(c=0.5, d=0.5, seed=5).save(force=True) == 2
    lines = log.read_text().splitlines()
    assert lines[2].endswith('"assi') and json.loads(lines[-1])["split"] in ("c", "d")
    assert sorted(name for name, _ in SplitLog(store).assignments().values()) == ["c", "d"]


def test_read_only_store_cannot_save(make_store: MakeStore) -> None:
    root = _store(make_store, 2).root
    ro = LocalDatastore(root, read_only=True)
    parts = VolumeDataset(ro, cache_dir=root.parent / "c").split(a=0.5, b=0.5, seed=0)
    with pytest.raises(PermissionError, match="read-only"):
        parts.save()
