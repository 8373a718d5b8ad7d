"""Slicer ``.seg.nrrd`` files saved cropped ("crop to minimum extent") are padded onto the image.

The cropped files are written here with pynrrd as Slicer writes them: the box's first voxel at
``space origin``, ``Segmentation_ReferenceImageExtentOffset`` giving its index in the image grid.
The expected padded array is computed here in the file's own voxel order and checked against
SimpleITK resampling the cropped file onto the image (nearest neighbour).
"""

from __future__ import annotations

from pathlib import Path

import nrrd
import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813  (the name SimpleITK documents)
from medstore.datastore import LocalDatastore
from medstore.datastore.errors import LabelGeometryError
from medstore.datastore.imaging.seg_nrrd import read_segmentation

LPS_DIRS = np.array([[0.0, -0.8, 0.0], [0.7, 0.0, 0.0], [0.0, 0.0, 2.5]])  # a rotated grid
ORIGIN = np.array([5.0, -3.0, 40.0])
SIZES = (6, 5, 4)
BOX = (3, 3, 2)
SEGMENTS = [("liver", 1, 0, "0.8 0.1 0.1"), ("tumour", 1, 1, "0.9 0.9 0.1")]


def _image(path: Path) -> Path:
    data = np.arange(int(np.prod(SIZES)), dtype=np.int16).reshape(SIZES)
    header = {"space": "left-posterior-superior", "space directions": LPS_DIRS}
    nrrd.write(str(path), data, {**header, "space origin": ORIGIN})
    return path


def _box_layers() -> np.ndarray:
    """Two overlapping layers filling the box (file voxel order)."""
    layers = np.zeros((2, *BOX), np.uint8)
    layers[0, :2] = 1  # liver
    layers[1, 1:, 1:] = 1  # tumour, overlapping the liver
    return layers


def _seg(path: Path, layers: np.ndarray, offset: tuple[float, ...], dirs: np.ndarray) -> Path:
    header: dict = {
        "space": "left-posterior-superior",
        "space directions": np.vstack([np.full(3, np.nan), dirs]),
        "space origin": ORIGIN + np.asarray(offset, float) @ dirs,
        "kinds": ["list", "domain", "domain", "domain"],
        "encoding": "gzip",
        "Segmentation_MasterRepresentation": "Binary labelmap",
        "Segmentation_ReferenceImageExtentOffset": " ".join(str(int(v)) for v in offset),
    }
    for n, (name, value, layer, color) in enumerate(SEGMENTS):
        header.update({f"Segment{n}_ID": name, f"Segment{n}_Name": name})
        header[f"Segment{n}_LabelValue"] = str(value)
        header[f"Segment{n}_Layer"] = str(layer)
        header[f"Segment{n}_Color"] = color
    nrrd.write(str(path), layers, header)
    return path


def _itk_on_image(seg_path: Path, image_path: Path, component: int) -> np.ndarray:
    """SimpleITK's nearest-neighbour resampling of one layer onto the image, in file order."""
    layer = sitk.VectorIndexSelectionCast(sitk.ReadImage(str(seg_path)), component)
    out = sitk.Resample(
        layer, sitk.ReadImage(str(image_path)), sitk.Transform(), sitk.sitkNearestNeighbor, 0
    )
    return sitk.GetArrayFromImage(out).transpose(2, 1, 0)


@pytest.mark.parametrize("offset", [(1, 2, 1), (0, 0, 0), (3, 2, 2)])
def test_cropped_seg_nrrd_is_padded_onto_the_image(tmp_path: Path, offset: tuple) -> None:
    image = _image(tmp_path / "ct.nrrd")
    layers = _box_layers()
    cropped = _seg(tmp_path / "cropped.seg.nrrd", layers, offset, LPS_DIRS)
    expected = np.zeros((2, *SIZES), np.uint8)  # the file voxel order of the image
    i, j, k = offset
    expected[:, i : i + BOX[0], j : j + BOX[1], k : k + BOX[2]] = layers
    for n in range(2):  # SimpleITK puts the cropped voxels where this test does
        np.testing.assert_array_equal(_itk_on_image(cropped, image, n), expected[n])
    full = _seg(tmp_path / "full.seg.nrrd", expected, (0, 0, 0), LPS_DIRS)
    with LocalDatastore(tmp_path / "store") as store:
        store.add_image("ct", image)
        store.save_label("ct", cropped, "final")
        stored = Path(store.get_label_uri("ct", "final"))
        got, want = read_segmentation(stored), read_segmentation(full)
        np.testing.assert_array_equal(got.layers, want.layers)
        np.testing.assert_allclose(got.affine, want.affine, atol=1e-6)
        assert [(s.name, s.label_value, s.layer) for s in got.segments] == [
            (name, value, layer) for name, value, layer, _ in SEGMENTS
        ]
        assert store.get_label_info("ct", "final")["label_info"] == [
            {"name": "liver", "idx": 1},
            {"name": "tumour", "idx": 1},
        ]
        for n in range(2):  # and SimpleITK reads the stored file on the image's grid
            np.testing.assert_array_equal(_itk_on_image(stored, image, n), expected[n])


@pytest.mark.parametrize(
    ("offset", "dirs", "message"),
    [
        ((1, 2, 1), LPS_DIRS * [[1.0], [1.0], [2.0]], r"voxel axes or spacing differ"),
        ((1.5, 2, 1), LPS_DIRS, r"lies between the image's voxels"),
        ((4, 2, 1), LPS_DIRS, r"reaches outside the image's canonical extent"),
        ((-1, 0, 0), LPS_DIRS, r"reaches outside the image's canonical extent"),
    ],
)
def test_a_cropped_seg_nrrd_off_the_image_grid_is_refused(
    tmp_path: Path, offset: tuple, dirs: np.ndarray, message: str
) -> None:
    image = _image(tmp_path / "ct.nrrd")
    cropped = _seg(tmp_path / "cropped.seg.nrrd", _box_layers(), offset, dirs)
    with LocalDatastore(tmp_path / "store") as store:
        store.add_image("ct", image)
        with pytest.raises(LabelGeometryError, match=rf"cropped\.seg\.nrrd: .*{message}"):
            store.save_label("ct", cropped, "final")
        assert store.get_image_info("ct") and "final" not in store.get_labels_by_image_id("ct")
        pending = tmp_path / "store" / ".medstore" / "pending"
        assert not any(pending.glob("staged-*"))
