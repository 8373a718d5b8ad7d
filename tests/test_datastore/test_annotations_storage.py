"""Tests of AnnotationStore on a real LocalDatastore: CRUD, filters, schema, segmentation labels."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import orjson
import pytest
from medstore.datastore.annotations import (
    AnnotationSpec,
    AnnotationStore,
    BoxAnnotation,
    CategoryAnnotation,
    LabelAnnotation,
    LineAnnotation,
    VolumeSegmentation,
)
from medstore.datastore.errors import (
    AnnotationError,
    ImageNotFoundError,
    InvalidIdError,
    ReadOnlyError,
)
from medstore.datastore.store.local import LocalDatastore
from support.nifti import make_nifti

SHAPE = (4, 5, 6)  # canonical (D, H, W) of the NIfTI written below
AFFINE = np.diag([0.5, 0.7, 2.0, 1.0])  # the NIfTI file's own (x, y, z) affine
# Affine of the canonical (D, H, W) array: d -> +S, h -> -A (x flipped), w -> -R (y flipped).
CANONICAL = np.array(
    [[0, 0, -0.5, 2.5], [0, -0.7, 0, 2.8], [2.0, 0, 0, 0], [0, 0, 0, 1]], dtype=float
)


@pytest.fixture
def store_with_images(tmp_path: Path) -> Callable[..., LocalDatastore]:
    """Factory: a store holding the given image ids (each a small NIfTI with a known shape)."""

    def make(*image_ids: str, read_only: bool = False) -> LocalDatastore:
        root = tmp_path / "store"
        src = tmp_path / "src"
        src.mkdir(exist_ok=True)
        store = LocalDatastore(root, lock_timeout=5.0)
        for image_id in image_ids:
            path = src / f"{image_id}.nii.gz"
            make_nifti(path, np.zeros(SHAPE[::-1], np.int16), AFFINE)
            store.add_image(image_id, path, {"shape": list(SHAPE), "affine": CANONICAL.tolist()})
        return LocalDatastore(root, read_only=True) if read_only else store

    return make


def _box(x: float = 10, frame: int = 1, **fields: object) -> BoxAnnotation:
    return BoxAnnotation.from_points(
        [(x, 2, frame), (x + 3, 4, frame)], identifier="nodule", frame_index=frame, **fields
    )


def test_add_get_list_round_trip(store_with_images: Callable[..., LocalDatastore]) -> None:
    store = store_with_images("case_1")
    anns = AnnotationStore(store)
    box = _box(created_by="dr-a")
    ann_id = anns.add("case_1", box)
    assert ann_id == box.id
    got = anns.get("case_1", ann_id)
    assert isinstance(got, BoxAnnotation)
    assert got.points == box.points and got.created_by == "dr-a"
    assert got.created_at is not None
    path = store.root / ".medstore" / "annotations" / "case_1.json"
    doc = orjson.loads(path.read_bytes())
    assert doc["format_version"] == 2 and len(doc["annotations"]) == 1
    assert anns.list("case_2") == []


def test_re_adding_the_same_payload_changes_nothing(
    store_with_images: Callable[..., LocalDatastore],
) -> None:
    store = store_with_images("case_1")
    anns = AnnotationStore(store)
    anns.add_many("case_1", [_box(), _box(x=20)])
    path = store.root / ".medstore" / "annotations" / "case_1.json"
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    ids = anns.add_many("case_1", [_box(), _box(x=20)])
    assert len(ids) == 2
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
    clash = LabelAnnotation(identifier="other", id=ids[0])
    with pytest.raises(AnnotationError, match="already exists"):
        anns.add("case_1", clash)


def test_list_filters(store_with_images: Callable[..., LocalDatastore]) -> None:
    store = store_with_images("case_1")
    anns = AnnotationStore(store)
    anns.add_many(
        "case_1",
        [
            _box(frame=0, created_by="a", status="new"),
            _box(frame=2, created_by="b"),
            LineAnnotation.from_points((0, 0, 2), (1, 1, 2), identifier="diameter", frame_index=2),
            CategoryAnnotation(identifier="finding", value="benign", created_by="a"),
        ],
    )
    assert len(anns.list("case_1")) == 4
    assert [a.annotation_type for a in anns.list("case_1", type="square")] == ["box", "box"]
    assert len(anns.list("case_1", scope="image")) == 1
    assert len(anns.list("case_1", frame=2)) == 2
    assert len(anns.list("case_1", created_by="a")) == 2
    assert len(anns.list("case_1", identifier="diameter")) == 1
    assert len(anns.list("case_1", status="new")) == 1
    assert len(anns.list("case_1", created_by="a", type="category")) == 1
    with pytest.raises(AnnotationError, match="unknown annotation type"):
        anns.list("case_1", type="nope")


def test_update_and_soft_then_hard_delete(store_with_images: Callable[..., LocalDatastore]) -> None:
    anns = AnnotationStore(store_with_images("case_1"))
    ann_id = anns.add("case_1", CategoryAnnotation(identifier="finding", value="benign"))
    changed = anns.get("case_1", ann_id).model_copy(update={"value": "malignant"})
    anns.update("case_1", changed)
    got = anns.get("case_1", ann_id)
    assert isinstance(got, CategoryAnnotation) and got.value == "malignant"
    assert got.updated_at is not None
    anns.delete("case_1", ann_id, deleted_by="dr-b")
    assert anns.list("case_1") == []
    (gone,) = anns.list("case_1", include_deleted=True)
    assert gone.deleted and gone.deleted_by == "dr-b" and gone.deleted_at is not None
    anns.delete("case_1", ann_id, hard=True)
    assert anns.list("case_1", include_deleted=True) == []
    with pytest.raises(AnnotationError, match="no annotation"):
        anns.delete("case_1", ann_id)
    with pytest.raises(AnnotationError, match="no annotation"):
        anns.update("case_1", changed)
    with pytest.raises(AnnotationError, match="no annotation"):
        anns.get("case_1", ann_id)


def test_bad_input_writes_nothing(store_with_images: Callable[..., LocalDatastore]) -> None:
    store = store_with_images("case_1")
    anns = AnnotationStore(store)
    path = store.root / ".medstore" / "annotations" / "case_1.json"
    with pytest.raises(
        AnnotationError, match=r"frame_index 4 is outside image 'case_1' \(4 frames\)"
    ):
        anns.add_many("case_1", [_box(frame=1), _box(frame=4)])
    assert not path.exists()
    with pytest.raises(ImageNotFoundError, match="case_9"):
        anns.add("case_9", _box())
    with pytest.raises(InvalidIdError):
        anns.list("../etc")
    with pytest.raises(AnnotationError, match="expected an Annotation"):
        anns.add("case_1", {"type": "label"})  # type: ignore[arg-type]
    assert not path.exists()


def test_corrupt_file_is_refused_not_overwritten(
    store_with_images: Callable[..., LocalDatastore],
) -> None:
    store = store_with_images("case_1")
    anns = AnnotationStore(store)
    path = store.root / ".medstore" / "annotations" / "case_1.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(b'{"format_version": 1, "annotations": [')
    with pytest.raises(AnnotationError, match="corrupt"):
        anns.list("case_1")
    with pytest.raises(AnnotationError, match="corrupt"):
        anns.add("case_1", _box())
    assert path.read_bytes() == b'{"format_version": 1, "annotations": ['
    path.write_bytes(b'{"format_version": 99, "annotations": []}')
    with pytest.raises(AnnotationError, match="unsupported version"):
        anns.list("case_1")


def test_read_only_store_reads_but_refuses_writes(
    store_with_images: Callable[..., LocalDatastore],
) -> None:
    AnnotationStore(store_with_images("case_1")).add("case_1", _box())
    ro = AnnotationStore(store_with_images(read_only=True))
    assert len(ro.list("case_1")) == 1
    with pytest.raises(ReadOnlyError):
        ro.add("case_1", _box(x=50))
    with pytest.raises(ReadOnlyError):
        ro.delete("case_1", ro.list("case_1")[0].id or "")
    with pytest.raises(ReadOnlyError):
        ro.set_schema([])


def test_schema_constrains_annotations(store_with_images: Callable[..., LocalDatastore]) -> None:
    store = store_with_images("case_1")
    anns = AnnotationStore(store)
    anns.set_schema(
        [
            AnnotationSpec(
                identifier="finding",
                type="category",
                values=["benign", "malignant"],
                scope="image",
                required=True,
            ),
            AnnotationSpec(identifier="nodule", type="square", scope="frame", color="#ff0000"),
        ]
    )
    doc = orjson.loads((store.root / ".medstore" / "schema.json").read_bytes())
    assert doc["format_version"] == 1 and doc["annotations"][1]["type"] == "box"
    assert anns.missing_required("case_1") == ["finding"]
    anns.add("case_1", _box())
    anns.add("case_1", CategoryAnnotation(identifier="finding", value="benign"))
    assert anns.missing_required("case_1") == []
    with pytest.raises(AnnotationError, match="'odd' is not one of"):
        anns.add("case_1", CategoryAnnotation(identifier="finding", value="odd"))
    with pytest.raises(AnnotationError, match="not in the project schema"):
        anns.add("case_1", LabelAnnotation(identifier="artifact"))
    with pytest.raises(AnnotationError, match="type 'line' is not one of"):
        anns.add("case_1", LineAnnotation.from_points((0, 0), (1, 1), identifier="nodule"))
    anns.add("case_1", LabelAnnotation(identifier="artifact"), allow_external=True)
    assert len(anns.list("case_1")) == 3
    with pytest.raises(AnnotationError, match="unknown annotation type"):
        AnnotationSpec(identifier="x", type="hologram")


def test_volume_segmentation_becomes_a_monai_label(
    store_with_images: Callable[..., LocalDatastore],
) -> None:
    store = store_with_images("case_1")
    anns = AnnotationStore(store)
    labels = np.zeros(SHAPE, dtype=np.uint8)
    labels[1, 1:3, 2:5] = 2
    labels[3, 0, 0] = 1
    seg = VolumeSegmentation.from_semantic_segmentation(
        labels, {"background": 0, "liver": 1, "tumor": 2}, created_by="reader-a"
    )
    ann_id = anns.add("case_1", seg, allow_external=True)
    stored = anns.get("case_1", ann_id)
    assert isinstance(stored, VolumeSegmentation) and stored.label_tag == "reader-a"
    uri = Path(store.get_label_uri("case_1", "reader-a"))
    assert uri == store.root / "labels" / "reader-a" / "case_1.nii.gz"
    info = store.get_label_info("case_1", "reader-a")
    assert info["label_info"] == [{"name": "liver", "idx": 1}, {"name": "tumor", "idx": 2}]
    image = nib.load(uri)
    assert np.array_equal(np.asarray(image.dataobj), labels)
    np.testing.assert_allclose(image.affine, CANONICAL)
    # In the image file's own orientation the label lands on the same voxels.
    in_file_order = nib.as_closest_canonical(image)
    np.testing.assert_allclose(in_file_order.affine, AFFINE)
    file_data = np.asarray(in_file_order.dataobj)
    assert file_data[5, 4, 3] == 1  # (d, h, w) = (3, 0, 0) is file (i, j, k) = (5 - w, 4 - h, d)
    assert (file_data == 1).sum() == 1
    voxel = 0.5 * 0.7 * 2.0
    assert stored.volume_mm3(CANONICAL) == pytest.approx({"liver": voxel, "tumor": 6 * voxel})
    history = store.label_history("case_1", "reader-a")
    again = anns.add("case_1", seg, allow_external=True)
    assert again == ann_id and store.label_history("case_1", "reader-a") == history


def test_add_bulk_writes_many_images_and_validates_first(
    store_with_images: Callable[..., LocalDatastore],
) -> None:
    store = store_with_images("case_1", "case_2")
    anns = AnnotationStore(store)
    result = anns.add_bulk({"case_1": [_box(), _box(x=30)], "case_2": [_box(frame=3)]})
    assert [len(v) for v in result.values()] == [2, 1]
    assert len(anns.list("case_1")) == 2 and anns.list("case_2")[0].frame_index == 3
    assert anns.add_bulk({"case_1": [_box()]}) == {"case_1": [_box().id]}
    assert len(anns.list("case_1")) == 2
    with pytest.raises(AnnotationError, match="outside image"):
        anns.add_bulk({"case_2": [_box(x=99)], "case_1": [_box(frame=9)]})
    assert len(anns.list("case_2")) == 1  # nothing written for the valid image either
