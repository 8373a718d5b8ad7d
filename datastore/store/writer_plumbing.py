"""What :class:`~medstore.datastore.LocalDatastore` supplies to its writer mixins.

:class:`~medstore.datastore.store.image_writes.MutationsMixin` and
:class:`~.label_writes.LabelMutationsMixin` hold the writers; the store object
provides the manifest document, the folder layout, the staging area, the label history and the
transaction plumbing declared here (for type checking; nothing here runs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from .history import LabelHistory
    from .layout import StoreLayout
    from .staging import StagingArea
    from .transaction import Transaction

__all__ = ["WriterPlumbing"]


class WriterPlumbing:
    """Attributes and helpers of the store that its writer mixins use."""

    _doc: dict[str, Any]
    _layout: StoreLayout
    _staging: StagingArea
    _history: LabelHistory
    _extensions: tuple[str, ...]

    if TYPE_CHECKING:

        def _mutation(self) -> AbstractContextManager[Transaction]: ...
        def _patch(self, txn: Transaction, op: str, **args: Any) -> None: ...
        def _object(self, image_id: str) -> dict[str, Any]: ...
        def _label(self, image_id: str, tag: str) -> dict[str, Any]: ...
