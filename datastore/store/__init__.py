"""``LocalDatastore`` and the small objects it delegates to: session, catalog, writers, files.

Every path a store uses comes from :class:`~medstore.datastore.store.layout.StoreLayout`; every
change of the manifest goes through one session (lock, re-read, durable write).
"""

from __future__ import annotations

from .local import DEFAULT_EXTENSIONS, DefaultLabelTag, LocalDatastore

__all__ = ["DEFAULT_EXTENSIONS", "DefaultLabelTag", "LocalDatastore"]
