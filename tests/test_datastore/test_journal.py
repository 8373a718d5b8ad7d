"""The manifest journal (issue 18): O(1) saves, folded into datastore_v2.json, merged with others.

The contract suite runs every store behaviour on the journal path too; these tests pin what is
the journal's own: what lands where, the three-way merge with a program that rewrites the
manifest meanwhile, torn records, the fold timer, ``medstore compact`` and the ``auto`` threshold.
"""

from __future__ import annotations

import copy
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from medstore.datastore import LocalDatastore
from medstore.datastore.errors import ManifestCorruptError
from medstore.datastore.store.journal_merge import merge_objects
from medstore.datastore.store.journal_options import JournalOptions
from medstore.datastore.store.record_log import RecordLog, frame
from support.stores import MakeStore, simple_case

LOG = Path(".medstore") / "journal" / "changes.log"


@pytest.fixture
def journal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every store opened in the test journals its saves (whatever its size)."""
    monkeypatch.setenv("MEDSTORE_WRITE_PATH", "journal")


def _manifest(store: LocalDatastore) -> dict[str, Any]:
    return json.loads(store.layout.manifest.read_bytes())


def _info(doc: dict[str, Any], image_id: str) -> dict[str, Any]:
    return doc["objects"][image_id]["image"]["info"]


# ---------------------------------------------------------------- where a save lands


@pytest.mark.usefixtures("journal")
def test_a_save_goes_to_the_journal_and_every_reader_sees_it(make_store: MakeStore) -> None:
    store = make_store({"a": simple_case(0), "b": simple_case(1)})
    store.compact()  # the factory's own saves
    manifest_before = store.layout.manifest.read_bytes()
    store.update_image_info("a", {"site": "A"})
    assert store.layout.manifest.read_bytes() == manifest_before  # O(1): the manifest untouched
    assert (store.root / LOG).stat().st_size > 0
    assert LocalDatastore(store.root, read_only=True).get_image_info("a")["site"] == "A"
    other = LocalDatastore(store.root, lock_timeout=5.0)
    other.update_image_info("b", {"site": "B"})
    assert store.get_image_info("b")["site"] == "B"  # another writer's record, caught up
    assert store.compact() == 2
    assert _info(_manifest(store), "a")["site"] == "A"
    assert _info(_manifest(store), "b")["site"] == "B"
    assert store.compact() == 0
    other.close()


@pytest.mark.usefixtures("journal")
def test_close_folds_the_journal_in(make_store: MakeStore) -> None:
    store = make_store({"a": simple_case(0)})
    store.update_image_info("a", {"site": "A"})
    assert "site" not in _info(_manifest(store), "a")
    store.close()
    assert _info(_manifest(store), "a")["site"] == "A"


def test_auto_journals_only_from_the_threshold_on(
    make_store: MakeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDSTORE_WRITE_PATH", "auto")
    store = make_store({"a": simple_case(0)})
    store.update_image_info("a", {"site": "A"})  # 1 image < 5,000: MONAI Label's own way
    assert _info(_manifest(store), "a")["site"] == "A"
    assert not (store.root / LOG).exists()
    assert JournalOptions(mode="auto").uses_journal(images=5_000)


def test_an_unknown_write_path_is_refused() -> None:
    with pytest.raises(ValueError, match="MEDSTORE_WRITE_PATH='fast'"):
        JournalOptions.from_env({"MEDSTORE_WRITE_PATH": "fast"})
    with pytest.raises(ValueError, match="MEDSTORE_COMPACT_AFTER_S"):
        JournalOptions.from_env({"MEDSTORE_COMPACT_AFTER_S": "0"})


@pytest.mark.usefixtures("journal")
def test_the_fold_timer_brings_a_lone_save_to_the_manifest(
    make_store: MakeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDSTORE_COMPACT_AFTER_S", "0.3")
    store = make_store({"a": simple_case(0)})
    store.update_image_info("a", {"site": "A"})  # nothing follows it
    deadline = time.monotonic() + 20.0  # thread scheduling on a loaded machine, not speed
    while time.monotonic() < deadline and "site" not in _info(_manifest(store), "a"):
        time.sleep(0.1)
    assert _info(_manifest(store), "a")["site"] == "A"


@pytest.mark.usefixtures("journal")
def test_medstore_compact_command(make_store: MakeStore) -> None:
    store = make_store({"a": simple_case(0)})
    store.compact()  # the factory's own saves
    store.update_image_info("a", {"site": "A"})
    run = subprocess.run(
        [sys.executable, "-m", "medstore.datastore.cli", "compact", "--store", str(store.root)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "folded 1 journal record(s) into datastore_v2.json" in run.stdout
    assert _info(_manifest(store), "a")["site"] == "A"


# ---------------------------------------------------------------- MONAI Label writing meanwhile


@pytest.mark.usefixtures("journal")
def test_a_manifest_rewritten_by_another_program_is_merged_not_clobbered(
    make_store: MakeStore,
) -> None:
    store = make_store({"a": simple_case(0), "b": simple_case(1), "c": simple_case(2)})
    store.update_image_info("a", {"ours": 1})
    store.remove_image("c")
    # MONAI Label rewrites the manifest it read (without our journalled changes)
    doc = _manifest(store)
    _info(doc, "b")["theirs"] = 2
    _info(doc, "c")["theirs"] = 3  # changed what we removed: their work is kept
    doc["objects"]["a"]["labels"]["final"]["info"]["reviewer"] = "ml"
    store.layout.manifest.write_text(json.dumps(doc, indent=2))
    reader = LocalDatastore(store.root, read_only=True)
    assert reader.get_image_info("a")["ours"] == 1
    assert reader.get_image_info("b")["theirs"] == 2
    assert reader.get_label_info("a", "final")["reviewer"] == "ml"
    assert reader.get_image_info("c")["theirs"] == 3
    store.update_image_info("b", {"ours": 4})  # the writer that notices folds it all in
    folded = _manifest(store)
    assert _info(folded, "a")["ours"] == 1 and _info(folded, "c")["theirs"] == 3
    assert _info(folded, "b")["theirs"] == 2  # the new save itself is a journal record
    assert store.get_image_info("b").items() >= {"theirs": 2, "ours": 4}.items()
    assert folded["objects"]["a"]["labels"]["final"]["info"]["reviewer"] == "ml"


_infos = st.dictionaries(st.sampled_from("pqrs"), st.integers(0, 3), max_size=3)
_objects = st.dictionaries(
    st.sampled_from(["a", "b", "c"]),
    st.builds(lambda info: {"image": {"ext": ".nii", "info": info}, "labels": {}}, _infos),
    max_size=3,
)


@settings(max_examples=200, deadline=None)
@given(
    base=_objects, theirs_edit=_objects, ours_edit=_objects, drop=st.sets(st.sampled_from("abc"))
)
def test_merge_keeps_every_key_only_one_side_changed(
    base: dict[str, Any], theirs_edit: dict[str, Any], ours_edit: dict[str, Any], drop: set[str]
) -> None:
    theirs = {**copy.deepcopy(base), **copy.deepcopy(theirs_edit)}
    ours: dict[str, Any] = {k: v for k, v in ours_edit.items() if k not in drop}
    ours.update({k: None for k in drop if k in base})
    merged = merge_objects(base, copy.deepcopy(theirs), copy.deepcopy(ours))
    for image_id in {*base, *theirs, *ours}:
        was, now_theirs, now_ours = base.get(image_id), theirs.get(image_id), ours.get(image_id)
        if image_id not in ours or now_ours == was:  # we did not change it: theirs stands
            assert merged.get(image_id) == now_theirs
        elif now_theirs == was:  # only we changed it: ours stands
            assert merged.get(image_id) == now_ours
        elif now_ours is None or now_theirs is None:  # a deletion loses to a change
            assert merged.get(image_id) == (now_theirs if now_ours is None else now_ours)
        else:  # both changed it: every info key takes the side that changed it
            info = merged[image_id]["image"]["info"]
            base_info = was["image"]["info"] if was else {}
            for key, value in now_theirs["image"]["info"].items():
                if now_ours["image"]["info"].get(key) == base_info.get(key, object()):
                    assert info[key] == value
            for key, value in now_ours["image"]["info"].items():
                if value != base_info.get(key, object()):
                    assert info[key] == value


# ---------------------------------------------------------------- damage


@pytest.mark.usefixtures("journal")
def test_a_torn_last_record_is_ignored_by_readers_and_cut_by_the_next_writer(
    make_store: MakeStore,
) -> None:
    store = make_store({"a": simple_case(0)})
    store.update_image_info("a", {"site": "A"})
    log = store.root / LOG
    whole = log.stat().st_size
    with log.open("ab") as f:  # a writer killed half-way through its record (never acknowledged)
        f.write(b"\x00\x00\x01\x00half a record")
    assert LocalDatastore(store.root, read_only=True).get_image_info("a")["site"] == "A"
    writer = LocalDatastore(store.root, lock_timeout=5.0)
    writer.update_image_info("a", {"site": "B"})
    assert LocalDatastore(store.root, read_only=True).get_image_info("a")["site"] == "B"
    assert log.stat().st_size > whole
    writer.close()


@pytest.mark.usefixtures("journal")
def test_a_record_without_the_base_object_of_an_image_it_changed_is_a_clear_error(
    make_store: MakeStore,
) -> None:
    store = make_store({"a": simple_case(0)})
    store.compact()
    store.update_image_info("a", {"site": "A"})
    log = store.root / LOG
    header, record = RecordLog(log, file_mode=0o644).read().records
    change = json.loads(record)
    del change["before"]["a"]
    log.write_bytes(frame(header) + frame(json.dumps(change).encode()))
    doc = _manifest(store)
    _info(doc, "a")["theirs"] = 1
    store.layout.manifest.write_text(json.dumps(doc))  # a merge is needed: it reads the base
    with pytest.raises(ManifestCorruptError, match="no base object for 1 changed image"):
        LocalDatastore(store.root, read_only=True)


# ---------------------------------------------------------------- the base


@pytest.mark.usefixtures("journal")
def test_the_first_save_copies_nothing_of_the_manifest(make_store: MakeStore) -> None:
    """Before: the first journalled save wrote a whole copy of the manifest as its base (O(N))."""
    store = make_store({f"case_{i}": simple_case(i) for i in range(6)})
    store.compact()
    store.layout.manifest.write_bytes(store.layout.manifest.read_bytes() + b"\n")  # another writer
    fresh = LocalDatastore(store.root, lock_timeout=5.0)
    fresh.update_image_info("case_0", {"site": "A"})
    folder = store.root / LOG.parent
    assert sorted(p.name for p in folder.iterdir()) == ["changes.log"]
    assert (folder / "changes.log").stat().st_size < store.layout.manifest.stat().st_size / 2
    fresh.close()


@pytest.mark.usefixtures("journal")
def test_an_image_changed_twice_merges_against_its_object_before_the_first_change(
    make_store: MakeStore,
) -> None:
    store = make_store({"a": simple_case(0), "b": simple_case(1)})
    store.compact()
    stale = _manifest(store)
    store.update_image_info("a", {"x": 1})
    store.update_image_info("a", {"y": 2})
    _info(stale, "a")["theirs"] = 5  # MONAI Label writes its copy, read before both saves
    store.layout.manifest.write_text(json.dumps(stale))
    info = LocalDatastore(store.root, read_only=True).get_image_info("a")
    assert info.items() >= {"x": 1, "y": 2, "theirs": 5}.items()


@pytest.mark.usefixtures("journal")
def test_a_first_format_journal_with_a_whole_base_copy_is_still_read(
    make_store: MakeStore,
) -> None:
    store = make_store({"a": simple_case(0), "b": simple_case(1)})
    store.close()
    base_raw = store.layout.manifest.read_bytes()
    digest = hashlib.sha256(base_raw).hexdigest()
    folder = store.root / LOG.parent
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"base-{digest}.json").write_bytes(base_raw)
    ours = json.loads(base_raw)
    _info(ours, "a")["ours"] = 1
    header = {"journal": 1, "base": digest, "size": len(base_raw)}
    record = {"t": time.time(), "objects": {"a": ours["objects"]["a"]}}
    record.update(name=ours["name"], description=ours["description"])
    (folder / "changes.log").write_bytes(
        frame(json.dumps(header).encode()) + frame(json.dumps(record).encode())
    )
    theirs = json.loads(base_raw)
    _info(theirs, "b")["theirs"] = 2
    store.layout.manifest.write_text(json.dumps(theirs))
    writer = LocalDatastore(store.root, lock_timeout=5.0)
    assert writer.get_image_info("a")["ours"] == 1
    assert writer.get_image_info("b")["theirs"] == 2
    writer.compact()
    assert sorted(p.name for p in folder.iterdir()) == ["changes.log"]  # the copy is gone
    writer.close()
    assert _info(_manifest(store), "a")["ours"] == 1


@pytest.mark.usefixtures("journal")
def test_doctor_rebuild_keeps_the_saves_waiting_in_the_journal(make_store: MakeStore) -> None:
    from medstore.datastore.upkeep import doctor

    store = make_store({"a": simple_case(0), "b": simple_case(1)})
    store.compact()
    store.update_image_info("a", {"site": "A"})  # a journal record, not yet in the manifest
    store.remove_label("b", "final")
    store.layout.manifest.write_bytes(b'{"name": "x", ')  # the manifest is then damaged
    report = doctor(store.root, rebuild=True)
    assert report.rebuilt_manifest
    reopened = LocalDatastore(store.root, read_only=True)
    assert reopened.get_image_info("a")["site"] == "A"
    assert reopened.get_labeled_images() == ["a"]  # b's final label stays removed
    on_disk = _manifest(store)  # the rebuild's writer folded the journal in
    assert _info(on_disk, "a")["site"] == "A"
