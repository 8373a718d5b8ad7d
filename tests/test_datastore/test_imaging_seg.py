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
    # ITK (what Slicer reads with) puts the layers where it puts the image.
    ours, image = sitk.ReadImage(str(out)), sitk.ReadImage(str(img))
    np.testing.assert_allclose(ours.GetOrigin(), image.GetOrigin(), atol=1e-5)
    np.testing.assert_allclose(ours.GetDirection(), image.GetDirection(), atol=1e-6)
    np.testing.assert_allclose(ours.GetSpacing(), image.GetSpacing(), atol=1e-6)
    assert ours.GetSize() == image.GetSize()


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


# --- DICOM SEG (highdicom) -------------------------------------------------------------------

import highdicom as hd  # noqa: E402
import pydicom  # noqa: E402
from medstore.datastore.imaging.dicom_planes import source_datasets  # noqa: E402
from support.dicom import make_dicom_series  # noqa: E402

CT = np.arange(5 * 6 * 7, dtype=np.int16).reshape(5, 6, 7)
FRAME_UID = "1.2.826.0.1.3680043.8.498.1"


def _series(folder: Path, volume: np.ndarray = CT, **kw: object) -> Path:
    """The factory's series plus what a scanner writes and highdicom needs (frame of reference)."""
    make_dicom_series(folder, volume, **kw)  # type: ignore[arg-type]
    for f in folder.iterdir():
        ds = pydicom.dcmread(f)
        ds.FrameOfReferenceUID = FRAME_UID
        for keyword in (
            "PatientBirthDate",
            "PatientSex",
            "StudyDate",
            "StudyTime",
            "StudyID",
            "ReferringPhysicianName",
            "AccessionNumber",
        ):
            setattr(ds, keyword, "")
        ds.save_as(f)
    return folder


def _seg_file(path: Path, series: Path, masks: np.ndarray, names: list[str], **kw: object) -> Path:
    """A SEG made by highdicom itself; ``masks`` is (slice, row, column, segment) in the
    factory's slice order (the order ``source_datasets`` sorts the files in)."""
    sources = source_datasets(series)
    code = hd.sr.CodedConcept("91723000", "SCT", "Anatomical Structure")
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=n + 1,
            segment_label=name,
            segmented_property_category=code,
            segmented_property_type=code,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
        )
        for n, name in enumerate(names)
    ]
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=masks,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=5,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="test",
        manufacturer_model_name="test",
        software_versions="1",
        device_serial_number="1",
        **{"segmentation_type": hd.seg.SegmentationTypeValues.BINARY, **kw},  # type: ignore[arg-type]
    )
    seg.save_as(path)
    return path


def _expected(tmp_path: Path, label_volume: np.ndarray) -> np.ndarray:
    """The canonical label the store must hold: the same voxels read as a DICOM series."""
    folder = make_dicom_series(tmp_path / "expected", label_volume.astype(np.int16))
    return read_image(folder).array[0]


def _store_with_series(tmp_path: Path) -> tuple[LocalDatastore, Path]:
    series = _series(tmp_path / "src" / "ct")
    store = LocalDatastore(tmp_path / "store")
    store.add_image("ct", series)
    return store, series


def test_dicom_seg_import_rasterises_segments_with_names_and_overlaps(tmp_path: Path, cli) -> None:
    store, series = _store_with_series(tmp_path)
    masks = np.zeros((*CT.shape, 2), np.uint8)
    masks[1:4, 1:4, 2:6, 0] = 1  # liver
    masks[3:5, 2:5, 1:3, 1] = 1  # tumour, overlapping liver at slice 3
    seg = _seg_file(tmp_path / "src" / "liver.dcm", series, masks, ["liver", "tumour"])
    store.close()
    code, out, err = cli("--store", tmp_path / "store", "import-seg", seg, "--tag", "pacs")
    assert code == 0, err
    assert "imported SEG liver.dcm as label 'pacs' of image 'ct': liver, tumour" in out
    assert "note: 2 voxels belong to several segments" in err
    with LocalDatastore(tmp_path / "store") as store:
        info = store.get_label_info("ct", "pacs")
        assert info["label_info"] == [{"name": "liver", "idx": 1}, {"name": "tumour", "idx": 2}]
        got = read_image(store.get_label_uri("ct", "pacs")).array[0]
    merged = np.where(masks[..., 1] == 1, 2, masks[..., 0])
    np.testing.assert_array_equal(got, _expected(tmp_path, merged))


