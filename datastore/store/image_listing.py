"""Many images' paths and infos read at once, each folder listed once instead of each file resolved.

A store's getters resolve every path they hand out (``os.path.realpath``: one ``lstat`` per path
component) and refuse a copied image or a label swapped for a link out of the store. Indexing
10^5 to 10^6 images through them costs several system calls per file. Here each folder is resolved
once and listed once (``os.scandir``: whether an entry is a link comes with the listing); a file
that is a plain entry of its resolved folder resolves to ``<resolved folder>/<name>``, which is
what the getter would answer. Every other file (a link, a missing file, a folder the listing could
not vouch for) is left to the getter itself, so its refusals (``UnsafePathError``) are unchanged.

Examples:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> (folder / "a.nii").write_bytes(b"")
    0
    >>> (folder / "b.nii").symlink_to(folder / "a.nii")
    >>> listing = FolderListing.of(folder)
    >>> listing.resolved("a.nii") == str(folder.resolve() / "a.nii"), listing.resolved("b.nii")
    (True, None)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

from .. import nofollow
from ..errors import UnsafePathError

__all__ = ["BULK_MIN_IMAGES", "FolderListing", "ImageEntry", "LabelEntry", "inside"]

BULK_MIN_IMAGES = 256
"""Below this many images, each path is asked of the getters (listing a big folder costs more)."""


class LabelEntry(NamedTuple):
    """One label of an image, as :meth:`~.catalog.Catalog.image_entries` reads it.

    Attributes:
        tag: The label tag.
        path: Absolute resolved path of the label file (what ``get_label_uri`` answers).
        info: A copy of the label's info.
    """

    tag: str
    path: str
    info: dict[str, Any]


class ImageEntry(NamedTuple):
    """One image with its labels, as :meth:`~.catalog.Catalog.image_entries` reads it.

    Attributes:
        image_id: The id.
        path: Absolute resolved path of the image (what ``get_image_uri`` answers).
        info: A copy of the image's info plus ``path`` (what ``get_image_info`` answers).
        labels: Its labels, sorted by tag.
    """

    image_id: str
    path: str
    info: dict[str, Any]
    labels: tuple[LabelEntry, ...]


@dataclass(frozen=True)
class FolderListing:
    """The plain (non-link) entries of one folder, and where the folder resolves to.

    Attributes:
        real: The folder's resolved path.
        plain: Names of its entries that are not symbolic links.
    """

    real: str
    plain: frozenset[str]

    NONE: ClassVar[FolderListing]
    """A listing that vouches for nothing (every path is asked of the getter)."""

    @classmethod
    def of(cls, folder: str | os.PathLike[str]) -> FolderListing:
        """List ``folder`` (following it, as ``realpath`` would); empty when it is not there.

        Args:
            folder: The folder.

        Returns:
            Its listing.
        """
        real = os.path.realpath(folder)
        try:
            with os.scandir(real) as entries:
                plain = frozenset(e.name for e in entries if not e.is_symlink())
        except (FileNotFoundError, NotADirectoryError):
            plain = frozenset()
        return cls(real, plain)

    @classmethod
    def unfollowed(cls, folder: str | os.PathLike[str]) -> FolderListing:
        """List ``folder`` walked from its store root without following any link below it.

        A folder that cannot be walked that way (a link on the way, missing) lists nothing: its
        files are then left to the getter, which refuses or answers each as it always did.

        Args:
            folder: The folder.

        Returns:
            Its listing.
        """
        try:
            with (
                nofollow.folder(folder) as held,
                os.scandir(held.fd if held.fd is not None else held.path) as entries,
            ):
                plain = frozenset(e.name for e in entries if not e.is_symlink())
        except (UnsafePathError, OSError):
            return cls(os.path.realpath(folder), frozenset())
        return cls(os.path.realpath(folder), plain)

    def resolved(self, name: str) -> str | None:
        """``<resolved folder>/<name>`` for a plain entry; ``None``: ask the getter.

        Args:
            name: An entry name (no separator).

        Returns:
            The resolved path, or ``None``.
        """
        return f"{self.real}{os.sep}{name}" if name in self.plain else None


FolderListing.NONE = FolderListing("", frozenset())


def inside(root: Path, real: str) -> bool:
    """Whether the resolved path ``real`` is the resolved ``root`` or lies under it.

    Examples:
        >>> inside(Path("/"), "/tmp")
        True
    """
    base = os.path.realpath(root)
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)
