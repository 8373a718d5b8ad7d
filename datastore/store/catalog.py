"""The reading half of ``LocalDatastore``: MONAI Label's getters, copies never references.

Reads use the in-memory manifest, re-read first whenever the file's identity changed on disk.

Examples:
    >>> import tempfile
    >>> from medstore.datastore import LocalDatastore
    >>> LocalDatastore(tempfile.mkdtemp()).datalist()
    []
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from ..errors import ImageNotFoundError, LabelNotFoundError
from ..interop.monailabel_archive import write_dataset_archive
from .manifest import deep_copy, gc_paused

if TYPE_CHECKING:
    from .history import LabelHistory
    from .layout import StoreLayout

__all__ = ["FINAL_TAG", "QueriesMixin"]

FINAL_TAG = "final"
_R = TypeVar("_R")
_P = ParamSpec("_P")


def _consistent_read(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run a getter with the manifest freshly synced and no writer thread mid-change."""

    @functools.wraps(method)
    def read(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        store: Any = args[0]
        with store._mutex:
            store._sync_for_read()
            return method(*args, **kwargs)

    return read


class QueriesMixin:
    """Getters of :class:`~medstore.datastore.LocalDatastore`."""

    _doc: dict[str, Any]
    _layout: StoreLayout
    _history: LabelHistory
    _mutex: threading.RLock

    if TYPE_CHECKING:

        @property
        def root(self) -> Path: ...

        def _sync_for_read(self) -> None: ...

    @_consistent_read
    def name(self) -> str:
        """The store's name."""
        return str(self._doc["name"])

    @_consistent_read
    def description(self) -> str:
        """The store's description."""
        return str(self._doc["description"])

    def _object(self, image_id: str) -> dict[str, Any]:
        """The manifest object of an image (call within a read or a mutation)."""
        obj = self._doc["objects"].get(image_id)
        if obj is None:
            raise ImageNotFoundError(f"image {image_id!r} not found in store {self.root}")
        return obj

    def _label(self, image_id: str, tag: str) -> dict[str, Any]:
        obj = self._doc["objects"].get(image_id)
        label = obj["labels"].get(tag) if obj else None
        if label is None:
            raise LabelNotFoundError(f"label {tag!r} of image {image_id!r} not found")
        return label

    def _image_path(self, image_id: str, obj: dict[str, Any]) -> Path:
        return self._layout.image_path(image_id, obj["image"]["ext"])

    @_consistent_read
    def list_images(self) -> list[str]:
        """Ids of every image in the store."""
        return list(self._doc["objects"])

    @_consistent_read
    def has_image(self, image_id: str) -> bool:
        """Whether ``image_id`` is in the store."""
        return image_id in self._doc["objects"]

    @_consistent_read
    def get_image_uri(self, image_id: str) -> str:
        """Absolute, resolved path of an image file (or DICOM series folder).

        Raises:
            ImageNotFoundError: Unknown id.
        """
        return os.path.realpath(self._image_path(image_id, self._object(image_id)))

    def get_image(self, image_id: str) -> bytes:
        """The image file's bytes (MONAI Label returns a stream; ``io.BytesIO(...)`` of this)."""
        return Path(self.get_image_uri(image_id)).read_bytes()

    @_consistent_read
    def get_image_info(self, image_id: str) -> dict[str, Any]:
        """A copy of the image's info, plus its ``path``.

        Raises:
            ImageNotFoundError: Unknown id.
        """
        obj = self._object(image_id)
        info = deep_copy(obj["image"]["info"])
        info["path"] = os.path.realpath(self._image_path(image_id, obj))
        return info

    @_consistent_read
    def get_label_uri(self, label_id: str, label_tag: str) -> str:
        """Absolute, resolved path of a label file.

        Raises:
            LabelNotFoundError: No such label.
        """
        label = self._label(label_id, label_tag)
        return os.path.realpath(self._layout.label_path(label_tag, label_id, label["ext"]))

    def get_label(self, label_id: str, label_tag: str) -> bytes:
        """The label file's bytes."""
        return Path(self.get_label_uri(label_id, label_tag)).read_bytes()

    @_consistent_read
    def get_label_info(self, label_id: str, label_tag: str) -> dict[str, Any]:
        """A copy of the label's info.

        Raises:
            LabelNotFoundError: No such label.
        """
        return deep_copy(self._label(label_id, label_tag)["info"])

    @_consistent_read
    def get_labels_by_image_id(self, image_id: str) -> dict[str, str]:
        """``{tag: label_id}`` for every label of an image (``{}`` when none).

        Raises:
            ImageNotFoundError: Unknown id.
        """
        return {tag: image_id for tag in self._object(image_id)["labels"]}

    def get_label_by_image_id(self, image_id: str, tag: str) -> str:
        """The label id of ``image_id`` under ``tag``, or ``""`` when it has none."""
        return self.get_labels_by_image_id(image_id).get(tag, "")

    def _has_classes(self, obj: dict[str, Any], tag: str, labels: Sequence[str] | None) -> bool:
        label = obj["labels"].get(tag)
        if label is None:
            return False
        if not labels:
            return True
        names = {c.get("name") for c in label["info"].get("label_info", []) if isinstance(c, dict)}
        return set(labels) <= names

    @_consistent_read
    def get_labeled_images(
        self, label_tag: str | None = None, labels: Sequence[str] | None = None
    ) -> list[str]:
        """Images with a label under ``label_tag`` (default ``final``) naming all ``labels``."""
        tag = label_tag or FINAL_TAG
        return [k for k, v in self._doc["objects"].items() if self._has_classes(v, tag, labels)]

    @_consistent_read
    def get_unlabeled_images(
        self, label_tag: str | None = None, labels: Sequence[str] | None = None
    ) -> list[str]:
        """The complement of :meth:`get_labeled_images` over all images."""
        labeled = set(self.get_labeled_images(label_tag, labels))
        return [k for k in self._doc["objects"] if k not in labeled]

    @_consistent_read
    def datalist(self, full_path: bool = True, *, label_tag: str | None = None) -> list[dict]:
        """``[{"image", "label", "meta"}]`` for labelled images, ready for MONAI's ``LoadImaged``.

        Args:
            full_path: Absolute resolved paths; ``False`` gives paths relative to the root.
            label_tag: Which tag's labels (default ``final``).

        Returns:
            The list (MONAI's own layout: the files as they are, not medstore's canonical one).
        """
        tag = label_tag or FINAL_TAG
        if full_path:
            images = os.path.realpath(self._layout.images) + os.sep
            labels = os.path.join(os.path.realpath(self._layout.labels), tag) + os.sep
        else:
            rel = os.path.relpath(self._layout.images, self.root)
            images = "" if rel == "." else rel + "/"
            labels = f"{self._layout.labels_dir}/{tag}/"
        with gc_paused():
            return deep_copy(self._datalist_entries(tag, images, labels, full_path=full_path))

    def _datalist_entries(
        self, tag: str, images: str, labels: str, *, full_path: bool
    ) -> list[dict[str, Any]]:
        out = []
        for image_id, obj in self._doc["objects"].items():
            label = obj["labels"].get(tag)
            if label is None:
                continue
            image_info = obj["image"]["info"]
            image = f"{images}{image_id}{obj['image']['ext']}"
            if full_path and "source_path" in image_info:
                image = os.path.realpath(image)  # a linked image: where it really is
            out.append(
                {
                    "image": image,
                    "label": f"{labels}{image_id}{label['ext']}",
                    "meta": {"image": image_info, "label": label["info"]},
                }
            )
        return out

    @_consistent_read
    def status(self) -> dict[str, Any]:
        """``{"total", "completed", "label_tags": {tag: count}}`` as MONAI Label reports it."""
        tags: dict[str, int] = {}
        completed = 0
        for obj in self._doc["objects"].values():
            completed += FINAL_TAG in obj["labels"]
            for tag in obj["labels"]:
                tags[tag] = tags.get(tag, 0) + 1
        return {"total": len(self._doc["objects"]), "completed": completed, "label_tags": tags}

    @_consistent_read
    def json(self) -> dict[str, Any]:
        """A deep copy of the manifest."""
        return deep_copy(self._doc)

    @_consistent_read
    def label_history(self, image_id: str, tag: str) -> list[dict[str, Any]]:
        """Every version of a label, oldest first; the current one last, with ``current: True``.

        Raises:
            ImageNotFoundError: Unknown image.
        """
        obj = self._object(image_id)
        records = self._history.records(tag, image_id)
        label = obj["labels"].get(tag)
        if label is not None:
            info = deep_copy(label["info"])
            records.append(
                {
                    "version": (records[-1]["version"] + 1) if records else 1,
                    "saved_at": info.get("saved_at"),
                    "checksum": info.get("checksum"),
                    "ext": label["ext"],
                    "info": info,
                    "current": True,
                }
            )
        return records

    def get_dataset_archive(self, limit_cases: int | None = None) -> str:
        """Zip the ``final``-labelled cases in MONAI Label 0.8.5's layout and return its path.

        The zip goes to ``<tempdir>/medstore-archives/`` (``tempfile.gettempdir()``); the caller
        owns it. Only files inside the store (and images imported with ``--link``) are included.

        Args:
            limit_cases: At most this many cases (all when ``None``).

        Returns:
            The zip file's path.
        """
        return str(write_dataset_archive(self, limit_cases=limit_cases))  # type: ignore[arg-type]