def test_fractional_seg_is_thresholded_at_one_half(tmp_path: Path) -> None:
    store, series = _store_with_series(tmp_path)
    prob = np.zeros((*CT.shape, 1), np.float32)
    prob[2, 1:5, 1:6, 0] = 0.8
    prob[2, 0, :, 0] = 0.3
    seg = _seg_file(
        tmp_path / "src" / "p.dcm",
        series,
        prob,
        ["organ"],
        segmentation_type=hd.seg.SegmentationTypeValues.FRACTIONAL,
    )
    from medstore.datastore.interop.segmentations import import_segmentation

    result = import_segmentation(store, seg)
    assert (result.image_id, result.tag, result.kind) == ("ct", "seg", "SEG")
    got = read_image(store.get_label_uri("ct", "seg")).array[0]
    np.testing.assert_array_equal(got, _expected(tmp_path, (prob[..., 0] >= 0.5).astype(int)))
    store.close()


def test_export_seg_reads_back_through_highdicom_to_the_same_masks(tmp_path: Path, cli) -> None:
    store, series = _store_with_series(tmp_path)
    shape = probe_image(store.get_image_uri("ct")).shape
    label = np.zeros(shape, np.uint8)
    label[1:5, 2:5, 1:4] = 1
    label[0, 0:3, 4:7] = 3
    store.save_label(
        "ct", label, "final", {"label_info": [{"name": "a", "idx": 1}, {"name": "c", "idx": 3}]}
    )
    store.close()
    out = tmp_path / "out.dcm"
    code, _, err = cli(
        "--store", tmp_path / "store", "export-seg", "ct", "--tag", "final", "--out", out
    )
    assert code == 0, err
    seg = hd.seg.segread(out)
    assert [seg.get_segment_description(n).segment_label for n in (1, 2)] == ["a", "c"]
    uids = [str(ds.SOPInstanceUID) for ds in source_datasets(series)]
    for number, value in ((1, 1), (2, 3)):
        frames = seg.get_pixels_by_source_instance(
            source_sop_instance_uids=uids, segment_numbers=[number]
        )[..., 0]
        expected = _expected(tmp_path / str(value), np.zeros_like(CT))  # geometry only
        assert expected.shape == label.shape
        # frames are (slice, row, column) in source order, exactly the factory's volume order
        np.testing.assert_array_equal(_expected(tmp_path / f"m{value}", frames), label == value)


def test_seg_of_a_series_the_store_lacks_names_the_uids_and_changes_nothing(
    tmp_path: Path, cli
) -> None:
    store, _ = _store_with_series(tmp_path)
    other = _series(tmp_path / "src" / "other")
    seg = _seg_file(tmp_path / "src" / "s.dcm", other, np.ones((*CT.shape, 1), np.uint8), ["x"])
    manifest = (tmp_path / "store" / "datastore_v2.json").read_bytes()
    store.close()
    missing = str(pydicom.dcmread(next(other.iterdir())).SeriesInstanceUID)
    code, _, err = cli("--store", tmp_path / "store", "import-seg", seg)
    assert code != 0
    assert "s.dcm" in err and missing in err and "has no image of the referenced series" in err
    assert (tmp_path / "store" / "datastore_v2.json").read_bytes() == manifest
    assert not (tmp_path / "store" / "labels" / "seg" / "ct.nii.gz").exists()


