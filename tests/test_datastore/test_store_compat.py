"""Compatible both ways with MONAI Label 0.8.5: open its store intact; write what it can read."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
from medstore.datastore import LocalDatastore
from medstore.datastore.store.models import LocalDatastoreModel
from pydantic import BaseModel, ConfigDict, Field
from support import reliability_harness as h
from support.nifti import make_nifti

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "monailabel-0.8.5"
TOP_KEYS = {"name", "description", "images_dir", "labels_dir", "objects"}


class _Data(BaseModel):
    """MONAI Label 0.8.5's ``DataModel``, strict: no key it does not know."""

    model_config = ConfigDict(extra="forbid")
    ext: str = ""
    info: dict[str, Any] = Field(default_factory=dict)


class _ImageLabel(BaseModel):
    """MONAI Label 0.8.5's ``ImageLabelModel``, strict."""

    model_config = ConfigDict(extra="forbid")
    image: _Data
    labels: dict[str, _Data] = Field(default_factory=dict)


class _Store(BaseModel):
    """MONAI Label 0.8.5's ``LocalDatastoreModel``, strict."""

    model_config = ConfigDict(extra="forbid")
    name: str
    description: str
    images_dir: str = ""
    labels_dir: str = "labels"
    objects: dict[str, _ImageLabel] = Field(default_factory=dict)


@pytest.fixture
def fixture_store(tmp_path: Path) -> Path:
    """A writable copy of the store MONAI Label 0.8.5 wrote."""
    root = tmp_path / "monailabel"
    shutil.copytree(FIXTURE, root)
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return root


def _fixture_doc() -> dict[str, Any]:
    return json.loads((FIXTURE / "datastore_v2.json").read_bytes())


def _label_like(root: Path, image_id: str, seed: int) -> Path:
    image = nib.load(root / f"{image_id}.nii.gz")
    assert isinstance(image, nib.Nifti1Image)
    data = np.random.default_rng(seed).integers(0, 3, image.shape).astype(np.uint8)
    path = root.parent / f"label-{image_id}-{seed}.nii.gz"
    return make_nifti(path, data, image.affine)


def _assert_monai_label_can_read(root: Path) -> dict[str, Any]:
    raw = (root / "datastore_v2.json").read_bytes()
    doc = json.loads(raw)
    assert set(doc) == TOP_KEYS
    _Store.model_validate(doc)
    assert LocalDatastoreModel.model_validate(doc).model_dump(exclude={"base_path"}) == doc
    # Same bytes as MONAI Label's own json.dumps(indent=2) for this (ASCII) content.
    assert raw == json.dumps(doc, indent=2).encode()
    images = root / (doc["images_dir"] or ".")
    for image_id, obj in doc["objects"].items():
        assert (images / f"{image_id}{obj['image']['ext']}").is_file()
        assert obj["image"]["info"]["name"] == f"{image_id}{obj['image']['ext']}"
        for tag, label in obj["labels"].items():
            assert (root / doc["labels_dir"] / tag / f"{image_id}{label['ext']}").is_file()
    return doc


def test_opening_keeps_every_id_tag_and_info_key(fixture_store: Path) -> None:
    raw = (fixture_store / "datastore_v2.json").read_bytes()
    store = LocalDatastore(fixture_store)
    assert (fixture_store / "datastore_v2.json").read_bytes() == raw, "opening rewrote it"
    expected = _fixture_doc()
    assert store.json() == expected
    assert store.list_images() == list(expected["objects"])  # MONAI Label's order kept
    assert store.name() == "fixture-store"
    assert store.get_label_info("case_001", "final")["label_info"][1] == {"name": "tumor", "idx": 2}
    assert store.get_label_info("case_000", "final")["approved_by"] == "reader-b"
    assert store.get_image_info("case_002")["tags"] == ["split:val"]
    assert store.status() == {
        "total": 5,
        "completed": 2,
        "label_tags": {"final": 2, "original": 1, "alice": 1},
    }
    assert store.get_labeled_images("final", ["liver"]) == ["case_001"]
    assert [d["label"] for d in store.datalist(full_path=False)] == [
        "labels/final/case_000.nii.gz",
        "labels/final/case_001.nii.gz",
    ]


