"""The committed sample store: reproducible from its script, and as realistic as it claims."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from medstore.datastore import LocalDatastore
from medstore.datastore.imaging import check_label_geometry, read_image

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "sample_store"


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".medstore" not in p.parts and p.name != ".lock"
    }


@pytest.fixture(scope="module")
def store() -> LocalDatastore:
    return LocalDatastore(SAMPLE, read_only=True)


def test_script_regenerates_the_committed_bytes(tmp_path: Path) -> None:
    out = tmp_path / "regenerated"
    script = REPO / "scripts" / "make_sample_store.py"
    subprocess.run(
        [sys.executable, str(script), "--out", str(out)], check=True, capture_output=True
    )
    assert _files(out) == _files(SAMPLE)


def test_small_enough_to_commit() -> None:
    assert sum(len(b) for b in _files(SAMPLE).values()) < 3_000_000


def test_images_labels_and_info_as_documented(store: LocalDatastore) -> None:
    ids = store.list_images()
    assert 8 <= len(ids) <= 12
    status = store.status()
    assert status["completed"] >= len(ids) // 2
    assert status["label_tags"]["alice"] >= 2 and status["label_tags"]["original"] >= 2
    names = {
        c["name"]
        for i in store.get_labeled_images()
        for c in store.get_label_info(i, "final")["label_info"]
    }
    assert names in ({"liver", "spleen"}, {"liver", "spleen", "tumor"})
    infos = [store.get_image_info(i) for i in ids]
    assert all(info["patient_id"] and info["modality"] == "CT" for info in infos)
    assert len({info["patient_id"] for info in infos}) < len(ids), "some patients have two images"


def test_phantoms_are_realistic_ct(store: LocalDatastore) -> None:
    orientations, spacings = set(), set()
    for image_id in store.list_images():
        img = nib.load(store.get_image_uri(image_id))
        assert img.get_data_dtype() == np.int16
        assert not np.allclose(img.affine, np.eye(4))
        orientations.add(nib.aff2axcodes(img.affine))
        zooms = tuple(round(float(z), 2) for z in img.header.get_zooms()[:3])
        assert len(set(zooms)) > 1, "anisotropic spacing"
        spacings.add(zooms)
        data = np.asanyarray(img.dataobj)
        assert data.min() < -900 and data.max() > 300, "air outside, bone inside"
    assert len(orientations) >= 2


def test_every_label_fits_its_image_and_sits_where_anatomy_says(store: LocalDatastore) -> None:
    for image_id in store.list_images():
        for tag in store.get_labels_by_image_id(image_id):
            check_label_geometry(store.get_label_uri(image_id, tag), store.get_image_uri(image_id))
    # Canonical layout: W runs patient right -> left, so the liver (1) lies in the lower half of
    # W (patient right) and the spleen (2) in the upper half.
    image_id = store.get_labeled_images()[0]
    label = read_image(store.get_label_uri(image_id, "final")).array[0]
    liver_w = np.nonzero(label == 1)[2].mean()
    spleen_w = np.nonzero(label == 2)[2].mean()
    assert liver_w < label.shape[2] / 2 < spleen_w
