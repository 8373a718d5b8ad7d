"""``status()`` counts kept as the store changes (issue 18: O(1) instead of a walk of every image).

Whatever changed the store (its own saves, another process's, a batch, a stale copy put right),
the kept counts must equal a fresh count; the module runs on both write paths.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from medstore.datastore import LocalDatastore
from medstore.datastore.store.label_counts import LabelCounts
from support.nifti import make_nifti
from support.stores import MakeStore, simple_case

pytestmark = pytest.mark.contract


def _fresh_status(root: Path) -> dict[str, Any]:
    reader = LocalDatastore(root, read_only=True)
    return reader.status()


def _draft_saved_after_a_copy(
    make_store: MakeStore, tmp_path: Path
) -> tuple[LocalDatastore, bytes]:
    """A two-image store, the manifest's bytes before a draft label of ``a`` was saved, and the
    store after that acknowledged save (the bytes are the stale copy MONAI Label may write back).
    """
    store = make_store({"a": simple_case(0), "b": simple_case(1)})
    store.compact()
    stale = store.layout.manifest.read_bytes()
    label = make_nifti(tmp_path / "src" / "label.nii.gz", np.ones((6, 5, 4), np.uint8))
    store.save_label("a", str(label), "draft", {})  # acknowledged
    return store, stale


def test_status_follows_every_kind_of_change(make_store: MakeStore, tmp_path: Path) -> None:
    store = make_store({f"case_{i}": simple_case(i) for i in range(4)})
    store.compact()
    label = make_nifti(tmp_path / "src" / "label.nii.gz", np.ones((6, 5, 4), np.uint8))
    image = make_nifti(tmp_path / "src" / "image.nii.gz", np.ones((6, 5, 4), np.int16))
    assert store.status()["label_tags"] == {"final": 4}  # counted now, kept from here on
    store.save_label("case_0", str(label), "draft", {})
    assert store.status()["label_tags"] == {"final": 4, "draft": 1}
    store.remove_label("case_1", "final")
    store.remove_image("case_2")
    store.add_image("case_9", str(image), {})
    assert store.status() == {"total": 4, "completed": 2, "label_tags": {"final": 2, "draft": 1}}
    with store.batch():
        store.save_label("case_9", str(label), "draft", {})
        assert store.status()["label_tags"] == {"final": 2, "draft": 2}  # inside the batch
    assert store.status()["label_tags"] == {"final": 2, "draft": 2}
    other = LocalDatastore(store.root, lock_timeout=5.0)
    other.save_label("case_3", str(label), "draft", {})  # another process's save (not folded)
    other.remove_label("case_0", "final")
    expected = {"total": 4, "completed": 1, "label_tags": {"final": 1, "draft": 3}}
    assert store.status() == expected
    assert _fresh_status(store.root) == expected
    other.close()
    store.compact()
    assert store.status() == expected


def test_status_counts_again_after_a_stale_copy_is_put_right(
    make_store: MakeStore, tmp_path: Path
) -> None:
    store, stale = _draft_saved_after_a_copy(make_store, tmp_path)
    assert store.status()["label_tags"] == {"final": 2, "draft": 1}
    doc = json.loads(stale)
    doc["objects"]["b"]["labels"].pop("final")  # MONAI Label writes its copy, and a change
    store.layout.manifest.write_text(json.dumps(doc))
    store.update_image_info("a", {"x": 1})  # the lock: the acknowledged draft is put back
    assert store.status() == _fresh_status(store.root)
    assert store.status()["label_tags"]["draft"] == 1


_objects = st.dictionaries(
    st.sampled_from("abcde"),
    st.builds(
        lambda tags: {"labels": {tag: {} for tag in tags}},
        st.sets(st.sampled_from(["final", "original", "draft"])),
    ),
    max_size=5,
)


@settings(max_examples=200, deadline=None)
@given(start=_objects, steps=st.lists(_objects, max_size=6))
def test_kept_counts_equal_a_fresh_count(
    start: dict[str, Any], steps: list[dict[str, Any]]
) -> None:
    objects = dict(start)
    counts = LabelCounts.of(objects)
    for step in steps:
        for image_id in {*objects, *step}:
            old, new = objects.get(image_id), step.get(image_id)
            counts.replace(old, new)
            if new is None:
                objects.pop(image_id, None)
            else:
                objects[image_id] = new
        assert counts.status() == LabelCounts.of(objects).status()


def test_status_after_an_open_walks_no_image(
    make_store: MakeStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: the first status() after an open walked every image (405 ms at 10^6)."""
    store = make_store({f"case_{i}": simple_case(i) for i in range(3)})
    store.compact()
    label = make_nifti(tmp_path / "src" / "label.nii.gz", np.ones((6, 5, 4), np.uint8))
    store.save_label("case_0", str(label), "draft", {})  # a journal record on that path
    store.remove_label("case_1", "final")
    expected = _fresh_status(store.root)
    assert expected["label_tags"] == {"final": 2, "draft": 1}

    def walked(cls: type, objects: Any) -> LabelCounts:
        raise AssertionError("status() walked every image")

    monkeypatch.setattr(LabelCounts, "of", classmethod(walked))
    assert LocalDatastore(store.root, read_only=True).status() == expected


def test_a_reader_counts_the_saves_it_puts_back_over_a_stale_copy(
    make_store: MakeStore, tmp_path: Path
) -> None:
    """A reader puts acknowledged entries back in memory; status() counts them too."""
    store, stale = _draft_saved_after_a_copy(make_store, tmp_path)
    store.close()
    store.layout.manifest.write_bytes(stale)  # MONAI Label writes back its older copy
    reader = LocalDatastore(store.root, read_only=True)
    assert reader.get_label_info("a", "draft") is not None  # put back in memory
    assert reader.status() == {"total": 2, "completed": 2, "label_tags": {"final": 2, "draft": 1}}
