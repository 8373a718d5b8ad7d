"""NIfTI reading, canonical orientation and safe-header tests on nibabel's files and factories."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from medstore.datastore.errors import ImageReadError
from medstore.datastore.imaging import (
    CANONICAL_CODES,
    axis_codes,
    from_canonical,
    probe_image,
    read_image,
    to_canonical,
)
from support.nifti import affine_for_codes, make_nifti

NIB_DATA = Path(nib.__file__).parent / "tests" / "data"


def _nibabel_canonical(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Independent reference: nibabel's RAS+ canonical image, then RAS→(S, P, L) by hand."""
    img = nib.as_closest_canonical(nib.load(path))
    ras = np.asanyarray(img.dataobj)
    if ras.ndim == 3:
        ras = ras[..., None]
    nx, ny = ras.shape[0], ras.shape[1]
    dhw = np.transpose(ras[::-1, ::-1], (2, 1, 0, 3))  # (z, y, x) with x and y reversed
    # index (d, h, w) -> RAS voxel (nx-1-w, ny-1-h, d)
    perm = np.array(
        [[0, 0, -1, nx - 1], [0, -1, 0, ny - 1], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=float
    )
    return np.moveaxis(dhw, -1, 0), img.affine @ perm


@pytest.mark.parametrize(
    ("name", "codes", "channels"),
    [
        ("anatomical.nii", ("L", "A", "S"), 1),
        ("example4d.nii.gz", ("L", "A", "S"), 2),
        ("standard.nii.gz", ("R", "A", "S"), 1),
        ("example_nifti2.nii.gz", ("L", "A", "S"), 2),
    ],
)
def test_nibabel_files_match_independent_canonical(name: str, codes: tuple, channels: int) -> None:
    path = NIB_DATA / name
    ref, ref_aff = _nibabel_canonical(path)
    header = probe_image(path)
    data = read_image(path)
    assert header.orientation == codes
    assert header.channels == channels == data.array.shape[0]
    assert data.array.shape == ref.shape
    np.testing.assert_array_equal(data.array, ref)
    np.testing.assert_allclose(data.affine, ref_aff, atol=1e-5)
    np.testing.assert_allclose(header.affine_array, data.affine)
    assert axis_codes(data.affine) == CANONICAL_CODES
    assert header.shape == data.array.shape[1:]
    assert header.dtype == str(data.array.dtype)
    np.testing.assert_allclose(data.spacing, np.sqrt((data.affine[:3, :3] ** 2).sum(0)))


def test_nifti2_version_is_reported() -> None:
    assert probe_image(NIB_DATA / "example_nifti2.nii.gz").format == "nifti2"
    assert probe_image(NIB_DATA / "anatomical.nii").format == "nifti1"


def test_canonical_axes_point_superior_posterior_left(tmp_path: Path) -> None:
    # One bright voxel at the superior, posterior, left corner of a RAS volume.
    vol = np.zeros((4, 5, 6), np.int16)  # (x: R, y: A, z: S)
    vol[0, 0, 5] = 7  # x index 0 = most left; y index 0 = most posterior; z top = superior
    p = make_nifti(tmp_path / "ras.nii", vol, affine_for_codes("RAS", (1, 1, 1), vol.shape))
    arr = read_image(p).array[0]
    assert arr.shape == (6, 5, 4)
    assert arr[-1, -1, -1] == 7  # D last = superior, H last = posterior, W last = left


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_same_anatomy_in_ras_las_lps_gives_identical_arrays(tmp_path: Path, suffix: str) -> None:
    rng = np.random.default_rng(0)
    ras = rng.integers(-500, 500, size=(6, 7, 8)).astype(np.int16)
    zooms = (0.9, 1.1, 2.5)
    base = affine_for_codes("RAS", zooms, ras.shape)
    results = []
    for codes, arr in [("RAS", ras), ("LAS", ras[::-1]), ("LPS", ras[::-1, ::-1])]:
        aff = affine_for_codes(codes, zooms, ras.shape)
        p = make_nifti(tmp_path / f"{codes}{suffix}", np.ascontiguousarray(arr), aff)
        results.append(read_image(p))
        assert probe_image(p).orientation == tuple(codes)
    for other in results[1:]:
        np.testing.assert_array_equal(other.array, results[0].array)
        np.testing.assert_allclose(other.affine, results[0].affine, atol=1e-4)
    # The world position of a voxel is preserved by the reorientation.
    d, h, w = 2, 3, 4
    world = results[0].affine @ [d, h, w, 1]
    ijk = np.linalg.solve(base, world)[:3].round().astype(int)
    assert results[0].array[0, d, h, w] == ras[tuple(ijk)]


def test_permuted_axes_sagittal_file(tmp_path: Path) -> None:
    vol = np.arange(3 * 4 * 5, dtype=np.int16).reshape(3, 4, 5)
    p = make_nifti(tmp_path / "sag.nii", vol, affine_for_codes("ASR", (1, 2, 3), vol.shape))
    data = read_image(p)
    assert data.array.shape == (1, 4, 3, 5)  # D from axis 1 (S), H from 0 (A→P), W from 2 (R→L)
    assert data.spacing == pytest.approx((2.0, 1.0, 3.0))
    tr = to_canonical(vol, affine_for_codes("ASR", (1, 2, 3), vol.shape))[2]
    np.testing.assert_array_equal(from_canonical(data.array[0], tr), vol)
    # i points anterior (i=0 is most posterior: last H), j superior (j=0: D=0), k right (k=0 is
    # most left: last W).
    assert data.array[0, 0, -1, -1] == vol[0, 0, 0]


@settings(max_examples=40, deadline=None)
@given(
    perm=st.permutations([0, 1, 2]),
    flips=st.tuples(st.sampled_from([-1, 1]), st.sampled_from([-1, 1]), st.sampled_from([-1, 1])),
    shape=st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4)),
)
def test_to_canonical_roundtrip_and_world_coordinates(perm, flips, shape) -> None:
    aff = np.eye(4)
    aff[:3, :3] = 0
    for i, (axis, flip) in enumerate(zip(perm, flips, strict=True)):
        aff[axis, i] = flip * (i + 1.5)
    aff[:3, 3] = [3.0, -2.0, 7.0]
    arr = np.arange(int(np.prod(shape))).reshape(shape)
    can, can_aff, tr = to_canonical(arr, aff)
    assert axis_codes(can_aff) == CANONICAL_CODES
    np.testing.assert_array_equal(from_canonical(can, tr), arr)
    idx = np.array([s - 1 for s in shape])
    cidx = np.linalg.solve(can_aff, aff @ [*idx, 1])[:3].round().astype(int)
    assert can[tuple(cidx)] == arr[tuple(idx)]