def test_read_only_open_of_the_fixture(fixture_store: Path) -> None:
    before = h.tree_listing(fixture_store)
    store = LocalDatastore(fixture_store, read_only=True)
    assert store.json() == _fixture_doc()
    assert h.tree_listing(fixture_store) == before


def test_info_keys_survive_our_writes(fixture_store: Path) -> None:
    doc = _fixture_doc()
    doc["objects"]["case_003"]["image"]["info"]["future_key"] = {"nested": [1, {"x": None}]}
    doc["objects"]["case_001"]["labels"]["original"]["info"]["scores"] = [0.5, 0.25]
    (fixture_store / "datastore_v2.json").write_text(json.dumps(doc, indent=2))
    store = LocalDatastore(fixture_store)
    store.update_image_info("case_002", {"reviewed": True})
    store.save_label("case_004", _label_like(fixture_store, "case_004", 1), "final")
    store.update_label_info("case_001", "final", {"qa": "ok"})
    store.add_tags("case_000", ["qc"])
    store.remove_label("case_003", "alice")
    store.set_description("touched by medstore")
    written = _assert_monai_label_can_read(fixture_store)
    objects = written["objects"]
    assert objects["case_003"]["image"]["info"]["future_key"] == {"nested": [1, {"x": None}]}
    assert objects["case_001"]["labels"]["original"]["info"]["scores"] == [0.5, 0.25]
    # Every info key of the fixture is still there with its value, unless we changed that key.
    for image_id, obj in doc["objects"].items():
        for key, value in obj["image"]["info"].items():
            assert objects[image_id]["image"]["info"][key] == value, (image_id, key)
        for tag, label in obj["labels"].items():
            if (image_id, tag) == ("case_003", "alice"):
                continue
            for key, value in label["info"].items():
                assert objects[image_id]["labels"][tag]["info"][key] == value, (image_id, tag)
    assert objects["case_002"]["image"]["info"]["reviewed"] is True
    assert objects["case_001"]["labels"]["final"]["info"]["qa"] == "ok"
    assert objects["case_000"]["image"]["info"]["tags"] == ["qc"]
    assert "alice" not in objects["case_003"]["labels"]


def test_what_we_write_validates_against_monai_label_models(tmp_path: Path) -> None:
    root = tmp_path / "ours"
    h.write_store_files(root, 3, labels={"final": [0]})
    store = LocalDatastore(root)
    src = tmp_path / "l.nii.gz"
    src.write_bytes(h.seeded_nifti_bytes(3))
    store.save_label("img001", src, "reader", {"label_info": [{"name": "liver", "idx": 1}]})
    store.update_image_info("img002", {"patient_id": "P1"})
    image = tmp_path / "new.nii.gz"
    image.write_bytes(h.seeded_nifti_bytes(4, dtype="int16"))
    store.add_image("", image, {"modality": "CT"})
    doc = _assert_monai_label_can_read(root)
    label = doc["objects"]["img001"]["labels"]["reader"]
    assert isinstance(label["info"]["ts"], int)
    assert label["info"]["checksum"] == h.sha256_file(src)
    assert set(doc["objects"]) == {"img000", "img001", "img002", "new"}


def test_monai_label_edits_are_picked_up(fixture_store: Path) -> None:
    """MONAI Label rewrites the manifest with its own formatting while we have it open."""
    store = LocalDatastore(fixture_store)
    doc = _fixture_doc()
    doc["objects"]["case_004"]["image"]["info"]["strategy"] = "random"
    (fixture_store / "datastore_v2.json").write_text(json.dumps(doc))  # compact, MONAI-style
    store.update_image_info("case_002", {"x": 1})
    assert store.get_image_info("case_004")["strategy"] == "random"
    assert (
        json.loads((fixture_store / "datastore_v2.json").read_bytes())["objects"]["case_004"][
            "image"
        ]["info"]["strategy"]
        == "random"
    )
