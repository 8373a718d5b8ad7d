"""Issue 18: a dataset indexes a store in one read, and refuses what the getters refuse.

``LocalDatastore.image_entries`` answers, for many images at once, what ``get_image_uri``,
``get_image_info``, ``get_label_uri`` and ``get_label_info`` answer one by one; from
``BULK_MIN_IMAGES`` images on it lists each folder once instead of resolving every file. Both
ways are checked here (the threshold lowered to 1, or raised past the store). The datasets build
their records from it and read only the annotation files the annotations folder lists.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from medstore.datasets import VolumeDataset
from medstore.datasets.records import build_records
from medstore.datastore.annotations import LabelAnnotation
from medstore.datastore.annotations.storage import AnnotationStore
from medstore.datastore.errors import ImageNotFoundError, UnsafePathError
from medstore.datastore.store import catalog
from medstore.datastore.store.local import LocalDatastore
from support.stores import MakeStore, link_out_of_store, simple_case

BULK = {"listed": 1, "one by one": 10**9}


@pytest.fixture(params=sorted(BULK))
def bulk(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test with folders listed once (``listed``) and with every path resolved."""
    monkeypatch.setattr(catalog, "BULK_MIN_IMAGES", BULK[request.param])
    return str(request.param)


def _store(make_store: MakeStore, n: int = 3) -> LocalDatastore:
    store = make_store({f"case_{i}": simple_case(i) for i in range(n)})
    store.save_label("case_1", store.get_label_uri("case_1", "final"), "reviewer", {"by": "r"})
    return store


def _getters(store: LocalDatastore, image_id: str) -> tuple[object, ...]:
    labels = sorted(store.get_labels_by_image_id(image_id))
    return (
        image_id,
        store.get_image_uri(image_id),
        store.get_image_info(image_id),
        [(t, store.get_label_uri(image_id, t), store.get_label_info(image_id, t)) for t in labels],
    )


def _entry(entry: object) -> tuple[object, ...]:
    image_id, path, info, labels = entry  # type: ignore[misc]
    info = {**info, "path": path}  # the getter's info names the path too
    return image_id, path, info, [(lb.tag, lb.path, lb.info) for lb in labels]


def test_image_entries_answer_what_the_getters_answer(make_store: MakeStore, bulk: str) -> None:
    store = _store(make_store)
    entries = store.image_entries()
    assert [_entry(e) for e in entries] == [_getters(store, i) for i in sorted(store.list_images())]
    assert [e.image_id for e in store.image_entries(["case_2", "case_0"])] == ["case_2", "case_0"]


def test_entries_keep_the_state_they_were_read_from(make_store: MakeStore, bulk: str) -> None:
    """The entries share the state's info dicts, and a write replaces them, never changes them."""
    store = _store(make_store)
    (entry,) = store.image_entries(["case_1"])
    image_info, label_info = dict(entry.info), dict(entry.labels[0].info)
    store.update_image_info("case_1", {"phase": "arterial"})
    store.update_label_info("case_1", entry.labels[0].tag, {"dice": 0.5})
    assert (entry.info, entry.labels[0].info) == (image_info, label_info)
    assert store.get_image_info("case_1")["phase"] == "arterial"
    assert store.get_label_info("case_1", entry.labels[0].tag)["dice"] == 0.5
    (again,) = store.image_entries(["case_1"])
    assert (again.info["phase"], again.labels[0].info["dice"]) == ("arterial", 0.5)


def test_an_item_s_info_is_its_own(make_store: MakeStore) -> None:
    """A dataset item's ``metainfo["info"]`` is a copy: changing it changes neither the store nor
    the next item."""
    store = _store(make_store)
    store.update_image_info("case_0", {"scores": [1, 2]})
    dataset = VolumeDataset(store)
    meta = dataset[0]["metainfo"]
    assert meta["info"]["path"] == meta["path"] == store.get_image_uri("case_0")
    meta["info"]["scores"].append(3)
    assert dataset[0]["metainfo"]["info"]["scores"] == [1, 2]
    assert store.get_image_info("case_0")["scores"] == [1, 2]


