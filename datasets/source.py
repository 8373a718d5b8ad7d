"""Where a dataset's images come from: Datamint's ``project``/``resources`` arguments, offline.

Offline, a *project* is a store (a folder or a :class:`~medstore.datastore.LocalDatastore`) and
*resources* are some of its images (ids or :class:`~medstore.datasets.records.ImageRecord`\\ s).
Server-only arguments (``api_key``, ``server_url``) raise :class:`NotImplementedError` naming
the offline alternative.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from medstore.datastore import LocalDatastore

from .records import open_store

__all__ = ["SERVER_ONLY", "dataset_source", "resource_ids"]

SERVER_ONLY = (
    "medstore datasets read a local store: point project= at a store folder or a LocalDatastore"
)
"""What a server-only argument or method says instead of talking to a server."""


def resource_ids(resources: Iterable[Any]) -> list[str]:
    """Image ids of Datamint-style ``resources``: ids, or objects with ``image_id`` or ``id``.

    Args:
        resources: Image ids, :class:`~medstore.datasets.records.ImageRecord`\\ s, or objects
            with an ``id``.

    Returns:
        The ids, in order.

    Raises:
        TypeError: An entry is none of these.

    Example:
        >>> resource_ids(["ct_1", "ct_2"])
        ['ct_1', 'ct_2']
    """
    ids: list[str] = []
    for resource in resources:
        if isinstance(resource, str):
            ids.append(resource)
            continue
        value = getattr(resource, "image_id", None) or getattr(resource, "id", None)
        if not isinstance(value, str):
            raise TypeError(f"a resource must be an image id or record, got {resource!r}")
        ids.append(value)
    return ids


def dataset_source(
    project: Any,
    resources: Iterable[Any] | None,
    *,
    image_ids: Iterable[str] | None,
    auto_update: bool,
    api_key: str | None = None,
    server_url: str | None = None,
) -> tuple[Any, list[str] | None]:
    """The store and image ids a dataset reads, from Datamint's constructor arguments.

    Args:
        project: A store folder or a store object.
        resources: Image ids or records of ``project`` to keep (Datamint's ``resources``).
        image_ids: medstore's name for the same restriction (give one of the two).
        auto_update: For a folder: also see files dropped into it since the manifest was
            last written (indexed in memory, nothing written).
        api_key: Server-only; refused.
        server_url: Server-only; refused.

    Returns:
        ``(store, ids or None for all)``.

    Raises:
        NotImplementedError: ``api_key`` or ``server_url`` given.
        ValueError: No ``project``, or both ``resources`` and ``image_ids``.

    Example:
        >>> dataset_source(None, None, image_ids=None, auto_update=True)
        Traceback (most recent call last):
        ...
        ValueError: give project= (a store folder or LocalDatastore)...
    """
    if api_key is not None or server_url is not None:
        raise NotImplementedError(f"api_key/server_url need a Datamint server; {SERVER_ONLY}")
    if project is None:
        raise ValueError(
            "give project= (a store folder or LocalDatastore); resources= only selects images of it"
        )
    if resources is not None and image_ids is not None:
        raise ValueError("give resources= or image_ids=, not both")
    ids = resource_ids(resources) if resources is not None else image_ids
    store = open_store(project)
    folder = isinstance(project, (str, os.PathLike)) and Path(project).is_dir()
    if auto_update and folder and isinstance(store, LocalDatastore):
        store.index_in_memory()
    return store, None if ids is None else list(ids)
