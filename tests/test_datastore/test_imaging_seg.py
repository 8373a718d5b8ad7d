"""Segmentations: Slicer ``.seg.nrrd`` read and written with every segment's name, value, layer
and colour (overlaps kept), and their labels in the store."""

from __future__ import annotations

from pathlib import Path

import nrrd
import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813  (the name SimpleITK documents)
from medstore.datastore import LocalDatastore
from medstore.datastore.errors import ImageReadError
from medstore.datastore.imaging import probe_image, read_image
from medstore.datastore.imaging.seg_nrrd import Segmentation, read_segmentation
from support.nifti import make_nifti

LPS_DIRS = np.array([[0.0, -0.8, 0.0], [0.7, 0.0, 0.0], [0.0, 0.0, 2.5]])  # a rotated grid


def _slicer_like(path: Path, sizes: tuple[int, int, int]) -> tuple[np.ndarray, list[tuple]]:
    """A two-layer segmentation written with pynrrd as Slicer writes one (overlapping segments)."""
    layers = np.zeros((2, *sizes), np.uint8)
    layers[0, :2] = 1  # liver, layer 0 value 1
    layers[0, 3:] = 2  # spleen, layer 0 value 2
    layers[1, 1:3, 1:] = 1  # tumour overlaps liver, layer 1 value 1
    segs = [
        ("Segment_1", "liver", 1, 0, (0.8, 0.1, 0.1)),
        ("Segment_2", "spleen", 2, 0, (0.1, 0.8, 0.1)),
        ("Segment_3", "tumour", 1, 1, (0.9, 0.9, 0.1)),
    ]
    header: dict = {
        "space": "left-posterior-superior",
        "space directions": np.vstack([np.full(3, np.nan), LPS_DIRS]),
        "space origin": np.array([5.0, -3.0, 40.0]),
        "kinds": ["list", "domain", "domain", "domain"],
        "encoding": "gzip",
        "Segmentation_MasterRepresentation": "Binary labelmap",
    }
    for n, (sid, name, value, layer, color) in enumerate(segs):
        header[f"Segment{n}_ID"] = sid
        header[f"Segment{n}_Name"] = name
        header[f"Segment{n}_LabelValue"] = str(value)
        header[f"Segment{n}_Layer"] = str(layer)
        header[f"Segment{n}_Color"] = " ".join(str(c) for c in color)
    nrrd.write(str(path), layers, header)
    return layers, segs


def test_seg_nrrd_segments_and_overlaps_are_read(tmp_path: Path) -> None:
    path = tmp_path / "case.seg.nrrd"
    layers, segs = _slicer_like(path, (5, 4, 3))
    seg = read_segmentation(path)
    got = [(s.id, s.name, s.label_value, s.layer, s.color) for s in seg.segments]
    assert got == list(segs)
    assert seg.layers.shape == (2, 3, 5, 4)  # the rotated grid: i runs along A-P, j along R-L
    # Canonical masks hold the same voxel counts as the file's, the overlap included.
    assert int(seg.mask("liver").sum()) == int((layers[0] == 1).sum())
    assert int(seg.mask("tumour").sum()) == int((layers[1] == 1).sum())
    assert int((seg.mask("liver") & seg.mask("tumour")).sum()) == 1 * 3 * 3
    assert seg.label_info() == [
        {"name": "liver", "idx": 1},
        {"name": "spleen", "idx": 2},
        {"name": "tumour", "idx": 1},
    ]
    # Same world positions as SimpleITK gives for the file's layer 0.
    image = sitk.ReadImage(str(path))
    assert image.GetNumberOfComponentsPerPixel() == 2
    native = np.argwhere(layers[0] == 2)[0]
    lps = np.array(image.TransformIndexToPhysicalPoint([int(v) for v in native]))
    world = lps * [-1, -1, 1]
    can = np.linalg.solve(seg.affine, [*world, 1.0])[:3]
    assert seg.layers[0][tuple(np.round(can).astype(int))] == 2


