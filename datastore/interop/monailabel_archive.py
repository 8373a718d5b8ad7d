"""MONAI Label 0.8.5's dataset archive: ``image/``, ``label/`` and ``metadata.json`` in a zip.

Examples:
    >>> import tempfile
    >>> from medstore.datastore import LocalDatastore
    >>> write_dataset_archive(LocalDatastore(tempfile.mkdtemp()), limit_cases=None)
    Traceback (most recent call last):
    ...
    medstore.datastore.errors.ArchiveError: nothing to archive: no image has a 'final' label
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Protocol

from ..errors import ArchiveError, ImageReadError, UnsafePathError
from ..ids import is_inside
from ..store.models import LocalDatastoreModel
from ..timestamps import compact_utc

__all__ = ["ArchivedStore", "archive_folder", "write_dataset_archive"]


class ArchivedStore(Protocol):
    """What the archive writer reads of a store (``LocalDatastore`` provides it)."""

    @property
    def root(self) -> Path: ...

    def json(self) -> dict[str, Any]: ...

    def name(self) -> str: ...

    def get_labeled_images(self) -> list[str]: ...

    def get_image_uri(self, image_id: str) -> str: ...

    def get_label_uri(self, label_id: str, label_tag: str) -> str: ...


def archive_folder() -> Path:
    """Where archives go: ``<tempfile.gettempdir()>/medstore-archives``."""
    return Path(tempfile.gettempdir()) / "medstore-archives"


def _selected(cases: list[str], limit_cases: int | None) -> list[str]:
    """MONAI Label 0.8.5's rule: a limit in ``1..len-1`` keeps that many; anything else, all."""
    if limit_cases and 1 <= limit_cases < len(cases):
        return cases[:limit_cases]
    return cases


def _detached_data(image: Path, image_id: str) -> tuple[Path, ...]:
    """The data files a ``.nhdr`` image's header names (``()`` for any other image)."""
    if not image.name.lower().endswith(".nhdr"):
        return ()
    from ..imaging.nrrd_files import data_files  # the imaging stack only for a .nhdr

    try:
        found = data_files(image)
    except ImageReadError as err:
        raise ArchiveError(f"cannot archive image {image_id!r}: {err}") from err
    return found


def _write_once(zf: zipfile.ZipFile, source: Path, name: str, written: set[str]) -> None:
    """Add ``source`` as ``name``; a name already in the archive is refused, never doubled."""
    if name in written:
        raise ArchiveError(f"cannot archive {source.name!r}: {name!r} is already in the archive")
    written.add(name)
    zf.write(source, name)


def write_dataset_archive(store: ArchivedStore, *, limit_cases: int | None) -> Path:
    """Zip the store's ``final``-labelled cases as MONAI Label 0.8.5 does.

    The zip holds ``image/<id><ext>`` and ``label/<id><ext>`` per case and ``metadata.json``, the
    whole manifest as 0.8.5 dumps its model (compact JSON, every object, no ``base_path``).
    ``limit_cases`` follows 0.8.5: ``None``, ``0``, a negative number or one at least the number
    of cases means every case. Files are taken only from inside the store, or from where an
    image imported with ``--link`` points (its recorded ``source_path``); anything else is
    skipped. A ``.nhdr`` image's detached data file goes beside its header, under the name the
    header gives.

    Args:
        store: The store.
        limit_cases: How many of the cases, in manifest order.

    Returns:
        The zip's path, in :func:`archive_folder`.

    Raises:
        ArchiveError: No case to archive (0.8.5 fails a bare ``assert`` there), or a ``.nhdr``
            image whose data file is unreadable or shares a name with another archived file.
    """
    root = Path(os.path.realpath(store.root))
    cases = _selected(store.get_labeled_images(), limit_cases)
    if not cases:
        raise ArchiveError("nothing to archive: no image has a 'final' label")
    folder = archive_folder()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{store.name() or 'store'}-{compact_utc()}.zip".replace(os.sep, "_")
    try:
        written = _write_cases(store, target, cases, root)
    except BaseException:
        target.unlink(missing_ok=True)  # never a half-written archive
        raise
    if not written:
        target.unlink()
        raise ArchiveError("nothing to archive: no 'final'-labelled case has its files inside")
    return target


def _write_cases(store: ArchivedStore, target: Path, cases: list[str], root: Path) -> int:
    """Write the cases' files and ``metadata.json`` to ``target``; the number of cases written."""
    doc = store.json()
    written = 0
    names: set[str] = set()
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as zf:
        for image_id in cases:
            obj = doc["objects"][image_id]
            try:
                image = Path(store.get_image_uri(image_id))
                label = Path(store.get_label_uri(image_id, "final"))
            except UnsafePathError:  # a file swapped for a link out of the store: skipped
                continue
            linked = obj["image"]["info"].get("source_path")
            if not image.is_file() or not (is_inside(root, image) or linked):
                continue
            if not label.is_file() or not is_inside(root, label):
                continue
            _write_once(zf, image, f"image/{image_id}{obj['image']['ext']}", names)
            for data in _detached_data(image, image_id):  # beside its header, as it names it
                _write_once(zf, data, f"image/{data.name}", names)
            _write_once(zf, label, f"label/{image_id}{obj['labels']['final']['ext']}", names)
            written += 1
        model = LocalDatastoreModel.model_validate(doc)
        zf.writestr("metadata.json", model.model_dump_json(exclude={"base_path"}))
    return written
