"""Label write-back in the image's own geometry, label geometry checks, registry and extras."""

from __future__ import annotations

import builtins
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
from medstore.datastore.errors import (
    ImageNotFoundError,
    ImageReadError,
    LabelGeometryError,
    UnsupportedFormatError,
)
from medstore.datastore.imaging import (
    check_label_geometry,
    find_reader,
    probe_image,
    read_image,
    readers,
    write_label_like,
)
from support.dicom import make_dicom_series, pydicom_data_dir
from support.nifti import affine_for_codes, make_nifti


@pytest.mark.parametrize("codes", ["RAS", "LAS", "LPS", "PIR"])
@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_label_written_in_image_orientation(tmp_path: Path, codes: str, suffix: str) -> None:
    shape = (5, 6, 7)
    aff = affine_for_codes(codes, (1.0, 1.5, 2.0), shape)
    image = make_nifti(tmp_path / f"img{suffix}", np.zeros(shape, np.int16), aff)
    canonical = read_image(image)
    label = (np.arange(np.prod(canonical.array.shape[1:])) % 4).reshape(canonical.array.shape[1:])
    dest = tmp_path / f"lab{suffix}"
    write_label_like(label.astype(np.int64), image, dest)
    saved = nib.load(dest)
    np.testing.assert_allclose(saved.affine, aff, atol=1e-5)  # the image file's own affine
    assert saved.shape == shape  # the image file's own voxel order
    assert saved.get_data_dtype() == np.uint8  # compacted
    back = read_image(dest)
    np.testing.assert_array_equal(back.array[0], label)
    check_label_geometry(dest, image)


def test_label_for_dicom_series_round_trips(tmp_path: Path) -> None:
    vol = np.zeros((4, 5, 6), np.int16)
    series = make_dicom_series(tmp_path / "ct", vol, iop=(1, 0, 0, 0, -1, 0))
    label = np.zeros((4, 5, 6), np.uint8)
    label[1, 2, 3] = 2
    dest = tmp_path / "lab.nii.gz"
    write_label_like(label, series, dest)
    check_label_geometry(dest, series)
    np.testing.assert_array_equal(read_image(dest).array[0], label)


def test_label_geometry_mismatches(tmp_path: Path) -> None:
    aff = np.diag([1.0, 1.0, 1.0, 1.0])
    image = make_nifti(tmp_path / "img.nii.gz", np.zeros((4, 5, 6), np.int16), aff)
    with pytest.raises(LabelGeometryError, match="shape"):
        write_label_like(np.zeros((4, 5, 6), np.uint8), image, tmp_path / "x.nii.gz")
    with pytest.raises(LabelGeometryError, match="integer"):
        write_label_like(np.zeros((6, 5, 4), np.float32), image, tmp_path / "x.nii.gz")
    assert not (tmp_path / "x.nii.gz").exists()
    shifted = make_nifti(
        tmp_path / "shift.nii.gz", np.zeros((4, 5, 6), np.uint8), aff + _shift(0.01)
    )
    with pytest.raises(LabelGeometryError, match="affine"):
        check_label_geometry(shifted, image)
    check_label_geometry(shifted, image, atol=0.1)
    wrong_shape = make_nifti(tmp_path / "ws.nii.gz", np.zeros((4, 5, 7), np.uint8), aff)
    with pytest.raises(LabelGeometryError, match="shape"):
        check_label_geometry(wrong_shape, image)
    floats = make_nifti(tmp_path / "f.nii.gz", np.zeros((4, 5, 6), np.float32), aff)
    with pytest.raises(LabelGeometryError, match="integer"):
        check_label_geometry(floats, image)


def _shift(mm: float) -> np.ndarray:
    out = np.zeros((4, 4))
    out[0, 3] = mm
    return out