def test_written_seg_nrrd_reads_back_through_pynrrd(tmp_path: Path) -> None:
    img = make_nifti(
        tmp_path / "img.nii.gz", np.zeros((5, 4, 3), np.int16), np.diag([-0.8, 0.9, 2.0, 1.0])
    )
    shape = probe_image(img).shape
    rng = np.random.default_rng(0)
    masks = {name: rng.random(shape) > 0.6 for name in ("liver", "tumour", "vessel")}
    seg = Segmentation.from_masks(masks, colors={"liver": (1.0, 0.0, 0.0)})
    from medstore.datastore.imaging.seg_nrrd import segmentation_bytes

    out = tmp_path / "out.seg.nrrd"
    out.write_bytes(segmentation_bytes(seg, probe_image(img)))
    data, header = nrrd.read(str(out))
    assert header["kinds"][0] == "list" and data.shape[0] == seg.layers.shape[0] > 1
    for n, s in enumerate(seg.segments):
        assert header[f"Segment{n}_Name"] == s.name
        assert int(header[f"Segment{n}_LabelValue"]) == s.label_value
        assert int(header[f"Segment{n}_Layer"]) == s.layer
        assert tuple(float(c) for c in header[f"Segment{n}_Color"].split()) == pytest.approx(
            s.color, abs=1e-5
        )
    assert header["Segment0_Color"] == "1 0 0"
    back = read_segmentation(out)
    for name, mask in masks.items():
        np.testing.assert_array_equal(back.mask(name), mask)
    np.testing.assert_allclose(back.affine, read_image(img).affine, atol=1e-6)


def test_single_layer_seg_nrrd_is_the_same_label_as_nifti(tmp_path: Path) -> None:
    img = make_nifti(
        tmp_path / "src" / "ct.nii.gz", np.zeros((6, 5, 4), np.int16), np.diag([0.8, 0.8, 2.5, 1.0])
    )
    label = np.zeros(probe_image(img).shape, np.uint8)
    label[1:3, 2:4, 1:5] = 1
    label[3, :, :] = 2
    with LocalDatastore(tmp_path / "store") as store:
        store.add_image("ct", img)
        store.save_label(
            "ct", label, "nifti", {"label_info": [{"name": "a", "idx": 1}, {"name": "b", "idx": 2}]}
        )
        seg = Segmentation.from_label_map(label, {1: "a", 2: "b"})
        store.save_label("ct", seg, "slicer")
        info = store.get_label_info("ct", "slicer")
        assert info["name"] == "ct.seg.nrrd"
        assert info["label_info"] == [{"name": "a", "idx": 1}, {"name": "b", "idx": 2}]
        a = read_image(store.get_label_uri("ct", "nifti"))
        b = read_image(store.get_label_uri("ct", "slicer"))
        np.testing.assert_array_equal(a.array, b.array)
        np.testing.assert_allclose(a.affine, b.affine, atol=1e-6)


def test_a_slicer_file_saved_as_a_label_keeps_overlaps_and_names(tmp_path: Path) -> None:
    sizes = (5, 4, 3)
    native_affine = np.eye(4)
    native_affine[:3, :3] = np.diag([-1.0, -1.0, 1.0]) @ LPS_DIRS.T
    native_affine[:3, 3] = [-5.0, 3.0, 40.0]
    img = make_nifti(tmp_path / "src" / "ct.nii.gz", np.zeros(sizes, np.int16), native_affine)
    _slicer_like(tmp_path / "src" / "ct.seg.nrrd", sizes)
    with LocalDatastore(tmp_path / "store") as store:
        store.add_image("ct", img)
        store.save_label("ct", tmp_path / "src" / "ct.seg.nrrd", "final")
        names = [e["name"] for e in store.get_label_info("ct", "final")["label_info"]]
        assert names == ["liver", "spleen", "tumour"]
        kept = read_segmentation(store.get_label_uri("ct", "final"))
        assert kept.layers.shape[0] == 2


def test_bad_segment_entries_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.seg.nrrd"
    nrrd.write(
        str(path), np.zeros((2, 2, 2), np.uint8), {"Segment0_ID": "s", "Segment0_LabelValue": "one"}
    )
    with pytest.raises(ImageReadError, match=r"bad\.seg\.nrrd: segment 0 has a non-integer"):
        read_segmentation(path)
    nrrd.write(
        str(path), np.zeros((2, 2, 2), np.uint8), {"Segment0_ID": "s", "Segment0_Layer": "3"}
    )
    with pytest.raises(ImageReadError, match=r"bad\.seg\.nrrd: segment 0 is in layer 3 of 1"):
        read_segmentation(path)
