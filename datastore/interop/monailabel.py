"""A medstore store as the datastore of MONAI Label's server.

MONAI Label's endpoints depend on its datastore's conventions: an unknown id gives ``""`` (a URI),
``{}`` (info, labels) or ``None`` (a stream), which they turn into 404. :class:`MonaiLabelDatastore`
follows them over a :class:`~medstore.datastore.LocalDatastore` (which itself raises
``ImageNotFoundError``/``LabelNotFoundError``), and answers every other medstore error with a
clear HTTP error instead of a 500 (see :mod:`.monailabel_http`: 400 bad id or tag, 404 unknown
id, 503 with ``Retry-After`` while the lock is busy). :func:`init_datastore` is a ready
``init_datastore`` for a ``MONAILabelApp`` subclass::

    from monailabel.interfaces.app import MONAILabelApp
    from medstore.datastore.interop.monailabel import init_datastore

    class MyApp(MONAILabelApp):
        init_datastore = init_datastore  # the studies folder is now a medstore store

Examples:
    >>> import tempfile
    >>> from medstore.datastore import LocalDatastore
    >>> ds = MonaiLabelDatastore(LocalDatastore(tempfile.mkdtemp()))
    >>> ds.get_image_uri("unknown"), ds.get_image_info("unknown"), ds.get_image("unknown")
    ('', {}, None)
    >>> ds.status()
    {'total': 0, 'completed': 0, 'label_tags': {}}
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ArchiveError, ImageNotFoundError, LabelNotFoundError
from ..store.layout import DEFAULT_EXTENSIONS
from ..store.local import LocalDatastore
from .monailabel_http import http_errors

__all__ = ["MonaiLabelDatastore", "ServerOptions", "init_datastore", "server_options"]

# MONAI Label 0.8.5's MONAI_LABEL_DATASTORE_FILE_EXT default: left as is, medstore's own patterns
# apply (its readers do not open .jpg/.svs/.xml as images).
_ML_DEFAULT_FILE_EXT = ("*.nii.gz", "*.nii", "*.nrrd", "*.jpg", "*.png", "*.tif", "*.svs", "*.xml")


@dataclass(frozen=True)
class ServerOptions:
    """How :func:`init_datastore` opens the studies folder.

    Attributes:
        extensions: File-name patterns (medstore's defaults unless the server set its own).
        auto_reload: Watch the folders (``MONAI_LABEL_DATASTORE_AUTO_RELOAD``; reads re-read a
            manifest another process changed either way).
        read_only: ``MONAI_LABEL_DATASTORE_READ_ONLY``.
        lock_timeout: Seconds a request waits for the store lock before a 503.
    """

    extensions: tuple[str, ...] = DEFAULT_EXTENSIONS
    auto_reload: bool = False
    read_only: bool = False
    lock_timeout: float = 10.0


def server_options() -> ServerOptions:
    """The options MONAI Label's server settings ask for (defaults outside a server)."""
    try:
        from monailabel.config import settings
    except ImportError:
        return ServerOptions()
    configured = tuple(settings.MONAI_LABEL_DATASTORE_FILE_EXT or ())
    extensions = DEFAULT_EXTENSIONS if configured in ((), _ML_DEFAULT_FILE_EXT) else configured
    return ServerOptions(
        extensions=extensions,
        auto_reload=bool(settings.MONAI_LABEL_DATASTORE_AUTO_RELOAD),
        read_only=bool(settings.MONAI_LABEL_DATASTORE_READ_ONLY),
    )


def init_datastore(app: Any) -> MonaiLabelDatastore:
    """``MONAILabelApp.init_datastore`` on medstore: ``app.studies`` with the server's options.

    Args:
        app: The ``MONAILabelApp`` (only its ``studies`` folder is used).

    Returns:
        The datastore MONAI Label's server will use.
    """
    options = server_options()
    store = LocalDatastore(
        app.studies,
        extensions=options.extensions,
        auto_reload=options.auto_reload,
        read_only=options.read_only,
        lock_timeout=options.lock_timeout,
    )
    return MonaiLabelDatastore(store)


class MonaiLabelDatastore:
    """MONAI Label 0.8.5's ``Datastore`` interface, with its server's conventions, over a store.

    Args:
        store: The medstore store to serve.
    """

    def __init__(self, store: LocalDatastore) -> None:
        self.store = store

    def close(self) -> None:
        """Stop the store's watcher, if any."""
        self.store.close()

    # ------------------------------------------------------------------ store-wide
    def name(self) -> str:
        """The store's name."""
        with http_errors():
            return self.store.name()

    def set_name(self, name: str) -> None:
        """Set the store's name."""
        with http_errors():
            self.store.set_name(name)

    def description(self) -> str:
        """The store's description."""
        with http_errors():
            return self.store.description()

    def set_description(self, description: str) -> None:
        """Set the store's description."""
        with http_errors():
            self.store.set_description(description)

    def datalist(self, full_path: bool = True) -> list[dict[str, Any]]:
        """``[{"image", "label"}]`` of the ``final``-labelled images."""
        with http_errors():
            return self.store.datalist(full_path)

    def list_images(self) -> list[str]:
        """Every image id."""
        with http_errors():
            return self.store.list_images()

    def get_labeled_images(
        self, label_tag: str | None = None, labels: Sequence[str] | None = None
    ) -> list[str]:
        """Images with a label under ``label_tag`` (``final``) naming all ``labels``."""
        with http_errors():
            return self.store.get_labeled_images(label_tag, labels)

    def get_unlabeled_images(
        self, label_tag: str | None = None, labels: Sequence[str] | None = None
    ) -> list[str]:
        """The other images."""
        with http_errors():
            return self.store.get_unlabeled_images(label_tag, labels)

    def get_dataset_archive(self, limit_cases: int | None) -> str:
        """The zip of the ``final``-labelled cases, or ``""`` when there is none (a 404)."""
        with http_errors():
            try:
                return self.store.get_dataset_archive(limit_cases)
            except ArchiveError:
                return ""

    def refresh(self) -> None:
        """Reconcile the manifest with the files on disk."""
        with http_errors():
            self.store.refresh()

    def status(self) -> dict[str, Any]:
        """``{"total", "completed", "label_tags"}``."""
        with http_errors():
            return self.store.status()

    def json(self) -> dict[str, Any]:
        """The manifest."""
        with http_errors():
            return self.store.json()

    # ------------------------------------------------------------------ reads: "" / {} / None
    def get_image_uri(self, image_id: str) -> str:
        """The image's path, or ``""`` for an unknown id."""
        with http_errors():
            try:
                return self.store.get_image_uri(image_id)
            except ImageNotFoundError:
                return ""

    def get_image(self, image_id: str, params: Any = None) -> io.BytesIO | None:
        """The image file as a stream, or ``None`` for an unknown id."""
        uri = self.get_image_uri(image_id)
        with http_errors():
            return io.BytesIO(_read(uri)) if uri else None

    def get_image_info(self, image_id: str) -> dict[str, Any]:
        """The image's info with its ``path``, or ``{}`` for an unknown id."""
        with http_errors():
            try:
                return self.store.get_image_info(image_id)
            except ImageNotFoundError:
                return {}

    def get_label_uri(self, label_id: str, label_tag: str) -> str:
        """The label's path, or ``""`` when there is no such label."""
        with http_errors():
            try:
                return self.store.get_label_uri(label_id, label_tag)
            except LabelNotFoundError:
                return ""

    def get_label(self, label_id: str, label_tag: str, params: Any = None) -> io.BytesIO | None:
        """The label file as a stream, or ``None`` when there is no such label."""
        uri = self.get_label_uri(label_id, label_tag)
        with http_errors():
            return io.BytesIO(_read(uri)) if uri else None

    def get_label_info(self, label_id: str, label_tag: str) -> dict[str, Any]:
        """The label's info, or ``{}`` when there is no such label."""
        with http_errors():
            try:
                return self.store.get_label_info(label_id, label_tag)
            except LabelNotFoundError:
                return {}

    def get_labels_by_image_id(self, image_id: str) -> dict[str, str]:
        """``{tag: label_id}``, or ``{}`` for an unknown id."""
        with http_errors():
            try:
                return self.store.get_labels_by_image_id(image_id)
            except ImageNotFoundError:
                return {}

    def get_label_by_image_id(self, image_id: str, tag: str) -> str:
        """The label id under ``tag``, or ``""``."""
        return self.get_labels_by_image_id(image_id).get(tag, "")

    # ------------------------------------------------------------------ writes
    def add_image(
        self, image_id: str, image_filename: str, image_info: dict[str, Any] | None = None
    ) -> str:
        """Add an image (id from the file name when ``image_id`` is empty); returns its id."""
        with http_errors():
            return self.store.add_image(image_id, image_filename, image_info)

    def remove_image(self, image_id: str) -> None:
        """Remove an image and its labels (kept in medstore's trash and history)."""
        with http_errors():
            self.store.remove_image(image_id)

    def save_label(
        self,
        image_id: str,
        label_filename: str,
        label_tag: str,
        label_info: dict[str, Any] | None = None,
    ) -> str:
        """Save the label of ``image_id`` under ``label_tag``; returns the label id."""
        with http_errors():
            return self.store.save_label(image_id, label_filename, label_tag, label_info)

    def remove_label(self, label_id: str, label_tag: str) -> None:
        """Remove a label (kept in medstore's label history)."""
        with http_errors():
            self.store.remove_label(label_id, label_tag)

    def update_image_info(self, image_id: str, info: dict[str, Any]) -> None:
        """Merge ``info`` into the image's info."""
        with http_errors():
            self.store.update_image_info(image_id, info)

    def update_label_info(self, label_id: str, label_tag: str, info: dict[str, Any]) -> None:
        """Merge ``info`` into the label's info."""
        with http_errors():
            self.store.update_label_info(label_id, label_tag, info)


def _read(path: str) -> bytes:
    with open(os.fspath(path), "rb") as f:
        return f.read()
