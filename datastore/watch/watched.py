"""What the watcher needs from a store: a few public methods of ``LocalDatastore``, nothing private.

:class:`WatchedStore` names them, so the watcher depends on this small surface rather than on the
store class (which imports the watcher to start it when ``auto_reload=True``).

Examples:
    >>> import tempfile
    >>> from medstore.datastore import LocalDatastore
    >>> isinstance(LocalDatastore(tempfile.mkdtemp()), WatchedStore)
    True
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ..store.layout import StoreLayout

__all__ = ["WatchedStore"]


@runtime_checkable
class WatchedStore(Protocol):
    """The store methods the watcher and the foreground runner call (all public API)."""

    @property
    def root(self) -> Path:
        """The store folder."""
        ...

    @property
    def read_only(self) -> bool:
        """Whether the store was opened read-only (a read-only store is not watched)."""
        ...

    @property
    def layout(self) -> StoreLayout:
        """Where the images, labels and side files live."""
        ...

    @property
    def extensions(self) -> tuple[str, ...]:
        """The file-name patterns of images and labels."""
        ...

    def check_writable(self) -> None:
        """Raise ``ReadOnlyError`` on a read-only store."""
        ...

    def locked(self) -> AbstractContextManager[None]:
        """Hold the store lock (re-entrantly)."""
        ...

    def refresh(self, *, accept: Callable[[Path], bool] | None = None) -> object:
        """Index what changed on disk; a new file is indexed only if ``accept`` allows it."""
        ...

    def get_image_uri(self, image_id: str) -> str:
        """The resolved path of an indexed image."""
        ...

    def get_label_uri(self, label_id: str, label_tag: str) -> str:
        """The resolved path of an indexed label."""
        ...

    def json(self) -> dict[str, Any]:
        """A copy of the manifest (``objects``: image id -> image and labels)."""
        ...
