"""Compressed DICOM series (medstore[dicom-codecs]) read to the voxels of their originals.

The compressed files are made from the project's own DICOM series factory: JPEG Lossless,
JPEG-LS (lossless and near-lossless) and RLE with Debian's dcmtk, JPEG 2000 lossless with
pylibjpeg-openjpeg's encoder through pydicom.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from medstore.datastore import LocalDatastore
from medstore.datastore.imaging import read_image
from pydicom.uid import JPEG2000Lossless
from support.dicom import make_dicom_series

TOOLS = {
    "1.2.840.10008.1.2.4.70": ["dcmcjpeg"],  # JPEG Lossless, first-order prediction (SV1)
    "1.2.840.10008.1.2.4.80": ["dcmcjpls"],  # JPEG-LS lossless
    "1.2.840.10008.1.2.5": ["dcmcrle"],  # RLE Lossless
}
NEEDS_DCMTK = pytest.mark.skipif(
    shutil.which("dcmcjpeg") is None, reason="dcmtk is not installed (apt-get install dcmtk)"
)


def _volume() -> np.ndarray:
    rng = np.random.default_rng(3)
    smooth = np.cumsum(rng.integers(-40, 41, size=(4, 40, 36)), axis=2)
    return (smooth - 600).astype(np.int16)  # negative values too: CT-like


def _compress(src: Path, dest: Path, transfer_syntax: str, extra: list[str] = ()) -> Path:
    dest.mkdir(parents=True)
    for f in sorted(src.iterdir()):
        out = dest / f.name
        if transfer_syntax == JPEG2000Lossless:
            ds = pydicom.dcmread(f)
            ds.compress(JPEG2000Lossless, encoding_plugin="pylibjpeg")
            ds.save_as(out)
        else:
            tool = TOOLS.get(transfer_syntax, ["dcmcjpls"])
            subprocess.run([*tool, *extra, str(f), str(out)], check=True, capture_output=True)
        assert str(pydicom.dcmread(out, stop_before_pixels=True).file_meta.TransferSyntaxUID) == (
            transfer_syntax
        )
    return dest


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dicom_series(tmp_path_factory.mktemp("codecs") / "raw", _volume())


@pytest.mark.parametrize(
    "transfer_syntax",
    [
        pytest.param(ts, marks=NEEDS_DCMTK, id=ts)
        for ts in ("1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.5")
    ]
    + [pytest.param(JPEG2000Lossless, id="jpeg2000-lossless")],
)
def test_lossless_series_equal_their_originals(
    tmp_path: Path, original: Path, transfer_syntax: str
) -> None:
    pytest.importorskip("pylibjpeg", reason="needs medstore[dicom-codecs]")
    packed = _compress(original, tmp_path / "packed", transfer_syntax)
    want = read_image(original)
    got = read_image(packed)
    np.testing.assert_array_equal(got.array, want.array)
    np.testing.assert_allclose(got.affine, want.affine)
    with LocalDatastore(tmp_path / "store") as store:  # the store indexes and reads it too
        store.add_image("ct", packed)
        assert store.get_image_info("ct")["shape"] == list(want.array.shape[1:])


def _unsigned(src: Path, dest: Path) -> Path:
    """The same CT values stored unsigned with an intercept (near-lossless JPEG-LS needs it)."""
    dest.mkdir()
    for f in sorted(src.iterdir()):
        ds = pydicom.dcmread(f)
        ds.PixelData = (ds.pixel_array.astype(np.int32) + 2000).astype("<u2").tobytes()
        ds.PixelRepresentation, ds.RescaleIntercept = 0, -2000
        ds.save_as(dest / f.name)
    return dest


@NEEDS_DCMTK
def test_near_lossless_jpeg_ls_is_close(tmp_path: Path, original: Path) -> None:
    pytest.importorskip("pylibjpeg", reason="needs medstore[dicom-codecs]")
    unsigned = _unsigned(original, tmp_path / "unsigned")
    packed = _compress(unsigned, tmp_path / "near", "1.2.840.10008.1.2.4.81", ["+en", "+md", "2"])
    got = read_image(packed).array.astype(int)
    want = read_image(original).array.astype(int)
    np.testing.assert_array_equal(read_image(unsigned).array, want)
    assert np.abs(got - want).max() <= 2
    assert (got != want).any()  # it is lossy


_WITHOUT_CODECS = """
import sys
for name in ("pylibjpeg", "libjpeg", "openjpeg", "rle", "gdcm", "jpeg_ls"):
    sys.modules[name] = None  # as if medstore[dicom-codecs] were not installed
from medstore.datastore.errors import UnsupportedFormatError
from medstore.datastore.imaging import read_image
try:
    read_image(sys.argv[1])
except UnsupportedFormatError as err:
    print(err)
"""


@NEEDS_DCMTK
def test_without_the_extra_the_error_names_it(tmp_path: Path, original: Path) -> None:
    packed = _compress(original, tmp_path / "jpeg", "1.2.840.10008.1.2.4.70")
    env = {**os.environ, "PYTHONPATH": ""}
    run = subprocess.run(
        [sys.executable, "-c", _WITHOUT_CODECS, str(packed)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=120,
    )
    assert "pip install 'medstore[dicom-codecs]'" in run.stdout
    assert "JPEG Lossless" in run.stdout
