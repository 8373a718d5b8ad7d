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
    >>> listing.real == str(folder.resolve()), sorted(listing.plain)  # b.nii: ask the getter
    (True, ['a.nii'])
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, NamedTuple, TypeVar

from .. import nofollow
from ..errors import UnsafePathError

__all__ = [
    "BULK_MIN_IMAGES",
    "ENTRIES",
    "EntryBuilders",
    "EntryReader",
    "EntryT",
    "FolderListing",
    "ImageEntry",
    "LabelEntry",
    "inside",
]

BULK_MIN_IMAGES = 256
"""Below this many images, each path is asked of the getters (listing a big folder costs more)."""


class LabelEntry(NamedTuple):
    """One label of an image, as :meth:`~.catalog.Catalog.image_entries` reads it.

    Attributes:
        tag: The label tag.
        path: Absolute resolved path of the label file (what ``get_label_uri`` answers).
        info: The label's info: the store's own dict, not to be changed (see
            :class:`EntryReader`).
    """

    tag: str
    path: str
    info: Mapping[str, Any]


class ImageEntry(NamedTuple):
    """One image with its labels, as :meth:`~.catalog.Catalog.image_entries` reads it.

    Attributes:
        image_id: The id.
        path: Absolute resolved path of the image (what ``get_image_uri`` answers).
        info: The image's info (what ``get_image_info`` answers, less its ``path``): the
            store's own dict, not to be changed (see :class:`EntryReader`).
        labels: Its labels, sorted by tag.
    """

    image_id: str
    path: str
    info: Mapping[str, Any]
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
                plain = frozenset([e.name for e in entries if not e.is_symlink()])
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
                plain = frozenset([e.name for e in entries if not e.is_symlink()])
        except (UnsafePathError, OSError):
            return cls(os.path.realpath(folder), frozenset())
        return cls(os.path.realpath(folder), plain)


FolderListing.NONE = FolderListing("", frozenset())


def inside(root: Path, real: str) -> bool:
    """Whether the resolved path ``real`` is the resolved ``root`` or lies under it.

    Examples:
        >>> inside(Path("/"), "/tmp")
        True
    """
    base = os.path.realpath(root)
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)


EntryT = TypeVar("EntryT")


@dataclass(frozen=True)
class EntryBuilders(Generic[EntryT]):
    """What :class:`EntryReader` builds for each image and label, called positionally.

    The default (:data:`ENTRIES`) builds :class:`ImageEntry` and :class:`LabelEntry`; a reader
    of 10^6 images that wants its own objects saves a second pass by passing its own builders.

    Attributes:
        image: ``(image_id, path, info, labels) -> entry``, ``labels`` a tuple of ``label``'s.
        label: ``(tag, path, info) -> label entry``.

    Example:
        >>> builders = EntryBuilders(lambda i, p, info, labels: i, lambda t, p, info: t)
        >>> builders.image("a", "/a", {}, ())
        'a'
    """

    image: Callable[[str, str, dict[str, Any], tuple[Any, ...]], EntryT]
    label: Callable[[str, str, dict[str, Any]], Any]


ENTRIES: EntryBuilders[ImageEntry] = EntryBuilders(ImageEntry, LabelEntry)
"""The default builders: :class:`ImageEntry` and :class:`LabelEntry`."""

ImagePath = Callable[[str, dict[str, Any]], str]
"""``(image_id, manifest object) -> resolved path``: the getter's answer, refusals included."""
LabelPath = Callable[[str, str, str], str]
"""``(image_id, tag, ext) -> resolved path``: the getter's answer, refusals included."""


@dataclass
class EntryReader:
    """Entries of many images from manifest objects, each path vouched for by a listing if it can.

    The infos are not copied: an entry holds the state's own info dicts. The store never changes
    an info dict in place (an update puts a new dict in its place), so entries keep showing the
    state they were read from, as long as their holder does not change them either.

    Args:
        images: The images folder's listing (:attr:`FolderListing.NONE`: ask ``image_path``).
        label_folder: The listing of a tag's folder, asked once per tag.
        image_path: The image getter's resolution, for a file no listing vouches for.
        label_path: The label getter's resolution, likewise.

    Example:
        >>> reader = EntryReader(
        ...     FolderListing("/s/images", frozenset({"a.nii"})),
        ...     lambda tag: FolderListing.NONE,
        ...     lambda image_id, obj: "asked",
        ...     lambda image_id, tag, ext: "asked",
        ... )
        >>> label = {"ext": ".nii", "info": {}}
        >>> obj = {"image": {"ext": ".nii", "info": {}}, "labels": {"final": label}}
        >>> (entry,) = reader.entries({"a": obj}.__getitem__, ["a"], ENTRIES)
        >>> entry.path, entry.labels[0].path
        ('/s/images/a.nii', 'asked')
    """

    images: FolderListing
    label_folder: Callable[[str], FolderListing]
    image_path: ImagePath
    label_path: LabelPath
    _tags: dict[str, tuple[str, frozenset[str]]] = field(
        default_factory=dict, init=False, repr=False
    )

    def entries(
        self,
        lookup: Callable[[str], dict[str, Any]],
        image_ids: Iterable[str],
        builders: EntryBuilders[EntryT],
    ) -> list[EntryT]:
        """One entry per id, in order (labels sorted by tag).

        Args:
            lookup: The manifest object of an id (raising for an unknown one).
            image_ids: The ids.
            builders: What to build (:data:`ENTRIES`: :class:`ImageEntry` and
                :class:`LabelEntry`).

        Returns:
            The entries.
        """
        # one pass over up to 10^6 images: every attribute a local, no call per plain file
        folder, plain = self.images.real + os.sep, self.images.plain
        image_path, label_path, tags = self.image_path, self.label_path, self._tags
        image_entry, label_entry = builders.image, builders.label
        out = []
        for image_id in image_ids:
            obj = lookup(image_id)
            image = obj["image"]
            name = image_id + image["ext"]
            path = folder + name if name in plain else image_path(image_id, obj)
            labels = obj["labels"]
            found: tuple[Any, ...] = ()
            if labels:
                built = []
                for tag in sorted(labels) if len(labels) > 1 else labels:
                    label = labels[tag]
                    listed = tags.get(tag) or self._tag(tag)
                    name = image_id + label["ext"]
                    where = (
                        listed[0] + name
                        if name in listed[1]
                        else label_path(image_id, tag, label["ext"])
                    )
                    built.append(label_entry(tag, where, label["info"]))
                found = tuple(built)
            out.append(image_entry(image_id, path, image["info"], found))
        return out

    def _tag(self, tag: str) -> tuple[str, frozenset[str]]:
        listing = self.label_folder(tag)
        self._tags[tag] = (listing.real + os.sep, listing.plain)
        return self._tags[tag]
