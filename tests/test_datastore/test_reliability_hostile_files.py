"""Hostile files through the store (issue 6 item 5): images and archives, each within the envelope.

Each case runs in a separate process that records its time and peak memory: a clear error within
2 s and under 500 MB, nothing written outside the root, and the last good manifest kept (images
are either refused or indexed as they are and refused when read).
"""

from __future__ import annotations

import gzip
import json
import stat
import struct
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
from pydicom.data import get_testdata_file
from support import reliability_harness as h
from support.nifti import nifti_bytes

READ_ERRORS = {"ImageReadError", "UnsupportedFormatError"}
ARCHIVE_ERRORS = {"ArchiveError", "InvalidIdError", "UnsupportedFormatError"}


def _nifti_header(shape: tuple[int, ...], dtype: type = np.int16) -> nib.Nifti1Header:
    hdr = nib.Nifti1Header()
    hdr.set_data_shape(shape)
    hdr.set_data_dtype(dtype)
    hdr["vox_offset"] = 352
    return hdr


def _images(folder: Path) -> dict[str, tuple[Path, set[str] | None]]:
    """name -> (file, allowed errors; ``None`` = must read fine)."""
    folder.mkdir()
    cases: dict[str, tuple[Path, set[str] | None]] = {}

    def put(name: str, data: bytes, allowed: set[str] | None = READ_ERRORS) -> None:
        path = folder / name
        path.write_bytes(data)
        cases[name] = (path, allowed)

    hdr = _nifti_header((30000, 30000, 30000), np.float64)
    put("huge_dims.nii.gz", gzip.compress(hdr.binaryblock + b"\x00" * 104))
    put("huge_dims_raw.nii", hdr.binaryblock + b"\x00" * 104)
    neg = _nifti_header((4, 4, 4))
    dims = neg["dim"].copy()
    dims[1] = -5
    neg["dim"] = dims
    put("negative_dim.nii.gz", gzip.compress(neg.binaryblock + b"\x00" * (4 + 4 * 4 * 4 * 2)))
    zero = _nifti_header((4, 4, 4))
    dims = zero["dim"].copy()
    dims[0] = 9  # more dimensions than NIfTI-1 has
    zero["dim"] = dims
    put("ndim_9.nii.gz", gzip.compress(zero.binaryblock + b"\x00" * 200))
    voxels = np.arange(64, dtype=np.int16).reshape(4, 4, 4)
    good_gz = nifti_bytes(voxels, compressed=True)
    put("truncated_gzip.nii.gz", good_gz[: len(good_gz) // 2])
    put("bad_crc.nii.gz", good_gz[:-8] + b"\x00" * 8)
    put("not_nifti.nii.gz", gzip.compress(b"this is not a NIfTI header" * 20))
    put("empty.nii.gz", b"")
    nan = nifti_bytes(voxels, slope=np.nan, inter=np.nan, compressed=True)
    put("nan_scaling.nii.gz", nan, None)
    inf = nifti_bytes(voxels, slope=np.inf, inter=np.nan, compressed=True)
    put("inf_scaling.nii.gz", inf, READ_ERRORS | {None})  # type: ignore[arg-type]
    ct_small = get_testdata_file("CT_small.dcm")
    assert isinstance(ct_small, str)
    dcm = Path(ct_small).read_bytes()
    pos = dcm.index(b"\xe0\x7f\x10\x00OW")
    # Pixel data declaring 3 GB at the end of a 39 kB file: refusing it and reading the bytes that
    # are there are both safe; allocating 3 GB is not (the memory cap checks that).
    put(
        "huge_pixel_length.dcm",
        dcm[: pos + 8] + struct.pack("<I", 3_000_000_000) + dcm[pos + 12 :],
        READ_ERRORS | {None},  # type: ignore[arg-type]
    )
    pos = dcm.index(struct.pack("<HH", 0x0010, 0x0010) + b"PN")
    length = struct.unpack("<H", dcm[pos + 6 : pos + 8])[0]
    huge = struct.pack("<HH", 0x0010, 0x0010) + b"OB\x00\x00" + struct.pack("<I", 2_000_000_000)
    put("huge_element_length.dcm", dcm[:pos] + huge + dcm[pos + 8 + length :])
    put("truncated.dcm", dcm[: len(dcm) // 3])
    return cases


def _zip(path: Path, entries: list[tuple[str | zipfile.ZipInfo, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return path


def _archives(folder: Path) -> dict[str, Path]:
    folder.mkdir()
    image = h.seeded_nifti_bytes(1, dtype="int16")
    link = zipfile.ZipInfo("image/link.nii.gz")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    cases = {
        "parent": [("image/../../evil.nii.gz", image)],
        "parent-top": [("../evil.nii.gz", image)],
        "absolute": [("/tmp/evil.nii.gz", image)],
        "windows-drive": [("C:/evil.nii.gz", image)],
        "backslash": [("image\\..\\evil.nii.gz", image)],
        "symlink": [(link, b"/etc/passwd")],
        "bad-id-device": [("image/CON.nii.gz", image)],
        "bad-id-hidden": [("image/.hidden.nii.gz", image)],
        "bad-id-long": [("image/" + "x" * 300 + ".nii.gz", image)],
        "bad-id-nul": [("image/a\x00b.nii.gz", image)],
        "label-escape": [("image/a.nii.gz", image), ("label/../../../a.nii.gz", image)],
        "metadata-deep": [("metadata.json", b"[" * 100_000 + b"]" * 100_000)],
        "metadata-not-json": [("metadata.json", b"{'a': 1")],
        "bomb": [("image/bomb.nii.gz", bytes(100_000_000))],
        "not-a-zip": None,
    }
    out = {}
    for name, entries in cases.items():
        path = folder / f"{name}.zip"
        if entries is None:
            path.write_bytes(b"PK\x03\x04 definitely not a zip")
        else:
            _zip(path, entries)  # type: ignore[arg-type]
        out[name] = path
    stored = zipfile.ZipInfo("metadata.json")
    stored.compress_type = zipfile.ZIP_STORED  # no ratio to trip over: the parser must cope
    out["metadata-deep-stored"] = _zip(
        folder / "deep-stored.zip",
        [("image/a.nii.gz", image), (stored, b'{"a":' * 100_000 + b"1" + b"}" * 100_000)],
    )
    dup = folder / "duplicate.zip"
    with zipfile.ZipFile(dup, "w") as zf, pytest.warns(UserWarning, match="Duplicate"):
        zf.writestr("image/a.nii.gz", image)
        zf.writestr("image/a.nii.gz", h.seeded_nifti_bytes(2, dtype="int16"))
    out["duplicate"] = dup
    return out


def _run(root: Path, cases: list[dict[str, Any]], tmp_path: Path) -> list[dict[str, Any]]:
    cases_file = tmp_path / "store.cases.json"  # named like the store: not "outside" it
    cases_file.write_text(json.dumps(cases))
    run = subprocess.run(
        [sys.executable, str(h.HARNESS), "files", str(root), str(cases_file)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.splitlines()[-1])


def _outside(tmp_path: Path) -> dict[str, Any]:
    """Everything beside the store (the test folder's own mtime aside: new entries show anyway)."""
    listing = h.tree_listing(tmp_path)
    return {k: v for k, v in listing.items() if not k.startswith("store") and k != "."}


def test_hostile_images_fail_clearly_and_fast(tmp_path: Path) -> None:
    root = tmp_path / "store"
    h.write_indexed_store(root, 2, labels={"final": [0]})
    cases = _images(tmp_path / "hostile")
    before_outside = _outside(tmp_path)
    results = _run(
        root,
        [{"name": n, "kind": "image", "path": str(p)} for n, (p, _) in cases.items()],
        tmp_path,
    )
    assert [r["name"] for r in results] == list(cases)
    for result in results:
        allowed = cases[result["name"]][1]
        assert result["seconds"] < 2.0, result
        assert result["peak_mb"] < 500, result
        if allowed is None:
            assert result["error"] is None and result["finite"], result
        else:
            assert result["error"] in allowed, result
        if result["error"] is None:
            assert result["finite"], result
        if result["error"]:
            assert result["message"], result
    assert _outside(tmp_path) == before_outside
    doc = json.loads((root / h.MANIFEST).read_bytes())  # still a good manifest
    assert {"img000", "img001"} <= set(doc["objects"])
    assert doc["objects"]["img000"]["labels"]["final"]
    peak = max(r["peak_mb"] for r in results)
    print(f"\nHOSTILE images: {len(results)} tried, peak {peak:.0f} MB")
    for r in results:
        print(f"  {r['name']}: {r['error'] or 'read'} {r.get('message', '')[:90]}")


def test_hostile_archives_import_nothing(tmp_path: Path) -> None:
    root = tmp_path / "store"
    h.write_indexed_store(root, 2, labels={"final": [0]})
    cases = _archives(tmp_path / "zips")
    manifest = (root / h.MANIFEST).read_bytes()
    images = sorted(p.name for p in root.iterdir() if p.is_file())
    before_outside = _outside(tmp_path)
    results = _run(
        root, [{"name": n, "kind": "archive", "path": str(p)} for n, p in cases.items()], tmp_path
    )
    for result in results:
        assert result["error"] in ARCHIVE_ERRORS, result
        assert result["seconds"] < 2.0, result
        assert result["peak_mb"] < 500, result
    assert (root / h.MANIFEST).read_bytes() == manifest, "the last good manifest was not kept"
    assert sorted(p.name for p in root.iterdir() if p.is_file()) == images
    assert _outside(tmp_path) == before_outside
    assert not (tmp_path / "evil.nii.gz").exists() and not Path("/tmp/evil.nii.gz").exists()
    peak = max(r["peak_mb"] for r in results)
    print(f"\nHOSTILE archives: {len(results)} tried, peak {peak:.0f} MB")
    for r in results:
        print(f"  {r['name']}: {r['error']} {r.get('message', '')[:90]}")