def test_an_unknown_id_is_refused(make_store: MakeStore, bulk: str) -> None:
    store = _store(make_store)
    with pytest.raises(ImageNotFoundError, match="nope"):
        store.image_entries(["case_0", "nope"])
    with pytest.raises(ImageNotFoundError, match="nope"):
        VolumeDataset(store, image_ids=["nope"])


def test_a_copied_image_swapped_for_a_link_out_of_the_store_is_refused(
    make_store: MakeStore, tmp_path: Path, bulk: str
) -> None:
    store = _store(make_store)
    link_out_of_store(Path(store.get_image_uri("case_0")), tmp_path / "outside.nii.gz")
    with pytest.raises(UnsafePathError, match=r"case_0\.nii\.gz"):
        store.image_entries()
    with pytest.raises(UnsafePathError, match=r"case_0\.nii\.gz"):
        VolumeDataset(store)


def test_a_link_that_stays_in_the_store_is_followed(make_store: MakeStore, bulk: str) -> None:
    store = _store(make_store)
    inside = Path(store.get_image_uri("case_1"))
    moved = inside.with_name("kept-case_1.bin")
    inside.rename(moved)
    inside.symlink_to(moved.name)
    (entry,) = store.image_entries(["case_1"])
    assert entry.path == str(moved.resolve()) == store.get_image_uri("case_1")


@pytest.mark.parametrize("planted", ["labels/final/case_2.nii.gz", "labels/final"])
def test_a_label_or_its_folder_swapped_for_a_link_is_refused(
    make_store: MakeStore, tmp_path: Path, bulk: str, planted: str
) -> None:
    store = _store(make_store)
    real = store.root / planted
    (tmp_path / "outside").mkdir()
    link_out_of_store(real, tmp_path / "outside" / real.name)
    with pytest.raises(UnsafePathError, match=planted.replace(".", r"\.")):
        store.image_entries()
    with pytest.raises(UnsafePathError, match=planted.replace(".", r"\.")):
        VolumeDataset(store)


def test_records_come_from_the_entries(make_store: MakeStore, bulk: str) -> None:
    store = _store(make_store)
    records = build_records(store)
    assert [(r.image_id, r.path, {**r.info, "path": r.path}) for r in records] == [
        (i, store.get_image_uri(i), store.get_image_info(i)) for i in sorted(store.list_images())
    ]
    labels = {r.image_id: [(lb.tag, lb.path, lb.classes) for lb in r.labels] for r in records}
    final = store.get_label_uri("case_1", "final")
    assert labels["case_1"] == [
        ("final", final, {1: "liver", 2: "tumor"}),
        ("reviewer", store.get_label_uri("case_1", "reviewer"), None),
    ]


def test_only_listed_annotation_files_are_read(
    make_store: MakeStore, monkeypatch: pytest.MonkeyPatch, bulk: str
) -> None:
    store = _store(make_store)
    store.annotations.add("case_1", LabelAnnotation(identifier="fracture", created_by="a"))
    assert store.annotations.stored_ids() == {"case_1"}
    asked: list[str] = []
    real_list = AnnotationStore.list

    def spy(self: AnnotationStore, image_id: str, **kwargs: object) -> object:
        asked.append(image_id)
        return real_list(self, image_id, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(AnnotationStore, "list", spy)
    dataset = VolumeDataset(store)
    assert asked == ["case_1"]
    assert dataset.image_labels_set == ["fracture"]


def test_an_annotations_folder_planted_as_a_link_is_refused(
    make_store: MakeStore, tmp_path: Path
) -> None:
    store = _store(make_store)
    store.annotations.add("case_1", LabelAnnotation(identifier="fracture"))
    real = store.root / ".medstore" / "annotations"
    outside = tmp_path / "outside"
    shutil.copytree(real, outside)
    shutil.rmtree(real)
    real.symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafePathError, match=r"\.medstore/annotations"):
        store.annotations.stored_ids()
    with pytest.raises(UnsafePathError, match=r"\.medstore/annotations"):
        VolumeDataset(store)