def test_scaling_rules(tmp_path: Path) -> None:
    raw = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    aff = np.eye(4)
    integral = read_image(make_nifti(tmp_path / "a.nii", raw, aff, slope=2.0, inter=-10.0))
    assert np.issubdtype(integral.array.dtype, np.integer)
    assert integral.array.max() == 23 * 2 - 10 and integral.array.min() == -10
    frac = read_image(make_nifti(tmp_path / "b.nii", raw, aff, slope=0.5, inter=0.25))
    assert frac.array.dtype == np.float32
    assert float(frac.array.max()) == pytest.approx(23 * 0.5 + 0.25)
    for slope in (np.nan, 0.0):  # nibabel: NaN or zero slope means unscaled
        plain = read_image(make_nifti(tmp_path / "c.nii", raw, aff, slope=slope, inter=5.0))
        assert plain.array.dtype == np.int16 and plain.array.max() == 23
    assert probe_image(tmp_path / "b.nii").dtype == "float32"


def test_finite_file_never_gives_non_finite(tmp_path: Path) -> None:
    raw = np.full((2, 2, 2), 30000, dtype=np.int16)
    p = make_nifti(tmp_path / "big.nii", raw, np.eye(4), slope=3e37, inter=0.0)
    with pytest.raises(ImageReadError, match="overflow float32"):
        read_image(p)


def test_big_endian_nifti(tmp_path: Path) -> None:
    raw = np.arange(60, dtype=">i2").reshape(3, 4, 5)
    data = read_image(make_nifti(tmp_path / "be.nii", raw, np.eye(4)))
    assert data.array.dtype == np.int16 and data.array.dtype.isnative
    assert sorted(data.array.ravel().tolist()) == list(range(60))


def test_declared_size_over_cap_or_file_is_refused(tmp_path: Path) -> None:
    raw = np.zeros((10, 10, 10), np.int16)
    p = make_nifti(tmp_path / "x.nii", raw, np.eye(4))
    with pytest.raises(ImageReadError, match="cap"):
        probe_image(p, max_bytes=1000)
    p.write_bytes(p.read_bytes()[:-100])  # truncated .nii
    with pytest.raises(ImageReadError, match="holds only"):
        probe_image(p)


def test_absurd_header_fails_before_allocation(tmp_path: Path) -> None:
    hdr = nib.Nifti1Header()
    hdr.set_data_shape((30000, 30000, 30000))
    hdr.set_data_dtype(np.float64)
    hdr["vox_offset"] = 352
    p = tmp_path / "absurd.nii.gz"
    p.write_bytes(gzip.compress(hdr.binaryblock + b"\x00" * 4 + b"\x00" * 100))
    with pytest.raises(ImageReadError, match="cap"):
        read_image(p)
    with pytest.raises(ImageReadError, match="holds only"):
        read_image(p, max_bytes=1 << 62)


def test_truncated_and_corrupt_gz(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    raw = rng.integers(0, 1000, size=(20, 20, 20)).astype(np.int16)
    p = make_nifti(tmp_path / "x.nii.gz", raw, np.eye(4))
    good = p.read_bytes()
    assert read_image(p).array.shape == (1, 20, 20, 20)
    p.write_bytes(good[: len(good) // 2])
    with pytest.raises(ImageReadError, match="truncated"):
        read_image(p)
    p.write_bytes(good[:-8] + b"\x00" * 8)  # bad CRC / length trailer
    with pytest.raises(ImageReadError, match="gzip"):
        read_image(p)


def test_multi_member_gzip_is_read(tmp_path: Path) -> None:
    raw = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    p = make_nifti(tmp_path / "m.nii.gz", raw, np.eye(4))
    data = gzip.decompress(p.read_bytes())
    p.write_bytes(gzip.compress(data[:200]) + gzip.compress(data[200:]))
    np.testing.assert_array_equal(read_image(p).array, read_image(p).array)
    assert sorted(read_image(p).array.ravel().tolist()) == list(range(24))


def test_info_facts_are_json_safe() -> None:
    import json

    facts = probe_image(NIB_DATA / "example4d.nii.gz").info_facts()
    assert json.loads(json.dumps(facts)) == facts
    assert facts["shape"] == [24, 96, 128] and facts["channels"] == 2 and facts["dtype"] == "int16"