def test_registry_order_and_errors(tmp_path: Path) -> None:
    names = [r.name for r in readers()]
    assert names.index("nifti") < names.index("dicom")
    assert names.index("dicom-series") < names.index("dicom")
    with pytest.raises(ImageNotFoundError):
        probe_image(tmp_path / "missing.nii.gz")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x01\x02" * 100)
    with pytest.raises(UnsupportedFormatError, match="unsupported file"):
        read_image(junk)
    fake = tmp_path / "fake.nii.gz"
    fake.write_bytes(b"not gzip at all")
    assert find_reader(fake).name == "nifti"  # claimed by name, refused with a clear error
    with pytest.raises(ImageReadError, match="gzip"):
        probe_image(fake)
    (tmp_path / "folder").mkdir()
    with pytest.raises(UnsupportedFormatError, match="folder"):
        probe_image(tmp_path / "folder")


def test_png_via_pillow(tmp_path: Path) -> None:
    image_mod = pytest.importorskip("PIL.Image")
    rgb = np.random.default_rng(0).integers(0, 255, size=(7, 9, 3), dtype=np.uint8)
    image_mod.fromarray(rgb).save(tmp_path / "a.png")
    gray = (np.arange(7 * 9, dtype=np.uint16) * 100).reshape(7, 9)
    image_mod.fromarray(gray).save(tmp_path / "g.png")
    data = read_image(tmp_path / "a.png")
    assert data.array.shape == (3, 7, 9) and probe_image(tmp_path / "a.png").shape == (7, 9)
    np.testing.assert_array_equal(np.moveaxis(data.array, 0, -1), rgb)
    g = read_image(tmp_path / "g.png")
    assert g.array.shape == (1, 7, 9)
    np.testing.assert_array_equal(g.array[0], gray)
    with pytest.raises(ImageReadError, match="cap"):
        probe_image(tmp_path / "a.png", max_bytes=10)


def _block_import(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    real = builtins.__import__

    def fake(mod: str, *args: Any, **kwargs: Any) -> Any:
        if mod == name or mod.startswith(name + "."):
            raise ImportError(f"No module named {mod!r}")
        return real(mod, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake)
    import importlib

    real_import_module = importlib.import_module

    def fake_import_module(mod: str, *args: Any, **kwargs: Any) -> Any:
        if mod == name or mod.startswith(name + "."):
            raise ImportError(f"No module named {mod!r}")
        return real_import_module(mod, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", fake_import_module)


def test_missing_extras_raise_unsupported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    png = tmp_path / "a.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
    _block_import(monkeypatch, "PIL")
    _block_import(monkeypatch, "av")
    with pytest.raises(UnsupportedFormatError, match=r"medstore\[images2d\]"):
        probe_image(png)
    with pytest.raises(UnsupportedFormatError, match=r"medstore\[video\]"):
        read_image(video)


def test_series_folder_probe_reads_no_pixels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = make_dicom_series(tmp_path / "s", np.zeros((3, 4, 5), np.int16))
    import medstore.datastore.imaging.dicom_file as dicom_file
    import medstore.datastore.imaging.dicom_series as dicom_series

    def boom(*_: Any, **__: Any) -> None:
        raise AssertionError("probe decoded pixels")

    monkeypatch.setattr(dicom_series, "decode_pixels", boom)
    monkeypatch.setattr(dicom_file, "decode_pixels", boom)
    assert probe_image(folder).shape == (3, 4, 5)
    assert probe_image(pydicom_data_dir() / "CT_small.dcm").shape == (1, 128, 128)


def test_decode_is_really_patched_in_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = make_dicom_series(tmp_path / "s", np.zeros((3, 4, 5), np.int16))
    import medstore.datastore.imaging.dicom_series as dicom_series

    def boom(*_: Any, **__: Any) -> None:
        raise RuntimeError("decoded")

    monkeypatch.setattr(dicom_series, "decode_pixels", boom)
    with pytest.raises(RuntimeError, match="decoded"):
        read_image(folder)
