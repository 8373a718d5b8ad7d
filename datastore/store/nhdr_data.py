"""The detached data file of a ``.nhdr`` image: copied, trashed and restored with its header.

A ``.nhdr`` image is two files: the header (``<id>.nhdr``, the image the manifest names) and the
data file its ``data file`` field names. Adding a copy stages the data file the same way as the
header (temp + fsync + replace, in the same transaction) and puts it beside the header under the
name the header gives, so the stored header reads unchanged; removing the image moves both to the
trash; restoring brings both back. An image added with ``link=True`` reads its data in place.

Examples:
    >>> import tempfile, pathlib, numpy as np, nrrd
    >>> from medstore.datastore import LocalDatastore
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> nrrd.write(str(tmp / "ct.nhdr"), np.ones((2, 3, 4), np.int16), detached_header=True)
    >>> store = LocalDatastore(tmp / "store", extensions=("*.nhdr",))
    >>> store.add_image("", str(tmp / "ct.nhdr"))
    'ct'
    >>> sorted(p.name for p in (tmp / "store").iterdir() if not p.name.startswith("."))
    ['ct.nhdr', 'ct.raw.gz', 'datastore_v2.json', 'labels']
"""

from __future__ import annotations

# The imaging stack is imported only when a .nhdr is met (opening a store stays light).
import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import ImageReadError, InvalidIdError
from ..ids import resolve_inside
from .session import StoreSession
from .transaction import Transaction
from .vanished import RECORD_NAME

__all__ = ["DetachedData"]

_RESERVED = {".lock", ".medstore", RECORD_NAME}
_DATA_FILE_FIELD = re.compile(rb"^data ?file:[^\n]*$", re.MULTILINE | re.IGNORECASE)


def is_detached_header(name: str) -> bool:
    """Whether a file name is a ``.nhdr`` (checked before the imaging stack is imported)."""
    return name.lower().endswith(".nhdr")


