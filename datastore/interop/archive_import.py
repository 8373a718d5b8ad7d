"""Importing a MONAI Label dataset archive (``image/``, ``label/``, ``metadata.json``) safely.

Every archive is hostile until validated: entry names must be plain
``image/<file>``, ``label/<file>`` or ``metadata.json``; absolute paths, ``..``, backslashes,
symlink entries, duplicates, too many entries, too many bytes and suspicious compression ratios
are refused before anything is extracted, and bytes are counted while extracting so a lying header
cannot overrun the caps. The import is all-or-nothing: one store transaction.

Examples:
    >>> ArchiveLimits().max_entries
    100000
"""

from __future__ import annotations

import stat
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import orjson

from .. import nofollow
from ..errors import ArchiveError, ImageReadError, InvalidIdError, UnsupportedFormatError
from ..ids import derive_id, validate_id

if TYPE_CHECKING:
    from ..store.local import LocalDatastore

__all__ = ["ArchiveError", "ArchiveLimits", "import_archive"]

_CHUNK = 1 << 20


@dataclass(frozen=True)
class ArchiveLimits:
    """Caps for an archive import.

    Args:
        max_entries: Most entries allowed.
        max_total_bytes: Most uncompressed bytes in all.
        max_ratio: Highest uncompressed/compressed ratio of one entry (zip bombs).
        max_metadata_bytes: Largest ``metadata.json``.
    """

    max_entries: int = 100_000
    max_total_bytes: int = 64 << 30
    max_ratio: float = 200.0
    max_metadata_bytes: int = 64 << 20


def _checked_name(info: zipfile.ZipInfo) -> tuple[str, str]:
    """``(folder, file_name)`` of a safe entry; raises ``ArchiveError`` otherwise."""
    name = info.filename
    if "\\" in name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise ArchiveError(f"archive entry {name!r} has an absolute or Windows path")
    parts = PurePosixPath(name).parts
    if ".." in parts or "\x00" in name:
        raise ArchiveError(f"archive entry {name!r} escapes the archive folder")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise ArchiveError(f"archive entry {name!r} is a symbolic link")
    if parts == ("metadata.json",):
        return "", "metadata.json"
    if len(parts) != 2 or parts[0] not in ("image", "label"):
        raise ArchiveError(
            f"archive entry {name!r} is not image/<file>, label/<file> or metadata.json"
        )
    return parts[0], parts[1]


def _validate(zf: zipfile.ZipFile, limits: ArchiveLimits) -> dict[tuple[str, str], zipfile.ZipInfo]:
    infos = [i for i in zf.infolist() if not i.is_dir()]
    if len(infos) > limits.max_entries:
        raise ArchiveError(f"archive has {len(infos)} entries (limit {limits.max_entries})")
    entries: dict[tuple[str, str], zipfile.ZipInfo] = {}
    total = 0
    for info in infos:
        key = _checked_name(info)
        if key in entries:
            raise ArchiveError(f"archive entry {info.filename!r} appears twice")
        ratio = info.file_size / max(info.compress_size, 1)
        if ratio > limits.max_ratio:
            raise ArchiveError(
                f"archive entry {info.filename!r} expands {ratio:.0f}x "
                f"(limit {limits.max_ratio:g}x)"
            )
        total += info.file_size
        if total > limits.max_total_bytes:
            raise ArchiveError(f"archive expands beyond {limits.max_total_bytes} bytes")
        entries[key] = info
    return entries


def _extract(zf: zipfile.ZipFile, info: zipfile.ZipInfo, dest: Path, budget: list[int]) -> None:
    """Stream one entry to ``dest``, refusing more bytes than declared or than the budget."""
    written = 0
    with zf.open(info) as src, open(dest, "wb") as out:
        while chunk := src.read(_CHUNK):
            written += len(chunk)
            budget[0] -= len(chunk)
            if written > info.file_size or budget[0] < 0:
                raise ArchiveError(f"archive entry {info.filename!r} holds more than it declares")
            out.write(chunk)


def _metadata(zf: zipfile.ZipFile, info: zipfile.ZipInfo | None, limits: ArchiveLimits) -> dict:
    if info is None:
        return {}
    if info.file_size > limits.max_metadata_bytes:
        raise ArchiveError("archive metadata.json is too large")
    try:
        data = orjson.loads(zf.read(info))
    except orjson.JSONDecodeError as err:
        raise ArchiveError(f"archive metadata.json is not valid JSON: {err}") from err
    if not isinstance(data, dict):
        raise ArchiveError("archive metadata.json must hold an object")
    return _cases_of(data)


