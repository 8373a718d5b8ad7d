"""RT Structure Sets: contours filled onto the referenced series' grid, and written back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from medstore.datastore import LocalDatastore
from medstore.datastore.errors import ImageReadError
from medstore.datastore.imaging import probe_image, read_image
from medstore.datastore.interop.segmentations import export_segmentation, import_segmentation
from scipy import ndimage
from support.dicom import make_dicom_series

CT = np.zeros((4, 12, 10), np.int16)


def _store(tmp_path: Path) -> LocalDatastore:
    series = make_dicom_series(tmp_path / "src" / "ct", CT, spacing=(2.0, 0.5, 0.75))
    for f in series.iterdir():  # what a scanner writes: the frame of reference
        ds = pydicom.dcmread(f)
        ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.8.498.7"
        ds.save_as(f)
    store = LocalDatastore(tmp_path / "store")
    store.add_image("ct", series)
    return store


def _within_one_voxel(got: np.ndarray, want: np.ndarray) -> None:
    """Every differing voxel lies on the boundary band of ``want`` (one voxel in-plane)."""
    ring = np.zeros((1, 3, 3), bool)
    ring[0] = True
    band = ndimage.binary_dilation(want, ring) & ~ndimage.binary_erosion(want, ring)
    assert not ((got != want) & ~band).any()


def test_hand_made_contour_fills_the_voxels_inside(tmp_path: Path) -> None:
    store = _store(tmp_path)
    label = np.zeros(probe_image(store.get_image_uri("ct")).shape, np.uint8)
    label[1, 2:5, 2:5] = 1
    store.save_label("ct", label, "seed")
    out = tmp_path / "rt.dcm"
    export_segmentation(store, "ct", "seed", out, kind="RTSTRUCT")
    # Replace the contour by a hand-made rectangle around pixel centres rows 3..8, cols 1..6
    # of the slice it references (LPS mm: x = x0 + col * 0.75, y = y0 + row * 0.5).
    ds = pydicom.dcmread(out)
    item = ds.ROIContourSequence[0].ContourSequence[0]
    z = float(item.ContourData[2])
    x0, y0 = -10.0, -20.0
    corners = [(1 - 0.4, 3 - 0.4), (6 + 0.4, 3 - 0.4), (6 + 0.4, 8 + 0.4), (1 - 0.4, 8 + 0.4)]
    item.ContourData = [v for c, r in corners for v in (x0 + c * 0.75, y0 + r * 0.5, z)]
    item.NumberOfContourPoints = 4
    ds.StructureSetROISequence[0].ROIName = "box"
    ds.save_as(out)
    result = import_segmentation(store, out, tag="box")
    assert result.kind == "RTSTRUCT" and result.label_info == [{"name": "box", "idx": 1}]
    got = read_image(store.get_label_uri("ct", "box")).array[0]
    expected_file = np.zeros_like(CT)
    k = round((z - 30.0) / 2.0)
    expected_file[k, 3:9, 1:7] = 1
    folder = make_dicom_series(tmp_path / "expected", expected_file, spacing=(2.0, 0.5, 0.75))
    np.testing.assert_array_equal(got, read_image(folder).array[0])
    store.close()


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 10_000))
def test_rtstruct_round_trip_is_within_one_voxel(tmp_path_factory, seed: int) -> None:
    tmp_path = tmp_path_factory.mktemp("rt")
    store = _store(tmp_path)
    shape = probe_image(store.get_image_uri("ct")).shape
    rng = np.random.default_rng(seed)
    blobs = ndimage.gaussian_filter(rng.random(shape), (0, 1.5, 1.5))
    label = np.zeros(shape, np.uint8)
    label[blobs > np.quantile(blobs, 0.7)] = 1
    label[blobs < np.quantile(blobs, 0.15)] = 2
    label[:, 0, :] = label[:, -1, :] = 0  # keep contours inside the image
    store.save_label(
        "ct",
        label,
        "final",
        {"label_info": [{"name": "hot", "idx": 1}, {"name": "cold", "idx": 2}]},
    )
    out = tmp_path / "rt.dcm"
    export_segmentation(store, "ct", "final", out, kind="RTSTRUCT")
    ds = pydicom.dcmread(out)
    assert [r.ROIName for r in ds.StructureSetROISequence] == ["hot", "cold"]
    result = import_segmentation(store, out, tag="back")
    assert result.label_info == [{"name": "hot", "idx": 1}, {"name": "cold", "idx": 2}]
    got = read_image(store.get_label_uri("ct", "back")).array[0]
    for value in (1, 2):
        _within_one_voxel(got == value, label == value)
    store.close()


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda c: c[:6], r"ROI 'ROI_1' contour 0: a closed contour needs 3 points, it has 2"),
        (lambda c: [v + 500.0 for v in c], r"ROI 'ROI_1' contour 0: contour reaches outside"),
        (lambda c: [*c[:-1], c[-1] + 2.0], r"ROI .ROI_1. contour 0: contour is not in one plane"),
    ],
)
@pytest.mark.timeout(60)
def test_bad_contours_are_refused_and_change_nothing(tmp_path: Path, edit, match: str) -> None:
    store = _store(tmp_path)
    label = np.zeros(probe_image(store.get_image_uri("ct")).shape, np.uint8)
    label[2, 3:7, 2:6] = 1
    store.save_label("ct", label, "final")
    out = tmp_path / "bad.dcm"
    export_segmentation(store, "ct", "final", out, kind="RTSTRUCT")
    ds = pydicom.dcmread(out)
    item = ds.ROIContourSequence[0].ContourSequence[0]
    item.ContourData = edit([float(v) for v in item.ContourData])
    ds.save_as(out)
    manifest = store.layout.manifest.read_bytes()
    with pytest.raises(ImageReadError, match=r"bad\.dcm: " + match):
        import_segmentation(store, out, tag="rt")
    assert store.layout.manifest.read_bytes() == manifest
    assert "rt" not in store.get_labels_by_image_id("ct")
    store.close()
