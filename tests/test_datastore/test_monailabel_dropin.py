"""medstore as a drop-in for MONAI Label 0.8.5's ``LocalDatastore``: datalist, getters, models.

What a MONAI Label user's training script does, unchanged, on a medstore store.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from medstore.datastore import (
    ArchiveError,
    DataModel,
    ImageLabelModel,
    ImageNotFoundError,
    LabelNotFoundError,
    LocalDatastore,
    LocalDatastoreModel,
)
from support.stores import Case, MakeStore

SAMPLE = Path(__file__).resolve().parents[2] / "sample_store"


@pytest.fixture
def sample(tmp_path: Path) -> LocalDatastore:
    copy = tmp_path / "sample"
    shutil.copytree(SAMPLE, copy)
    return LocalDatastore(copy)


def test_the_plain_monai_loop_runs_one_epoch_over_the_sample_store(sample: LocalDatastore) -> None:
    """Before: the 2nd batch failed ('each element in list of batch should be of equal size')."""
    from monai.data import DataLoader, Dataset
    from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged

    datalist = sample.datalist()
    assert len(datalist) == len(sample.get_labeled_images()) >= 4
    keys = ["image", "label"]
    transform = Compose([LoadImaged(keys=keys), EnsureChannelFirstd(keys=keys)])
    seen = 0
    for batch in DataLoader(Dataset(datalist, transform), batch_size=2):
        assert batch["image"].shape[:2] == batch["label"].shape[:2]
        seen += batch["image"].shape[0]
    assert seen == len(datalist)


def test_datalist_entries_are_exactly_monai_labels(sample: LocalDatastore) -> None:
    root = os.path.realpath(sample.root)
    entries = sample.datalist()
    assert all(set(entry) == {"image", "label"} for entry in entries)
    first = sample.get_labeled_images()[0]
    assert entries[0] == {
        "image": os.path.join(root, f"{first}.nii.gz"),
        "label": os.path.join(root, "labels", "final", f"{first}.nii.gz"),
    }


def test_datalist_relative_paths_are_relative_to_the_root(sample: LocalDatastore) -> None:
    """MONAI Label 0.8.5 strips ``os.pathsep`` (':') instead of ``os.sep``: absolute paths."""
    relative = sample.datalist(full_path=False)
    assert relative and all(not os.path.isabs(e["image"]) for e in relative)
    assert [
        {k: os.path.realpath(sample.root / v) for k, v in e.items()} for e in relative
    ] == sample.datalist()


def test_datalist_info_is_opt_in_and_a_copy(sample: LocalDatastore) -> None:
    entries = sample.datalist(with_info=True)
    assert all(set(e) == {"image", "label", "meta"} for e in entries)
    first = sample.get_labeled_images()[0]
    assert entries[0]["meta"] == {
        "image": sample.json()["objects"][first]["image"]["info"],
        "label": sample.get_label_info(first, "final"),
    }
    entries[0]["meta"]["label"].clear()
    assert sample.get_label_info(first, "final")


def test_getters_take_monai_labels_params_and_return_streams(sample: LocalDatastore) -> None:
    first = sample.get_labeled_images()[0]
    image = sample.get_image(first, None)
    label = sample.get_label(first, "final", params={})
    assert isinstance(image, io.BytesIO) and isinstance(label, io.BytesIO)
    assert image.read() == Path(sample.get_image_uri(first)).read_bytes()
    assert label.getvalue() == Path(sample.get_label_uri(first, "final")).read_bytes()


def test_unknown_ids_still_raise_in_local_datastore(sample: LocalDatastore) -> None:
    with pytest.raises(ImageNotFoundError, match="nope"):
        sample.get_image("nope", None)
    with pytest.raises(LabelNotFoundError, match="nope"):
        sample.get_label("nope", "final", None)


def test_monai_labels_models_and_helpers(sample: LocalDatastore) -> None:
    model = LocalDatastoreModel.model_validate(sample.json())
    model.base_path = str(sample.root)
    assert model.tags() == {
        tag for obj in sample.json()["objects"].values() for tag in obj["labels"]
    }
    assert {"final", "alice"} <= model.tags()
    labelled = model.filter_by_tag("final")
    assert list(labelled) == sample.get_labeled_images()
    first = next(iter(labelled))
    assert isinstance(model.objects[first], ImageLabelModel)
    assert "final" in model.objects[first].tags()
    assert isinstance(model.label(first, "final"), DataModel)
    assert model.label(first, "nope") is None and model.label("nope", "final") is None
    assert model.image_path() == os.path.join(str(sample.root), ".")
    assert model.label_path("final") == os.path.join(str(sample.root), "labels", "final")
    assert model.label_path(None) == os.path.join(str(sample.root), "labels")
    assert model.labels_path()["alice"] == os.path.join(str(sample.root), "labels", "alice")
    assert "base_path" not in json.loads(model.model_dump_json(exclude={"base_path"}))


def test_models_without_base_path_give_relative_paths() -> None:
    model = LocalDatastoreModel(name="n", description="d", images_dir="imgs")
    assert model.image_path() == "imgs" and model.label_path("final") == "labels/final"
    assert model.tags() == set() and model.filter_by_tag("final") == {}


def _archive(store: LocalDatastore, limit: int | None) -> tuple[list[str], dict]:
    path = Path(store.get_dataset_archive(limit))
    try:
        with zipfile.ZipFile(path) as zf:
            return sorted(zf.namelist()), json.loads(zf.read("metadata.json"))
    finally:
        path.unlink()


def test_dataset_archive_is_what_0_8_5_writes(sample: LocalDatastore) -> None:
    labelled = sample.get_labeled_images()
    names, metadata = _archive(sample, None)
    expected = [f"image/{i}.nii.gz" for i in labelled] + [f"label/{i}.nii.gz" for i in labelled]
    assert names == sorted([*expected, "metadata.json"])
    assert metadata == LocalDatastoreModel.model_validate(sample.json()).model_dump(
        exclude={"base_path"}
    )
    assert set(metadata) == {"name", "description", "images_dir", "labels_dir", "objects"}


@pytest.mark.parametrize("limit", [None, 0, -1, 10_000])
def test_dataset_archive_limits_that_mean_every_case(sample: LocalDatastore, limit: int) -> None:
    names, _ = _archive(sample, limit)
    assert len(names) == 2 * len(sample.get_labeled_images()) + 1


def test_dataset_archive_limit_cases(sample: LocalDatastore) -> None:
    first_two = sample.get_labeled_images()[:2]
    names, _ = _archive(sample, 2)
    assert names == sorted(
        [f"{kind}/{i}.nii.gz" for kind in ("image", "label") for i in first_two] + ["metadata.json"]
    )


def test_dataset_archive_of_a_store_without_final_labels_is_an_error(
    make_store: MakeStore,
) -> None:
    store = make_store({"a": Case(image=np.zeros((3, 3, 3), np.int16))})
    with pytest.raises(ArchiveError, match="no image has a 'final' label"):
        store.get_dataset_archive(None)


@pytest.mark.parametrize("form", ["monailabel-0.8.5", "medstore-before"])
def test_import_archive_reads_both_metadata_forms(
    sample: LocalDatastore, make_store: MakeStore, form: str
) -> None:
    from medstore.datastore.interop.archive_import import import_archive

    first = sample.get_labeled_images()[0]
    path = Path(sample.get_dataset_archive(1))
    if form == "medstore-before":  # {image_id: {"image", "labels"}} of the archived cases only
        with zipfile.ZipFile(path) as zf:
            files = {n: zf.read(n) for n in zf.namelist() if n != "metadata.json"}
            objects = json.loads(zf.read("metadata.json"))["objects"]
        with zipfile.ZipFile(path, "w") as zf:
            for name, data in files.items():
                zf.writestr(name, data)
            zf.writestr("metadata.json", json.dumps({first: objects[first]}))
    target = make_store()
    try:
        assert import_archive(target, path) == [first]
    finally:
        path.unlink()
    expected = sample.get_image_info(first)
    got = target.get_image_info(first)
    assert got["patient_id"] == expected["patient_id"] and got["tags"] == expected["tags"]
    label_info = target.get_label_info(first, "final")["label_info"]
    assert label_info == sample.get_label_info(first, "final")["label_info"]


def test_server_adapter_follows_monai_labels_unknown_id_conventions(
    sample: LocalDatastore,
) -> None:
    from medstore.datastore.interop.monailabel import MonaiLabelDatastore

    server = MonaiLabelDatastore(sample)
    assert server.get_image_uri("nope") == "" and server.get_label_uri("nope", "final") == ""
    assert server.get_image("nope") is None and server.get_label("nope", "final", None) is None
    assert server.get_image_info("nope") == {} and server.get_label_info("nope", "x") == {}
    assert server.get_labels_by_image_id("nope") == {}
    assert server.get_label_by_image_id("nope", "final") == ""
    first = sample.get_labeled_images()[0]
    stream = server.get_label(first, "final")
    assert stream is not None and stream.getvalue() == sample.get_label(first, "final").getvalue()
    assert server.datalist() == sample.datalist()
    assert server.get_label_by_image_id(first, "final") == first
    empty = MonaiLabelDatastore(LocalDatastore(sample.root.parent / "empty"))
    assert empty.get_dataset_archive(None) == ""  # the endpoint answers 404


@pytest.mark.parametrize(
    ("error", "status"),
    [
        ("ImageNotFoundError", 404),
        ("LabelNotFoundError", 404),
        ("InvalidIdError", 400),
        ("LabelGeometryError", 400),
        ("UnsupportedFormatError", 400),
        ("ArchiveError", 400),
        ("ReadOnlyError", 403),
        ("ManifestCorruptError", 503),
        ("StoreLockedError", 503),
    ],
)
def test_medstore_errors_map_to_clear_http_errors(error: str, status: int) -> None:
    from medstore.datastore import errors
    from medstore.datastore.interop.monailabel_http import http_error

    answer = http_error(getattr(errors, error)("what\nhappened"))
    assert (answer.status, answer.detail) == (status, "what happened")
    assert ("Retry-After" in answer.headers) == (error == "StoreLockedError")


@pytest.mark.skipif(
    importlib.util.find_spec("fastapi") is not None, reason="FastAPI installed: HTTP errors"
)
def test_without_a_server_the_adapter_raises_medstore_errors(sample: LocalDatastore) -> None:
    from medstore.datastore import InvalidIdError
    from medstore.datastore.interop.monailabel import MonaiLabelDatastore

    with pytest.raises(InvalidIdError):
        MonaiLabelDatastore(sample).get_image_uri("../escape")
    with pytest.raises(ImageNotFoundError):
        MonaiLabelDatastore(sample).update_image_info("nope", {"a": 1})


@pytest.mark.parametrize(
    "doc",
    [
        {"name": "n", "description": "", "images_dir": "/etc"},
        {"name": 5, "description": ""},
        {"name": "n", "description": "", "objects": {"../evil": {"image": {}}}},
        {"name": "n", "description": "", "objects": {"a": {"image": {"ext": "/../../x"}}}},
        {"name": "n", "description": "", "objects": {"a": {"image": {}, "labels": {".x": {}}}}},
        {"name": "n", "description": "", "objects": {"a": {"image": {"info": "ts=1"}}}},
    ],
)
def test_models_refuse_what_the_manifest_reader_refuses(doc: dict) -> None:
    from medstore.datastore import ManifestCorruptError
    from medstore.datastore.store.manifest import parse_manifest
    from pydantic import ValidationError

    with pytest.raises(ManifestCorruptError) as refused:
        parse_manifest(json.dumps(doc).encode(), source="model")
    with pytest.raises(ValidationError, match=re.escape(str(refused.value))):
        LocalDatastoreModel.model_validate(doc)
