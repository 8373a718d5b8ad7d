"""NRRD reading: pynrrd-written files against a reference affine and against SimpleITK."""

from __future__ import annotations

import gzip
import itertools
import zipfile
from pathlib import Path

import nrrd
import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813  (the name SimpleITK documents)
from hypothesis import given, settings
from hypothesis import strategies as st
from medstore.datastore import LocalDatastore
from medstore.datastore.errors import ImageReadError, InvalidIdError
from medstore.datastore.imaging import probe_image, read_image
from medstore.datastore.interop.archive_import import import_archive
from support.cli import Run
from support.nifti import NiftiFile

SPACES = {
    "left-posterior-superior": np.diag([-1.0, -1.0, 1.0]),
    "right-anterior-superior": np.eye(3),
    "left-anterior-superior": np.diag([-1.0, 1.0, 1.0]),
    "scanner-xyz": np.diag([-1.0, -1.0, 1.0]),  # read as LPS, as ITK does
}
AXES = list(itertools.permutations(range(3)))


def _write(
    path: Path,
    sizes: tuple[int, ...],
    *,
    dirs: np.ndarray,
    origin: tuple[float, float, float] = (3.0, -7.0, 11.0),
    space: str = "left-posterior-superior",
    encoding: str = "gzip",
    dtype: type = np.int32,
    detached: bool = False,
) -> np.ndarray:
    """Write ``arange`` (Fortran order, so voxel (i, j, k) holds its flat NRRD index)."""
    data = np.arange(int(np.prod(sizes)), dtype=dtype).reshape(sizes, order="F")
    header = {"space": space, "space directions": dirs, "space origin": np.array(origin)}
    header["encoding"] = encoding
    nrrd.write(str(path), data, header, detached_header=detached)
    return data


def _reference_ras(dirs: np.ndarray, origin: tuple[float, ...], space: str) -> np.ndarray:
    """The RAS+ affine of the file's voxel axes, computed here from the NRRD spec."""
    aff = np.eye(4)
    aff[:3, :3] = SPACES[space] @ np.asarray(dirs, float)[-3:].T
    aff[:3, 3] = SPACES[space] @ np.asarray(origin, float)
    return aff


