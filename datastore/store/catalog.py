"""MONAI Label's getters over a store session: copies, never references.

Reads use the in-memory manifest, re-read first whenever the file's identity changed on disk
(see :meth:`~medstore.datastore.store.session.StoreSession.reading`).

Examples:
    >>> import tempfile
    >>> from medstore.datastore.store.layout import StoreLayout
    >>> from medstore.datastore.store.history import LabelHistory
    >>> from medstore.datastore.store.session import StoreSession
    >>> session = StoreSession(StoreLayout.at(tempfile.mkdtemp()))
    >>> Catalog(session, LabelHistory(session.layout)).datalist()
    []
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from .. import nofollow
from ..ids import is_inside
from .history import LabelHistory
from .image_listing import (
    BULK_MIN_IMAGES,
    ENTRIES,
    EntryBuilders,
    EntryReader,
    FolderListing,
    inside,
)
from .image_versions import belongs, image_version, version_stamp
from .label_info import parse_label_info
from .layout import DefaultLabelTag
from .manifest import deep_copy, gc_paused
from .session import StoreSession

__all__ = ["FINAL_TAG", "Catalog"]

FINAL_TAG = DefaultLabelTag.FINAL


def _has_classes(obj: dict[str, Any], tag: str, labels: Sequence[str] | None) -> bool:
    label = obj["labels"].get(tag)
    if label is None:
        return False
    if not labels:
        return True
    return set(labels) <= parse_label_info(label["info"]).names()


class Catalog:
    """The reads of :class:`~medstore.datastore.LocalDatastore`.

    Args:
        session: The store's session (document, sync rules).
        history: The store's label history.
    """

    def __init__(self, session: StoreSession, history: LabelHistory) -> None:
        self._session = session
        self._history = history

    def name(self) -> str:
        """The store's name."""
        with self._session.reading():
            return str(self._session.doc["name"])

    def description(self) -> str:
        """The store's description."""
        with self._session.reading():
            return str(self._session.doc["description"])

    def _image_path(self, image_id: str, obj: dict[str, Any]) -> str:
        """The resolved image path; a copied image that resolves out of the store is refused.

        An image added with ``link=True`` (its info records ``source_path``) is read where it
        points, and a link that stays inside the store (as a scan indexes them) is followed; a
        copied image swapped for a link out of the store is never read.
        """
        path = self._session.layout.image_path(image_id, obj["image"]["ext"])
        resolved = os.path.realpath(path)
        linked = obj["image"]["info"].get("source_path")
        if linked or is_inside(self._session.layout.root, resolved):
            return resolved
        raise nofollow.refusal(path)

    def list_images(self) -> list[str]:
        """Ids of every image in the store."""
        with self._session.reading():
            return list(self._session.doc["objects"])

    def has_image(self, image_id: str) -> bool:
        """Whether ``image_id`` is in the store."""
        with self._session.reading():
            return image_id in self._session.doc["objects"]

    def get_image_uri(self, image_id: str) -> str:
        """Absolute, resolved path of an image file (or DICOM series folder).

        Raises:
            ImageNotFoundError: Unknown id.
            UnsafePathError: A copied image swapped for a link out of the store.
        """
        with self._session.reading():
            return self._image_path(image_id, self._session.image_entry(image_id))

    def get_image_info(self, image_id: str) -> dict[str, Any]:
        """A copy of the image's info, plus its ``path``.

        Raises:
            ImageNotFoundError: Unknown id.
        """
        with self._session.reading():
            obj = self._session.image_entry(image_id)
            info = deep_copy(obj["image"]["info"])
            info["path"] = self._image_path(image_id, obj)
            return info

    def get_label_uri(self, label_id: str, label_tag: str) -> str:
        """Absolute, resolved path of a label file.

        Raises:
            LabelNotFoundError: No such label.
            UnsafePathError: The label file (or a folder above it) is a symbolic link.
        """
        with self._session.reading():
            label = self._session.label_entry(label_id, label_tag)
        return self._label_path(label_id, label_tag, label["ext"])

    def _label_path(self, label_id: str, label_tag: str, ext: str) -> str:
        path = self._session.layout.label_path(label_tag, label_id, ext)
        if nofollow.is_link(path):  # a label is never a link: never read where one points
            raise nofollow.refusal(path)
        return os.path.realpath(path)

    def get_label_info(self, label_id: str, label_tag: str) -> dict[str, Any]:
        """A copy of the label's info.

        Raises:
            LabelNotFoundError: No such label.
        """
        with self._session.reading():
            return deep_copy(self._session.label_entry(label_id, label_tag)["info"])

    def get_labels_by_image_id(self, image_id: str) -> dict[str, str]:
        """``{tag: label_id}`` for every label of an image (``{}`` when none).

        Raises:
            ImageNotFoundError: Unknown id.
        """
        with self._session.reading():
            return {tag: image_id for tag in self._session.image_entry(image_id)["labels"]}

    def image_entries(
        self, image_ids: Iterable[str] | None = None, builders: EntryBuilders[Any] = ENTRIES
    ) -> list[Any]:
        """Paths and infos of many images and their labels, read at once.

        Each entry holds what :meth:`get_image_uri`, :meth:`get_image_info`,
        :meth:`get_label_uri` and :meth:`get_label_info` answer, with their refusals, but from
        one look at the manifest and (from :data:`BULK_MIN_IMAGES` images on) one listing per
        folder instead of resolving every file (see :mod:`.image_listing`). Unlike the getters
        it copies no info, and an image's info has no ``path`` (the entry's ``path`` is it):
        the entries hold the state's own info dicts, which their holder must not change (see
        :class:`~.image_listing.EntryReader`).

        Args:
            image_ids: The images, in this order; ``None``: every image, sorted by id.
            builders: What to build for each image and label (default
                :class:`~.image_listing.ImageEntry` and :class:`~.image_listing.LabelEntry`).

        Returns:
            One entry per image.

        Raises:
            ImageNotFoundError: An id is not in the store.
            UnsafePathError: A copied image or a label is a link out of the store.
        """
        with self._session.reading(), gc_paused():
            objects = self._session.doc["objects"]
            ids = sorted(objects) if image_ids is None else list(image_ids)
            layout = self._session.layout
            bulk = len(ids) >= BULK_MIN_IMAGES
            images = FolderListing.of(layout.images) if bulk else FolderListing.NONE
            if not inside(layout.root, images.real):
                images = FolderListing.NONE  # each image asked of the getter (refuses copies)
            reader = EntryReader(
                images,
                lambda tag: (
                    FolderListing.unfollowed(layout.labels / tag) if bulk else FolderListing.NONE
                ),
                self._image_path,
                self._label_path,
            )
            lookup = objects.__getitem__ if image_ids is None else self._session.image_entry
            return reader.entries(lookup, ids, builders)

    def get_labeled_images(
        self, label_tag: str | None = None, labels: Sequence[str] | None = None
    ) -> list[str]:
        """Images with a label under ``label_tag`` (default ``final``) naming all ``labels``."""
        tag = label_tag or FINAL_TAG
        with self._session.reading():
            objects = self._session.doc["objects"]
            return [k for k, v in objects.items() if _has_classes(v, tag, labels)]

    def get_unlabeled_images(
        self, label_tag: str | None = None, labels: Sequence[str] | None = None
    ) -> list[str]:
        """The complement of :meth:`get_labeled_images` over all images."""
        with self._session.reading():
            labeled = set(self.get_labeled_images(label_tag, labels))
            return [k for k in self._session.doc["objects"] if k not in labeled]

    def datalist(
        self, full_path: bool = True, *, label_tag: str | None = None, with_info: bool = False
    ) -> list[dict[str, Any]]:
        """``[{"image", "label"}]`` for labelled images, exactly MONAI Label's entries.

        Args:
            full_path: Absolute resolved paths; ``False`` gives paths relative to the root.
            label_tag: Which tag's labels (default ``final``).
            with_info: Add ``"meta": {"image": info, "label": info}`` (copies) to each entry.
                Off by default: MONAI's ``DataLoader`` collates every key, and info lists of
                different lengths (``label_info``) cannot be batched.

        Returns:
            The list (MONAI's own layout: the files as they are, not medstore's canonical one).
        """
        tag = label_tag or FINAL_TAG
        layout = self._session.layout
        if full_path:
            images = os.path.realpath(layout.images) + os.sep
            labels = os.path.join(os.path.realpath(layout.labels), tag) + os.sep
        else:
            rel = os.path.relpath(layout.images, layout.root)
            images = "" if rel == "." else rel + "/"
            labels = f"{layout.labels_dir}/{tag}/"
        with self._session.reading(), gc_paused():
            entries = self._datalist_entries(tag, images, labels, full_path=full_path)
            if not with_info:
                return entries
            return [dict(entry, meta=deep_copy(meta)) for entry, meta in self._metas(tag, entries)]

    def _metas(
        self, tag: str, entries: list[dict[str, Any]]
    ) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        labelled = (
            (obj["image"]["info"], obj["labels"][tag]["info"])
            for obj in self._session.doc["objects"].values()
            if tag in obj["labels"]
        )
        for entry, (image_info, label_info) in zip(entries, labelled, strict=True):
            yield entry, {"image": image_info, "label": label_info}

    def _datalist_entries(
        self, tag: str, images: str, labels: str, *, full_path: bool
    ) -> list[dict[str, Any]]:
        out = []
        for image_id, obj in self._session.doc["objects"].items():
            label = obj["labels"].get(tag)
            if label is None:
                continue
            image = f"{images}{image_id}{obj['image']['ext']}"
            if full_path and "source_path" in obj["image"]["info"]:
                image = os.path.realpath(image)  # a linked image: where it really is
            out.append({"image": image, "label": f"{labels}{image_id}{label['ext']}"})
        return out

    def status(self) -> dict[str, Any]:
        """``{"total", "completed", "label_tags": {tag: count}}`` as MONAI Label reports it."""
        with self._session.reading():
            return self._session.label_counts().status()

    def json(self) -> dict[str, Any]:
        """A deep copy of the manifest."""
        with self._session.reading():
            return deep_copy(self._session.doc)

    def label_history(
        self, image_id: str, tag: str, earlier_images: bool = False
    ) -> list[dict[str, Any]]:
        """Every version of a label, oldest first; the current one last, with ``current: True``.

        Every entry carries the ``image_version`` it belongs to (``None``: an image without one),
        kept ones their ``path``. Only the current image's are listed unless ``earlier_images``
        (versions kept from earlier images with this id, removed and the id reused).

        Raises:
            ImageNotFoundError: Unknown image.
        """
        with self._session.reading():
            obj = self._session.image_entry(image_id)
            current = image_version(image_id, obj["image"]["info"])
            kept = self._history.records(tag, image_id)
            records = [
                r for r in kept if earlier_images or belongs(r.get("image_version"), current)
            ]
            label = obj["labels"].get(tag)
            if label is not None:
                info = deep_copy(label["info"])
                records.append(
                    {
                        "version": (kept[-1]["version"] + 1) if kept else 1,
                        "image_version": version_stamp(obj["image"]["info"]),
                        "saved_at": info.get("saved_at"),
                        "checksum": info.get("checksum"),
                        "ext": label["ext"],
                        "info": info,
                        "current": True,
                    }
                )
            return records
