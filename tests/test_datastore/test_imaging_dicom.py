"""DICOM reading tests: pydicom's own files (single, multi-frame, series) and factory-made ones."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
from medstore.datastore.errors import ImageReadError, UnsupportedFormatError
from medstore.datastore.imaging import (
    CANONICAL_CODES,
    axis_codes,
    is_dicom_file,
    is_dicom_series_dir,
    probe_image,
    read_image,
)
from pydicom.pixels import convert_color_space
from support.dicom import make_dicom_series, make_enhanced_multiframe, pydicom_data_dir

TD = pydicom_data_dir()
DIRS = TD / "dicomdirtests"


def test_ct_small_values_equal_rescaled_pixel_array() -> None:
    path = TD / "CT_small.dcm"
    ds = pydicom.dcmread(path)
    data = read_image(path)
    expected = ds.pixel_array.astype(np.int64) * int(ds.RescaleSlope) + int(ds.RescaleIntercept)
    assert data.array.shape == (1, 1, 128, 128)
    assert np.issubdtype(data.array.dtype, np.integer)
    np.testing.assert_array_equal(data.array[0, 0], expected)  # axial LPS rows/cols = (H, W)
    header = probe_image(path)
    assert header.modality == "CT" and header.kind == "volume"
    assert header.info_facts()["modality"] == "CT"
    assert "PatientName" not in str(header.info_facts())


@pytest.mark.parametrize(
    "name",
    [
        "MR_small_bigendian.dcm",
        "MR_small_implicit.dcm",
        "MR_small_expb.dcm",
        "MR_small_padded.dcm",
        "MR_small_RLE.dcm",
    ],
)
def test_mr_small_transfer_syntax_variants_decode_identically(name: str) -> None:
    reference = pydicom.dcmread(TD / "MR_small.dcm").pixel_array
    data = read_image(TD / name)
    np.testing.assert_array_equal(data.array[0, 0], reference)
    assert probe_image(TD / name).spacing == pytest.approx((0.8, 0.3125, 0.3125))


def test_missing_decoder_names_what_to_install() -> None:
    path = TD / "MR_small_jpeg_ls_lossless.dcm"
    assert probe_image(path).shape == (1, 64, 64)  # probing never needs the decoder
    try:
        import libjpeg  # type: ignore[import-not-found]  # noqa: F401

        pytest.skip("a JPEG-LS decoder is installed")
    except ImportError:
        pass
    with pytest.raises(UnsupportedFormatError, match=r"install .*pylibjpeg"):
        read_image(path)


def test_rtdose_uses_dose_grid_scaling_and_frame_offsets() -> None:
    path = TD / "rtdose.dcm"
    ds = pydicom.dcmread(path)
    data = read_image(path)
    assert data.array.dtype == np.float32
    assert data.array.shape == (1, 15, 10, 10)
    expected = ds.pixel_array.astype(np.float64) * float(ds.DoseGridScaling)
    # Frames lie along +z (offsets increase), so D order is the frame order.
    np.testing.assert_allclose(data.array[0], expected.astype(np.float32), rtol=1e-6)
    offsets = np.array([float(v) for v in ds.GridFrameOffsetVector])
    assert data.spacing[0] == pytest.approx(offsets[1] - offsets[0])
    z0 = float(ds.ImagePositionPatient[2])
    assert (data.affine @ [14, 0, 0, 1])[2] == pytest.approx(z0 + offsets[-1] - offsets[0])


def test_ybr_colour_cine_becomes_rgb_video() -> None:
    path = TD / "examples_ybr_color.dcm"
    raw_ds = pydicom.dcmread(path)
    raw_ds.pixel_array_options(as_rgb=False)
    ybr = raw_ds.pixel_array
    data = read_image(path)
    header = probe_image(path)
    assert header.kind == "video" and header.n_frames == 30 and header.channels == 3
    assert data.array.shape == (3, 30, 240, 320) and data.array.dtype == np.uint8
    rgb = convert_color_space(ybr, "YBR_FULL", "RGB")
    np.testing.assert_allclose(np.moveaxis(data.array, 0, -1), rgb, atol=1)


def test_rgb_single_frame_is_2d_image() -> None:
    path = TD / "examples_rgb_color.dcm"
    data = read_image(path)
    assert data.array.shape == (3, 240, 320)
    np.testing.assert_array_equal(np.moveaxis(data.array, 0, -1), pydicom.dcmread(path).pixel_array)
    assert probe_image(path).shape == (240, 320)


def _ct5n_affine_by_hand(files: list[Path]) -> np.ndarray:
    """Independent reference: sort by z, LPS→RAS, columns (slice, row, column)."""
    dss = sorted(
        (pydicom.dcmread(f) for f in files), key=lambda d: float(d.ImagePositionPatient[2])
    )
    first, last = dss[0], dss[-1]
    row = np.array(first.ImageOrientationPatient[:3], float)
    col = np.array(first.ImageOrientationPatient[3:], float)
    dr, dc = (float(v) for v in first.PixelSpacing)
    step = (
        np.array(last.ImagePositionPatient, float) - np.array(first.ImagePositionPatient, float)
    ) / (len(dss) - 1)
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1], lps[:3, 2] = step, col * dr, row * dc
    lps[:3, 3] = np.array(first.ImagePositionPatient, float)
    return np.diag([-1.0, -1, 1, 1]) @ lps


def test_ct5n_series_five_slices_2_5mm_apart() -> None:
    folder = DIRS / "98892001" / "CT5N"
    files = sorted(folder.iterdir())
    header = probe_image(folder)
    data = read_image(folder)
    assert header.format == "dicom-series" and header.n_frames == 5
    assert data.array.shape == (1, 5, 16, 16)
    assert data.spacing[0] == pytest.approx(2.5)
    np.testing.assert_allclose(data.affine, _ct5n_affine_by_hand(files), atol=1e-4)
    assert axis_codes(data.affine) == CANONICAL_CODES
    by_z = sorted(files, key=lambda f: float(pydicom.dcmread(f).ImagePositionPatient[2]))
    for k, f in enumerate(by_z):
        ds = pydicom.dcmread(f)
        np.testing.assert_array_equal(
            data.array[0, k], ds.pixel_array * int(ds.RescaleSlope) + int(ds.RescaleIntercept)
        )
    assert data.meta["files"] == [f.name for f in by_z]


@pytest.mark.parametrize(
    ("folder", "problem"),
    [
        (DIRS / "98892003" / "MR700", "inconsistent orientation"),
        (DIRS / "98892001" / "CT2N", "inconsistent orientation"),
        (DIRS / "98892003" / "MR1", "mixed series"),
        (DIRS / "77654033" / "CT2", "missing slice"),
    ],
)
def test_bad_real_series_name_folder_and_problem(folder: Path, problem: str) -> None:
    with pytest.raises(ImageReadError, match=problem) as info:
        probe_image(folder)
    assert str(folder) in str(info.value)
    with pytest.raises(ImageReadError, match=problem):
        read_image(folder)


def _volume(shape: tuple[int, int, int] = (6, 5, 4)) -> np.ndarray:
    return np.arange(int(np.prod(shape)), dtype=np.int16).reshape(shape) - 30


def test_factory_series_sorted_by_position_not_name(tmp_path: Path) -> None:
    vol = _volume()
    folder = make_dicom_series(tmp_path / "s", vol, spacing=(2.0, 0.5, 0.75))
    data = read_image(folder)
    np.testing.assert_array_equal(data.array[0], vol)  # axial LPS, increasing z: already canonical
    assert data.spacing == pytest.approx((2.0, 0.5, 0.75))  # positions, not SliceThickness=99
    assert probe_image(folder).shape == (6, 5, 4)


def test_factory_series_feet_first_order_is_flipped(tmp_path: Path) -> None:
    vol = _volume()
    # Slices stacked towards the feet (normal points -z): IOP row=L, col=A.
    folder = make_dicom_series(tmp_path / "s", vol, iop=(1, 0, 0, 0, -1, 0))
    data = read_image(folder)
    np.testing.assert_array_equal(data.array[0], vol[::-1, ::-1, :])
    assert axis_codes(data.affine) == CANONICAL_CODES


def test_series_integral_and_fractional_rescale(tmp_path: Path) -> None:
    vol = _volume()
    a = read_image(make_dicom_series(tmp_path / "a", vol, slope=1.0, intercept=-1024.0))
    assert np.issubdtype(a.array.dtype, np.integer)
    np.testing.assert_array_equal(a.array[0], vol.astype(np.int32) - 1024)
    b = read_image(make_dicom_series(tmp_path / "b", vol, slope=0.5, intercept=1.0))
    assert b.array.dtype == np.float32
    np.testing.assert_allclose(b.array[0], vol * 0.5 + 1.0)


def test_series_missing_slice_and_mixed_series_from_factory(tmp_path: Path) -> None:
    vol = _volume()
    gap = make_dicom_series(tmp_path / "gap", vol, skip=[3])
    with pytest.raises(ImageReadError, match=r"gap.*missing slice"):
        read_image(gap)
    uids = [pydicom.uid.generate_uid() for _ in range(2)]
    mixed = make_dicom_series(tmp_path / "mixed", vol, series_uids=[uids[k % 2] for k in range(6)])
    with pytest.raises(ImageReadError, match="mixed series"):
        probe_image(mixed)


def test_series_inconsistent_size(tmp_path: Path) -> None:
    folder = make_dicom_series(tmp_path / "s", _volume())
    other = make_dicom_series(tmp_path / "o", _volume((6, 5, 3)), names=[f"X{k}" for k in range(6)])
    odd = pydicom.dcmread(other / "X2")
    odd.SeriesInstanceUID = pydicom.dcmread(next(folder.iterdir())).SeriesInstanceUID
    odd.save_as(folder / "X2")
    with pytest.raises(ImageReadError, match="inconsistent size"):
        probe_image(folder)


def test_series_ignores_hidden_and_non_dicom_files(tmp_path: Path) -> None:
    vol = _volume()
    folder = make_dicom_series(tmp_path / "s", vol)
    (folder / ".DS_Store").write_bytes(b"junk")
    (folder / "notes.txt").write_text("hello")
    assert is_dicom_series_dir(folder)
    np.testing.assert_array_equal(read_image(folder).array[0], vol)


def test_enhanced_multiframe_frames_sorted_with_per_frame_slopes(tmp_path: Path) -> None:
    vol = _volume((5, 4, 3))
    order = [3, 0, 4, 1, 2]
    slopes = [2.0, 1.0, 3.0, 1.0, 1.0]  # per frame (file order)
    path = make_enhanced_multiframe(tmp_path / "mf.dcm", vol, frame_order=order, slopes=slopes)
    data = read_image(path)
    assert data.array.shape == (1, 5, 4, 3)
    by_slice = {k: slopes[f] for f, k in enumerate(order)}
    expected = np.stack([vol[k] * by_slice[k] for k in range(5)])
    np.testing.assert_array_equal(data.array[0], expected)
    assert data.spacing == pytest.approx((3.0, 0.8, 0.8))
    assert probe_image(path).n_frames == 5


def test_enhanced_multiframe_duplicate_positions_refused(tmp_path: Path) -> None:
    path = make_enhanced_multiframe(tmp_path / "dup.dcm", _volume((3, 4, 3)), frame_order=[0, 1, 1])
    with pytest.raises(ImageReadError, match="duplicate slice positions"):
        probe_image(path)


def _with_huge_length(src: Path, dest: Path) -> Path:
    """Copy ``src`` with its PatientName element rewritten as an OB declaring 3 GB of value."""
    data = src.read_bytes()
    tag = struct.pack("<HH", 0x0010, 0x0010)  # (0010,0010), explicit VR little endian
    pos = data.index(tag + b"PN")
    huge = tag + b"OB\x00\x00" + struct.pack("<I", 3_000_000_000)
    dest.write_bytes(data[:pos] + huge + data[pos + 8 :])
    return dest


def test_huge_declared_element_length_fails_fast(tmp_path: Path) -> None:
    bad = _with_huge_length(TD / "CT_small.dcm", tmp_path / "bad.dcm")
    start = time.perf_counter()
    with pytest.raises(ImageReadError, match="declares 3000000000 bytes"):
        probe_image(bad)
    with pytest.raises(ImageReadError, match="declares"):
        read_image(bad)
    assert time.perf_counter() - start < 5  # generous: it must not try to read 3 GB


def test_truncated_pixel_data_and_size_cap() -> None:
    with pytest.raises(ImageReadError, match="truncated"):
        read_image(TD / "MR_truncated.dcm")
    with pytest.raises(ImageReadError, match="cap"):
        probe_image(TD / "CT_small.dcm", max_bytes=1000)


def test_is_dicom_sniffing(tmp_path: Path) -> None:
    assert is_dicom_file(TD / "CT_small.dcm")
    assert not is_dicom_file(Path(np.__file__))
    (tmp_path / "empty").mkdir()
    assert not is_dicom_series_dir(tmp_path / "empty")
    assert not is_dicom_series_dir(TD / "CT_small.dcm")
    assert is_dicom_series_dir(DIRS / "98892001" / "CT5N")


def test_pixel_data_declaring_more_than_the_file_holds_is_refused(tmp_path: Path) -> None:
    raw = bytearray(Path(pydicom.data.get_testdata_file("CT_small.dcm")).read_bytes())
    at = raw.rfind(b"\xe0\x7f\x10\x00")  # (7FE0,0010) explicit VR: tag, "OW", 2 reserved, length
    raw[at + 8 : at + 12] = struct.pack("<I", 3_000_000_000)
    path = tmp_path / "huge.dcm"
    path.write_bytes(bytes(raw))
    with pytest.raises(ImageReadError, match="declares 3000000000 bytes"):
        read_image(path)