def _check_world(
    path: Path, sizes: tuple[int, ...], reference: np.ndarray, *, itk: bool = True
) -> None:
    """Every voxel's canonical position maps to where the reference (and SimpleITK) put it."""
    data = read_image(path)
    assert data.array.shape[1:] == probe_image(path).shape
    values = data.array[0]
    idx = np.argwhere(np.ones(values.shape, bool))
    native = np.stack(np.unravel_index(values.reshape(-1), sizes, order="F"), axis=1)
    ours = (data.affine @ np.c_[idx, np.ones(len(idx))].T)[:3].T
    ref = (reference @ np.c_[native, np.ones(len(native))].T)[:3].T
    np.testing.assert_allclose(ours, ref, atol=1e-6)
    if not itk:
        return
    image = sitk.ReadImage(str(path))
    for n in range(0, len(idx), max(1, len(idx) // 17)):
        lps = np.array(image.TransformIndexToPhysicalPoint([int(v) for v in native[n]]))
        np.testing.assert_allclose(ours[n], lps * [-1, -1, 1], atol=1e-5)
        assert sitk.GetArrayViewFromImage(image)[tuple(native[n][::-1])] == values.reshape(-1)[n]


@pytest.mark.parametrize("space", sorted(SPACES))
@pytest.mark.parametrize("encoding", ["raw", "gzip", "bzip2", "ascii"])
def test_space_and_encoding_variants_match_reference_and_simpleitk(
    tmp_path: Path, space: str, encoding: str
) -> None:
    dirs = np.array([[0.0, 1.5, 0.0], [-0.7, 0.0, 0.0], [0.0, 0.0, 2.5]])
    path = tmp_path / "img.nrrd"
    _write(path, (3, 4, 5), dirs=dirs, space=space, encoding=encoding)
    reference = _reference_ras(dirs, (3.0, -7.0, 11.0), space)
    # ITK's NrrdIO has no bzip2: that encoding is checked against the reference only.
    _check_world(path, (3, 4, 5), reference, itk=encoding != "bzip2")


@settings(max_examples=25, deadline=None)
@given(
    perm=st.sampled_from(AXES),
    flips=st.tuples(*[st.sampled_from([-1.0, 1.0])] * 3),
    spacing=st.tuples(*[st.floats(0.3, 4.0)] * 3),
    angle=st.floats(-0.4, 0.4),
    space=st.sampled_from(sorted(SPACES)),
)
def test_orientations_and_obliques_match_reference(
    tmp_path_factory: pytest.TempPathFactory,
    perm: tuple[int, int, int],
    flips: tuple[float, float, float],
    spacing: tuple[float, float, float],
    angle: float,
    space: str,
) -> None:
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    dirs = (rot @ np.eye(3)[list(perm)].T @ np.diag(np.multiply(flips, spacing))).T
    path = tmp_path_factory.mktemp("h") / "img.nrrd"
    _write(path, (2, 3, 4), dirs=dirs, space=space, encoding="raw")
    _check_world(path, (2, 3, 4), _reference_ras(dirs, (3.0, -7.0, 11.0), space))


@pytest.mark.parametrize("encoding", ["raw", "gzip"])
def test_detached_header_reads_its_data_file(tmp_path: Path, encoding: str) -> None:
    dirs = np.diag([0.5, 0.6, 2.0])
    path = tmp_path / "img.nhdr"
    _write(path, (4, 3, 2), dirs=dirs, encoding=encoding, detached=True)
    assert "data file" in nrrd.read_header(str(path))
    _check_world(path, (4, 3, 2), _reference_ras(dirs, (3.0, -7.0, 11.0), SPACES_LPS))


SPACES_LPS = "left-posterior-superior"


def test_4d_list_axis_becomes_channels(tmp_path: Path) -> None:
    vol = np.arange(3 * 4 * 5 * 6, dtype=np.uint8).reshape(3, 4, 5, 6)
    dirs = np.array([[np.nan] * 3, [1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])
    header = {
        "space": "right-anterior-superior",
        "space directions": dirs,
        "kinds": ["list", "domain", "domain", "domain"],
        "space origin": np.zeros(3),
    }
    nrrd.write(str(tmp_path / "v.nrrd"), vol, header)
    data = read_image(tmp_path / "v.nrrd")
    assert data.array.shape == (3, 6, 5, 4)
    assert data.meta["channel_kinds"] == ["list"]
    # RAS file: canonical (S, P, L) = reverse axes, flip P and L.
    expected = np.transpose(vol, (0, 3, 2, 1))[:, :, ::-1, ::-1]
    np.testing.assert_array_equal(data.array, expected)


def test_no_space_reads_spacings_as_lps_like_itk(tmp_path: Path) -> None:
    path = tmp_path / "plain.nrrd"
    nrrd.write(str(path), np.zeros((2, 3, 4), np.int16), {"spacings": [0.5, 0.7, 2.0]})
    image = sitk.ReadImage(str(path))
    assert image.GetSpacing() == (0.5, 0.7, 2.0)
    h = probe_image(path)
    assert h.orientation == ("L", "P", "S")
    np.testing.assert_allclose(h.native_affine_array, np.diag([-0.5, -0.7, 2.0, 1.0]))


# --- bad input -------------------------------------------------------------------------------


def _set_sizes(path: Path, new: str) -> None:
    raw = path.read_bytes()
    head, sep, body = raw.partition(b"\n\n")
    lines = [
        b"sizes: " + new.encode() if ln.startswith(b"sizes:") else ln for ln in head.split(b"\n")
    ]
    path.write_bytes(b"\n".join(lines) + sep + body)


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("encoding", "sizes", "match"),
    [
        ("raw", "4 4 5", r"declares 160 bytes of voxel data but the file holds only 120"),
        ("raw", "2 4 5", r"holds 120 bytes but its header sizes \(2, 4, 5\) declare 80"),
        ("gzip", "4 4 5", r"holds 120 bytes but its header sizes declare 160"),
        ("gzip", "2 4 5", r"holds more than its header sizes declare"),
        ("raw", "4000 4000 4000", r"declares 128000000000 bytes.*over the"),
    ],
)
def test_sizes_that_disagree_with_the_data_are_refused(
    tmp_path: Path, encoding: str, sizes: str, match: str
) -> None:
    path = tmp_path / "bad.nrrd"
    nrrd.write(str(path), np.zeros((3, 4, 5), np.int16), {"encoding": encoding})
    _set_sizes(path, sizes)
    with pytest.raises(ImageReadError, match=r"bad\.nrrd: .*" + match):
        read_image(path)


def test_gzip_bomb_within_cap_is_refused_without_allocating_its_claim(tmp_path: Path) -> None:
    path = tmp_path / "bomb.nrrd"
    nrrd.write(str(path), np.zeros((4, 4, 4), np.uint8), {"encoding": "gzip"})
    head = path.read_bytes().partition(b"\n\n")[0]
    path.write_bytes(head + b"\n\n" + gzip.compress(bytes(50_000_000)))
    with pytest.raises(ImageReadError, match="holds more than its header sizes declare"):
        read_image(path, max_bytes=1 << 20)


def test_detached_data_outside_the_headers_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "secret.raw").write_bytes(bytes(24))
    store = tmp_path / "store"
    store.mkdir()
    header = (
        "NRRD0004\ntype: uint8\ndimension: 3\nsizes: 2 3 4\nencoding: raw\n"
        "data file: ../secret.raw\n"
    )
    (store / "x.nhdr").write_text(header)
    with pytest.raises(
        ImageReadError,
        match=r"x\.nhdr: detached data file '\.\./secret\.raw' "
        "lies outside the header's folder",
    ):
        read_image(store / "x.nhdr")
    (store / "y.nhdr").write_text(header.replace("../secret.raw", str(tmp_path / "secret.raw")))
    with pytest.raises(ImageReadError, match="outside the header's folder"):
        probe_image(store / "y.nhdr")
    (store / "z.nhdr").write_text(header.replace("../secret.raw", "gone.raw"))
    with pytest.raises(ImageReadError, match=r"z\.nhdr: detached data file 'gone\.raw' is missing"):
        probe_image(store / "z.nhdr")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"not nrrd at all", "no NRRD000x magic"),
        (b"NRRD0004\ntype: block\ndimension: 1\nsizes: 4\n\n", "unsupported NRRD type 'block'"),
        (b"NRRD0004\ntype: short\ndimension: 3\nsizes: 2 3\n\n", "disagree with its dimension"),
        (b"NRRD0004\ntype: short\ndimension: 1\nsizes: 4\n\n" + bytes(8), "1 spatial axes"),
        (b"NRRD0004\ntype: short\ndimension: 3\nsizes: 1 1 1\nencoding: zip\n\n", "encoding"),
    ],
)
def test_bad_headers_name_the_file_and_the_problem(
    tmp_path: Path, content: bytes, match: str
) -> None:
    path = tmp_path / "bad.nrrd"
    path.write_bytes(content)
    with pytest.raises(ImageReadError, match=r"bad\.nrrd: .*" + match):
        probe_image(path)