def _cases_of(metadata: dict[str, Any]) -> dict[str, Any]:
    """``{image_id: {"image", "labels"}}`` from either form of ``metadata.json``.

    MONAI Label 0.8.5 (and medstore since) writes the whole manifest model (``name``,
    ``description``, ``images_dir``, ``labels_dir``, ``objects``); medstore used to write the
    archived cases alone, keyed by image id.
    """
    objects = metadata.get("objects")
    if isinstance(objects, dict) and isinstance(metadata.get("name"), str):
        return objects
    return metadata


def _info_of(metadata: dict, image_id: str, *path: str) -> dict[str, Any]:
    node: Any = metadata.get(image_id, {})
    for key in path:
        node = node.get(key, {}) if isinstance(node, dict) else {}
    info = node.get("info", {}) if isinstance(node, dict) else {}
    return (
        {k: v for k, v in info.items() if k not in ("ts", "name", "checksum")}
        if isinstance(info, dict)
        else {}
    )


def _unpack_detached_data(
    zf: zipfile.ZipFile,
    entries: dict[tuple[str, str], zipfile.ZipInfo],
    work: Path,
    budget: list[int],
) -> set[str]:
    """Unpack each ``image/*.nhdr`` header and the data file it names; the data files' names.

    A data file travels with its header (``add_image`` copies it beside the header), so it is
    no image of its own. A header naming a file the archive lacks is refused.
    """
    headers = [n for (f, n) in entries if f == "image" and n.lower().endswith(".nhdr")]
    if not headers:
        return set()
    from ..imaging.nrrd_files import data_file_names  # the imaging stack only for a .nhdr

    names: set[str] = set()
    for header in headers:
        _extract(zf, entries[("image", header)], work / header, budget)
        try:
            wanted = data_file_names(work / header)
        except ImageReadError as err:
            raise ArchiveError(f"archive image {header!r}: {err}") from err
        for name in wanted:
            info = entries.get(("image", name))
            if info is None:
                raise ArchiveError(f"archive image {header!r} names data file {name!r}, missing")
            if name not in names:
                _extract(zf, info, work / name, budget)
            names.add(name)
    return names


def import_archive(
    store: LocalDatastore, archive: str | Path, *, limits: ArchiveLimits | None = None
) -> list[str]:
    """Import a dataset archive into ``store``: images, their ``final`` labels and info.

    Args:
        store: A writable store.
        archive: The zip file.
        limits: Caps (defaults: :class:`ArchiveLimits`).

    Returns:
        The imported image ids.

    Raises:
        ArchiveError: The archive is malformed or unsafe; nothing was imported.
        InvalidIdError: A file name gives an invalid id; nothing was imported.
        UnsupportedFormatError: A file matches none of the store's patterns.
    """
    limits = limits or ArchiveLimits()
    store.check_writable()
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as err:
        raise ArchiveError(f"{Path(archive).name} is not a readable zip archive: {err}") from err
    work_root = store.side_path("imports")
    nofollow.makedirs(work_root)  # a planted link there is refused: nothing is unpacked outside
    with zf, tempfile.TemporaryDirectory(dir=work_root) as tmp:
        entries = _validate(zf, limits)
        metadata = _metadata(zf, entries.get(("", "metadata.json")), limits)
        budget = [limits.max_total_bytes]
        work = Path(tmp)
        data_names = _unpack_detached_data(zf, entries, work, budget)
        images: dict[str, tuple[str, zipfile.ZipInfo]] = {}
        for (folder, name), info in entries.items():
            if folder == "image" and name not in data_names:
                derived = derive_id(name, store.extensions)
                if derived is None:
                    raise UnsupportedFormatError(f"archive image {name!r} matches no pattern")
                images[validate_id(derived[0])] = (name, info)
        with store.batch():
            for image_id, (name, info) in sorted(images.items()):
                if not (work / name).exists():  # a .nhdr header is unpacked already
                    _extract(zf, info, work / name, budget)
                store.add_image(image_id, work / name, _info_of(metadata, image_id, "image"))
            for (folder, name), info in sorted(entries.items()):
                if folder != "label":
                    continue
                derived = derive_id(name, store.extensions)
                if derived is None or derived[0] not in images:
                    raise InvalidIdError(f"archive label {name!r} has no image in the archive")
                _extract(zf, info, work / name, budget)
                label_info = _info_of(metadata, derived[0], "labels", "final")
                store.save_label(derived[0], work / name, "final", label_info)
    return sorted(images)