def test_seg_whose_frames_do_not_match_the_image_is_refused(tmp_path: Path) -> None:
    store, series = _store_with_series(tmp_path)
    finer = _series(tmp_path / "src" / "finer", spacing=(2.0, 0.25, 0.75))
    seg = _seg_file(tmp_path / "src" / "f.dcm", finer, np.ones((*CT.shape, 1), np.uint8), ["x"])
    ds = pydicom.dcmread(seg)
    uid = pydicom.dcmread(next(series.iterdir())).SeriesInstanceUID
    ds.ReferencedSeriesSequence[0].SeriesInstanceUID = uid  # claims the stored series
    ds.save_as(seg)
    from medstore.datastore.interop.segmentations import import_segmentation

    with pytest.raises(ImageReadError, match=r"f\.dcm: its frames do not match the referenced"):
        import_segmentation(store, seg)
    assert store.get_labels_by_image_id("ct") == {}
    store.close()


def test_seg_and_rtstruct_files_are_never_images(tmp_path: Path) -> None:
    _, series = _store_with_series(tmp_path)
    seg = _seg_file(tmp_path / "s.dcm", series, np.ones((*CT.shape, 1), np.uint8), ["x"])
    with pytest.raises(
        ImageReadError,
        match=r"s\.dcm: DICOM file holds no image: it is a "
        r"Segmentation \(SEG\)",
    ):
        read_image(seg)
    root = tmp_path / "folder"
    root.mkdir()
    (root / "seg.dcm").write_bytes(seg.read_bytes())
    (root / "odd.nii.gz").write_bytes(seg.read_bytes())  # whatever the extension
    with LocalDatastore(root) as store:
        assert store.list_images() == []


# --- the same segmentation whatever the format -------------------------------------------------


def test_seg_nrrd_seg_and_rtstruct_give_the_nifti_labels_dataset_item_and_preview(
    tmp_path: Path, cli
) -> None:
    from medstore.datasets import VolumeDataset
    from medstore.datastore.interop.segmentations import export_segmentation, import_segmentation

    store, _ = _store_with_series(tmp_path)
    shape = probe_image(store.get_image_uri("ct")).shape
    label = np.zeros(shape, np.uint8)
    label[1:4, 1:4, 2:6] = 1  # boxes: RTSTRUCT's contours give them back exactly
    label[0, 3:6, 0:3] = 2
    info = {"label_info": [{"name": "liver", "idx": 1}, {"name": "kidney", "idx": 2}]}
    store.save_label("ct", label, "nifti", info)
    store.save_label("ct", Segmentation.from_label_map(label, {1: "liver", 2: "kidney"}), "slicer")
    export_segmentation(store, "ct", "nifti", tmp_path / "s.dcm")
    export_segmentation(store, "ct", "nifti", tmp_path / "r.dcm", kind="RTSTRUCT")
    import_segmentation(store, tmp_path / "s.dcm", tag="seg")
    import_segmentation(store, tmp_path / "r.dcm", tag="rt")
    items, pngs = {}, {}
    for tag in ("nifti", "slicer", "seg", "rt"):
        store.promote_label("ct", tag, "final")  # the same tag, so the preview titles match
        assert store.get_label_info("ct", "final")["label_info"] == info["label_info"]
        ds = VolumeDataset(store, include_annotators=["final"])
        items[tag] = ds[0]["segmentations"]["final"].numpy()
        out = tmp_path / f"{tag}.png"
        code, _, err = cli("--store", tmp_path / "store", "preview", "ct", "--out", out)
        assert code == 0, err
        pngs[tag] = out.read_bytes()
    store.close()
    assert items["nifti"].any()
    for tag in ("slicer", "seg", "rt"):
        np.testing.assert_array_equal(items[tag], items["nifti"])
        assert pngs[tag] == pngs["nifti"], tag
