"""Image versions: which addition of an id an image is, so data never moves to a new image.

Every image that enters the store (``add_image``, ``add_images``, an import, a refresh or the
watcher indexing a new file) gets a new version id, kept in its info under :data:`VERSION_KEY`.
Annotations, kept label versions and split assignments record the version they were made for;
data of another version is never shown on, or attached to, the current image of that id (it stays
with the old image, which ``restore_image`` can bring back).

An image indexed before versions existed (or by a tool that does not know them, such as MONAI
Label) has no key. Its version is derived from its id and its ``ts`` (the time it was added), the
same every time, so nothing has to be written to know it; data recorded for such an image carries
no version (:func:`version_stamp` is ``None``), like everything recorded before versions existed,
and belongs to it.

Examples:
    >>> info = {"ts": 1700000000, VERSION_KEY: "3f2a"}
    >>> image_version("case", info)
    '3f2a'
    >>> old = image_version("case", {"ts": 1700000000})
    >>> old.startswith(LEGACY_PREFIX), old == image_version("case", {"ts": 1700000000})
    (True, True)
    >>> version_stamp(info), version_stamp({"ts": 1700000000})
    ('3f2a', None)
    >>> belongs("3f2a", "3f2a"), belongs(None, old), belongs(None, "3f2a")
    (True, True, False)
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from typing import Any

__all__ = [
    "LEGACY_PREFIX",
    "VERSION_KEY",
    "belongs",
    "image_version",
    "new_version",
    "version_stamp",
    "versions_in",
]

VERSION_KEY = "medstore.image_version"
"""The image info key holding the version id (MONAI Label keeps unknown info keys)."""
LEGACY_PREFIX = "legacy-"
"""How the derived version of an image indexed before versions existed starts."""


def new_version() -> str:
    """A new, unique image version id (32 hex digits).

    Example:
        >>> len(new_version()), new_version() != new_version()
        (32, True)
    """
    return uuid.uuid4().hex


def version_stamp(info: Mapping[str, Any]) -> str | None:
    """The version to record with data made for the image whose info is ``info``.

    Args:
        info: The image's info.

    Returns:
        Its version id, or ``None`` for an image without one (see the module docstring).
    """
    recorded = info.get(VERSION_KEY)
    return recorded if isinstance(recorded, str) and recorded else None


def image_version(image_id: str, info: Mapping[str, Any]) -> str:
    """The version id of the image ``image_id`` whose info is ``info``.

    Args:
        image_id: The image id.
        info: Its info (from the manifest or ``get_image_info``).

    Returns:
        The recorded version, or for an image without one a version derived from its id and
        ``ts`` (prefixed :data:`LEGACY_PREFIX`).

    Example:
        >>> image_version("a", {"ts": 1}) != image_version("a", {"ts": 2})
        True
    """
    recorded = version_stamp(info)
    if recorded is not None:
        return recorded
    seed = f"{image_id}\x00{info.get('ts')}".encode("utf-8", "surrogatepass")
    return LEGACY_PREFIX + hashlib.sha256(seed).hexdigest()[:16]


def belongs(recorded: object, current: str) -> bool:
    """Whether data recorded for image version ``recorded`` belongs to the image at ``current``.

    Args:
        recorded: The version the data recorded (``None``: written before versions existed).
        current: The current image's version (:func:`image_version`).

    Returns:
        True for the same version, or unversioned data and an image indexed before versions.

    Example:
        >>> belongs("a", "b")
        False
    """
    if recorded is None:
        return current.startswith(LEGACY_PREFIX)
    return recorded == current


def versions_in(manifest: Mapping[str, Any]) -> dict[str, str]:
    """``{image_id: version}`` of every image of a manifest (e.g. ``store.json()``).

    Args:
        manifest: The manifest document.

    Returns:
        Each image's :func:`image_version`.

    Example:
        >>> versions_in({"objects": {"a": {"image": {"info": {VERSION_KEY: "v1"}}}}})
        {'a': 'v1'}
    """
    objects = manifest.get("objects", {})
    return {key: image_version(key, obj["image"].get("info", {})) for key, obj in objects.items()}