class DetachedData:
    """Stages, retires and restores the data files of ``.nhdr`` images.

    Args:
        session: The store's session.
    """

    def __init__(self, session: StoreSession) -> None:
        self._session = session

    def stored_names(self, image_id: str, entry: dict[str, Any]) -> tuple[str, ...]:
        """The data file names of a stored (copied) ``.nhdr`` image; ``()`` for any other.

        An unreadable stored header gives ``()``: its data file, if any, stays where it is.
        """
        ext = entry["ext"]
        if not is_detached_header(ext) or entry["info"].get("source_path"):
            return ()
        path = self._session.layout.image_path(image_id, ext)
        if path.is_symlink():
            return ()
        from ..imaging.nrrd_files import data_file_names

        with contextlib.suppress(ImageReadError):
            return data_file_names(path)
        return ()

    def owner(self, name: str) -> str | None:
        """The id of the stored ``.nhdr`` image whose data file is ``name`` in the images folder.

        Reads the headers of the store's copied ``.nhdr`` images (only asked when a new file
        would land on an untracked name).
        """
        for image_id, obj in self._session.doc["objects"].items():
            if name in self.stored_names(image_id, obj["image"]):
                return str(image_id)
        return None

    def stage(
        self, source: Path, image_id: str, ext: str, *, old: dict[str, Any] | None
    ) -> list[tuple[Path, Path]]:
        """Copy a source header's data file into staging; ``[]`` unless ``source`` is a ``.nhdr``.

        Args:
            source: The header being added.
            image_id: Its id in the store.
            ext: Its extension in the store.
            old: The manifest object of the image it replaces (its data file may be replaced).

        Returns:
            ``(staged, dest)`` pairs, for :meth:`place`.

        Raises:
            ImageReadError: A missing data file, one outside the source's folder, or one in a
                sub-folder of it (add such an image with ``link=True``).
            InvalidIdError: The data file's name is taken in the store by another file.
        """
        if not is_detached_header(source.name):
            return []
        from ..imaging.nrrd_files import data_file_names, data_files

        layout = self._session.layout
        header_name = image_id + ext
        replaced = self.stored_names(image_id, old["image"]) if old else ()
        staged: list[tuple[Path, Path]] = []
        try:
            for name, path in zip(data_file_names(source), data_files(source), strict=True):
                if "/" in name or "\\" in name:
                    raise ImageReadError(
                        f"{source}: detached data file {name!r} lies in a sub-folder; move it "
                        "beside the header, or add the image with link=True (--link)"
                    )
                dest = resolve_inside(layout.root, layout.images_dir, name)
                taken = name in _RESERVED or name in (layout.manifest_name, header_name)
                taken = taken or (os.path.lexists(dest) and name not in replaced)
                if taken or dest in (layout.labels, layout.side):
                    raise InvalidIdError(
                        f"{source.name}'s detached data file {name!r} would be stored at "
                        f"{name}, which is already taken in the store; rename the data file"
                    )
                suffix = "".join(Path(name).suffixes)
                staged.append((self._session.staging.copy_file(path, suffix)[0], dest))
        except BaseException:
            self.discard(staged)
            raise
        return staged

    @contextlib.contextmanager
    def readable(self, txn: Transaction, image_path: Path) -> Iterator[Path]:
        """A path from which an image of this transaction reads as it will once committed.

        A ``.nhdr`` added in the same transaction (a batch) is staged under a temporary name and
        its data file under another, so the staged header names a file that is not beside it
        yet. Then a throw-away copy of the header, naming the staged data file, is made in the
        staging folder for the duration (deleted after). Any other image: its current path.

        Args:
            txn: The open transaction.
            image_path: The image's path in the store.
        """
        source = txn.source_of(image_path)
        if source == image_path or not is_detached_header(image_path.name):
            yield source
            return
        from ..imaging.nrrd_files import data_file_names

        header = source.read_bytes()
        for name in data_file_names(source):
            dest = resolve_inside(self._session.layout.root, self._session.layout.images_dir, name)
            staged = txn.source_of(dest)
            if staged != dest:  # point the copy at the staged data file, in the same folder
                # A staged name is "staged-<hex><suffix>" (no backslash): a literal replacement.
                header = _DATA_FILE_FIELD.sub(b"data file: " + staged.name.encode(), header)
        view = self._session.staging.write_bytes(header, ".nhdr")
        try:
            yield view
        finally:
            self._session.staging.discard(view)

    def discard(self, staged: list[tuple[Path, Path]]) -> None:
        """Delete staged data files that will not be used."""
        for path, _ in staged:
            self._session.staging.discard(path)

    def place(self, txn: Transaction, staged: list[tuple[Path, Path]]) -> None:
        """Add the steps putting staged data files at their destinations.

        Raises:
            InvalidIdError: Another image of the same transaction stores a data file of that
                name (two headers naming one ``data.raw``); the staged files are deleted.
        """
        for _, dest in staged:
            if dest in txn.sources:
                self.discard(staged)
                raise InvalidIdError(
                    f"two images added together both have a detached data file named "
                    f"{dest.name!r}; rename one (and the 'data file' field of its header)"
                )
        for path, dest in staged:
            txn.replace(path, dest, None, self._session.layout.root)

    def retire(self, txn: Transaction, image_id: str, entry: dict[str, Any], folder: Path) -> None:
        """Add the steps moving a stored ``.nhdr`` image's data file into its trash folder."""
        layout = self._session.layout
        for name in self.stored_names(image_id, entry):
            path = layout.images / name
            if os.path.lexists(path):
                txn.retire(path, folder / Path(name).name, layout.root)

    def restore(self, txn: Transaction, trashed_header: Path) -> None:
        """Add the steps bringing back the data file kept beside a trashed header."""
        if not is_detached_header(trashed_header.name):
            return
        from ..imaging.nrrd_files import data_file_names

        layout = self._session.layout
        with contextlib.suppress(ImageReadError):
            for name in data_file_names(trashed_header):
                kept = trashed_header.parent / Path(name).name
                if kept.is_file():
                    suffix = "".join(Path(name).suffixes)
                    staged = self._session.staging.copy_file(kept, suffix)[0]
                    dest = resolve_inside(layout.root, layout.images_dir, name)
                    txn.replace(staged, dest, None, layout.root)