# --- the store -------------------------------------------------------------------------------


def test_default_store_indexes_nrrd_and_seg_nrrd_ids(tmp_path: Path) -> None:
    root = tmp_path / "studies"
    root.mkdir()
    dirs = np.diag([1.0, 1.0, 2.0])
    _write(root / "ct.nrrd", (3, 4, 5), dirs=dirs, dtype=np.int16)
    _write(root / "case.seg.nrrd", (3, 4, 5), dirs=dirs, dtype=np.uint8)
    store = LocalDatastore(root)
    assert sorted(store.list_images()) == ["case", "ct"]
    assert store.get_image_info("case")["name"] == "case.seg.nrrd"
    assert read_image(store.get_image_uri("ct")).array.shape == (1, 5, 4, 3)
    store.close()
    with LocalDatastore(tmp_path / "added") as added:
        added.add_image("", root / "ct.nrrd")
        assert added.get_image_info("ct")["shape"] == [5, 4, 3]


def test_two_files_giving_one_id_are_refused_naming_both(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _write(src / "case.nrrd", (3, 4, 5), dirs=np.eye(3), dtype=np.int16)
    _write(src / "case.seg.nrrd", (3, 4, 5), dirs=np.eye(3), dtype=np.uint8)
    with LocalDatastore(tmp_path / "store") as store:
        store.add_image("other", src / "case.nrrd")  # the manifest exists before the refusal
        with pytest.raises(
            InvalidIdError, match=r"case\.nrrd and case\.seg\.nrrd both give image id 'case'"
        ):
            store.add_images([src / "case.nrrd", src / "case.seg.nrrd"])
        assert store.list_images() == ["other"]
    with LocalDatastore(tmp_path / "store") as store:
        assert store.list_images() == ["other"]


# --- a .nhdr and its detached data file are one image ----------------------------------------

NHDR_PATTERNS = ("*.nhdr", "*.nii.gz", "*.gz")  # '*.gz' matches the data file too


def _nhdr(folder: Path, name: str = "ct", *, value: int = 0) -> np.ndarray:
    folder.mkdir(parents=True, exist_ok=True)
    data = _write(folder / f"{name}.nhdr", (4, 3, 2), dirs=np.eye(3), detached=True)
    if value:  # rewrite the data with a recognisable offset
        data = data + value
        nrrd.write(str(folder / f"{name}.nhdr"), data, {"encoding": "gzip"}, detached_header=True)
    return data


def _canonical(path: Path) -> np.ndarray:
    return np.asarray(read_image(path).array)


def test_adding_an_nhdr_copies_its_data_file_and_removing_trashes_both(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _nhdr(src)
    expected = _canonical(src / "ct.nhdr")
    with LocalDatastore(tmp_path / "store", extensions=NHDR_PATTERNS) as store:
        assert store.add_image("", src / "ct.nhdr") == "ct"
        images = store.layout.images
        assert (images / "ct.raw.gz").read_bytes() == (src / "ct.raw.gz").read_bytes()
        assert store.get_image_info("ct")["shape"] == [2, 3, 4]
        for source_file in src.iterdir():
            source_file.unlink()  # the store's copy no longer needs the source
        np.testing.assert_array_equal(_canonical(Path(store.get_image_uri("ct"))), expected)
        assert store.list_images() == ["ct"]  # the data file is no image of its own
        store.remove_image("ct")
        assert not (images / "ct.nhdr").exists() and not (images / "ct.raw.gz").exists()
        trashed = sorted(p.name for p in (tmp_path / "store" / ".medstore").rglob("ct.*"))
        assert trashed == ["ct.nhdr", "ct.raw.gz"]
        store.restore_image("ct")
        np.testing.assert_array_equal(_canonical(Path(store.get_image_uri("ct"))), expected)
    with LocalDatastore(tmp_path / "store", extensions=NHDR_PATTERNS) as store:
        assert store.list_images() == ["ct"]


def test_replacing_an_nhdr_trashes_the_old_data_file(tmp_path: Path) -> None:
    _nhdr(tmp_path / "v1")
    new = _nhdr(tmp_path / "v2", value=1000)
    with LocalDatastore(tmp_path / "store", extensions=NHDR_PATTERNS) as store:
        store.add_images([tmp_path / "v1" / "ct.nhdr"])
        store.add_image("ct", tmp_path / "v2" / "ct.nhdr")
        got = _canonical(Path(store.get_image_uri("ct")))
        assert got.max() >= 1000 and got.size == new.size
        kept = sorted((tmp_path / "store" / ".medstore").rglob("ct.raw.gz"))
        assert len(kept) == 1 and kept[0].read_bytes() == (tmp_path / "v1/ct.raw.gz").read_bytes()


def test_cli_add_of_an_nhdr_brings_its_data(tmp_path: Path, cli: Run) -> None:
    _nhdr(tmp_path / "src")
    root = tmp_path / "store"
    assert cli("init", root)[0] == 0
    assert cli("--store", root, "--ext", "*.nhdr", "add", tmp_path / "src" / "ct.nhdr")[0] == 0
    assert (root / "ct.raw.gz").is_file()
    with LocalDatastore(root, extensions=("*.nhdr",)) as store:
        assert read_image(store.get_image_uri("ct")).array.shape == (1, 2, 3, 4)


def test_a_linked_nhdr_reads_its_data_in_place(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _nhdr(src)
    with LocalDatastore(tmp_path / "store", extensions=NHDR_PATTERNS) as store:
        store.add_image("ct", src / "ct.nhdr", link=True)
        assert not (store.layout.images / "ct.raw.gz").exists()
        np.testing.assert_array_equal(
            _canonical(Path(store.get_image_uri("ct"))), _canonical(src / "ct.nhdr")
        )


def test_scan_indexes_an_nhdr_and_its_data_file_as_one_image(tmp_path: Path) -> None:
    root = tmp_path / "studies"
    _nhdr(root, "case")
    assert (root / "case.raw.gz").is_file()
    with LocalDatastore(root, extensions=NHDR_PATTERNS) as store:
        assert store.list_images() == ["case"]
        state = store.refresh()
        assert sorted(state.images) == ["case"]
        assert store.list_images() == ["case"]


def test_nhdr_data_that_cannot_be_stored_beside_it_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    data = np.arange(24, dtype=np.int32)
    data.tofile(src / "sub" / "x.raw")
    header = "NRRD0004\ntype: int32\ndimension: 3\nsizes: 4 3 2\nencoding: raw\n"
    (src / "x.nhdr").write_text(header + "data file: sub/x.raw\n\n")
    data.tofile(src / "datastore_v2.json")
    (src / "evil.nhdr").write_text(header + "data file: datastore_v2.json\n\n")
    with LocalDatastore(tmp_path / "store", extensions=NHDR_PATTERNS) as store:
        with pytest.raises(ImageReadError, match=r"'sub/x\.raw' lies in a sub-folder"):
            store.add_image("", src / "x.nhdr")
        with pytest.raises(InvalidIdError, match=r"'datastore_v2\.json' would be stored"):
            store.add_image("", src / "evil.nhdr")
        assert store.list_images() == []
        store.add_image("x", src / "x.nhdr", link=True)  # a link reads it in place
        assert read_image(store.get_image_uri("x")).array.size == 24


def test_two_headers_naming_one_data_file_are_refused(tmp_path: Path) -> None:
    header = "NRRD0004\ntype: int32\ndimension: 3\nsizes: 4 3 2\nencoding: raw\n"
    for name, folder in (("a", "one"), ("b", "two")):
        (tmp_path / folder).mkdir()
        np.arange(24, dtype=np.int32).tofile(tmp_path / folder / "data.raw")
        (tmp_path / folder / f"{name}.nhdr").write_text(header + "data file: data.raw\n\n")
    with LocalDatastore(tmp_path / "store", extensions=NHDR_PATTERNS) as store:
        with pytest.raises(InvalidIdError, match=r"detached data file named 'data\.raw'"):
            store.add_images([tmp_path / "one" / "a.nhdr", tmp_path / "two" / "b.nhdr"])
        assert store.list_images() == []
        store.add_image("", tmp_path / "one" / "a.nhdr")
        with pytest.raises(InvalidIdError, match=r"'data\.raw' would be stored at data\.raw"):
            store.add_image("", tmp_path / "two" / "b.nhdr")
        assert store.list_images() == ["a"]
        assert not any((tmp_path / "store" / ".medstore" / "pending").glob("staged-*"))


def test_cli_add_of_a_folder_adds_the_nhdr_not_its_data_file(tmp_path: Path, cli: Run) -> None:
    _nhdr(tmp_path / "src", "case")
    root = tmp_path / "store"
    assert cli("init", root)[0] == 0
    ext = ("--ext", "*.nhdr", "--ext", "*.gz")
    assert cli("--store", root, *ext, "add", tmp_path / "src")[0] == 0
    with LocalDatastore(root, extensions=NHDR_PATTERNS) as store:
        assert store.list_images() == ["case"]


def test_an_image_is_never_stored_over_a_stored_nhdr_data_file(
    tmp_path: Path, nifti_file: NiftiFile
) -> None:
    src = tmp_path / "hdr"
    src.mkdir()
    np.arange(24, dtype=np.int32).tofile(src / "scan.nii")  # a data file named like an image
    header = "NRRD0004\ntype: int32\ndimension: 3\nsizes: 4 3 2\nencoding: raw\n"
    (src / "ct.nhdr").write_text(header + "data file: scan.nii\n\n")
    with LocalDatastore(tmp_path / "store", extensions=("*.nhdr", "*.nii")) as store:
        store.add_image("", src / "ct.nhdr")
        assert store.list_images() == ["ct"]
        with pytest.raises(InvalidIdError, match=r"scan\.nii, the data file of image 'ct'"):
            store.add_image("scan", nifti_file("other.nii"))
        assert read_image(store.get_image_uri("ct")).array.size == 24


def test_dataset_archive_carries_an_nhdr_data_file_and_imports_back(tmp_path: Path) -> None:
    _nhdr(tmp_path / "src")
    expected = _canonical(tmp_path / "src" / "ct.nhdr")
    patterns = ("*.nhdr", "*.nii.gz")
    with LocalDatastore(tmp_path / "store", extensions=patterns) as store:
        store.add_image("", tmp_path / "src" / "ct.nhdr")
        store.save_label("ct", np.ones(expected.shape[1:], np.uint8), "final")
        archive = Path(store.get_dataset_archive(None))
    with zipfile.ZipFile(archive) as zf:
        assert sorted(zf.namelist()) == [
            "image/ct.nhdr", "image/ct.raw.gz", "label/ct.nii.gz", "metadata.json"
        ]  # fmt: skip
    with LocalDatastore(tmp_path / "copy", extensions=patterns) as copy:
        assert import_archive(copy, archive) == ["ct"]
        np.testing.assert_array_equal(_canonical(Path(copy.get_image_uri("ct"))), expected)
        assert copy.get_label_uri("ct", "final")
