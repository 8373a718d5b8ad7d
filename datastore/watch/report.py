"""What changed in a store's index between two looks at it: :class:`RefreshReport`.

:func:`snapshot` takes one look at the manifest, :func:`diff` compares two looks, and
:meth:`RefreshReport.lines` words the result (the lines ``medstore watch`` prints). The watcher
reports each background refresh this way; the foreground runner (``medstore watch``) reports
every change to the index, whoever made it.

Examples:
    >>> before = {"a": Indexed(".nii", frozenset())}
    >>> after = {"a": Indexed(".nii", frozenset({"final"})), "b": Indexed(".nii.gz", frozenset())}
    >>> report = diff(before, after)
    >>> report.added_images, report.added_labels
    (('b',), (('final', 'a'),))
    >>> report.lines()
    ['indexed image b (b.nii.gz)', 'indexed label final/a']
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple

from .watched import WatchedStore

__all__ = ["Indexed", "RefreshReport", "Snapshot", "diff", "log_report", "snapshot"]

logger = logging.getLogger(__package__ + ".watcher")  # records keep the watcher's logger


class Indexed(NamedTuple):
    """One indexed image as a snapshot sees it."""

    ext: str
    """The image file's extension (``""`` for a DICOM series folder)."""
    tags: frozenset[str]
    """The tags of its labels."""


#: ``{image_id: Indexed}``: one look at a store's index.
Snapshot = Mapping[str, Indexed]


def _no_files() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True)
class RefreshReport:
    """What changed in the index (label entries are ``(tag, image_id)``; all sorted).

    ``files`` names the file (or series folder) of each added image; it takes no part in
    comparisons.

    Examples:
        >>> RefreshReport(removed_images=("a",), removed_labels=(("final", "a"),)).lines()
        ['dropped image a', 'dropped label final/a']
        >>> bool(RefreshReport())
        False
    """

    added_images: tuple[str, ...] = ()
    removed_images: tuple[str, ...] = ()
    added_labels: tuple[tuple[str, str], ...] = ()
    removed_labels: tuple[tuple[str, str], ...] = ()
    files: Mapping[str, str] = field(default_factory=_no_files, compare=False)

    def __bool__(self) -> bool:
        return bool(
            self.added_images or self.removed_images or self.added_labels or self.removed_labels
        )

    def lines(self) -> list[str]:
        """One human-readable line per indexed or dropped image or label (ids and tags only).

        Returns:
            Added images, dropped images, added labels, then dropped labels.
        """
        lines = [
            f"indexed image {k} ({self.files[k]})" if k in self.files else f"indexed image {k}"
            for k in self.added_images
        ]
        lines += [f"dropped image {k}" for k in self.removed_images]
        lines += [f"indexed label {t}/{k}" for t, k in self.added_labels]
        lines += [f"dropped label {t}/{k}" for t, k in self.removed_labels]
        return lines


def snapshot(store: WatchedStore) -> dict[str, Indexed]:
    """The store's image ids, each with its file extension and label tags.

    Args:
        store: The store (its manifest is read as it is now).

    Returns:
        ``{image_id: Indexed(ext, tags)}``.

    Examples:
        >>> import tempfile
        >>> from medstore.datastore import LocalDatastore
        >>> snapshot(LocalDatastore(tempfile.mkdtemp()))
        {}
    """
    return {
        k: Indexed(v["image"]["ext"], frozenset(v["labels"]))
        for k, v in store.json()["objects"].items()
    }


def diff(before: Snapshot, after: Snapshot) -> RefreshReport:
    """What changed between two :func:`snapshot` results.

    Args:
        before: The earlier snapshot.
        after: The later one.

    Returns:
        The sorted additions and removals.

    Examples:
        >>> bool(diff({"a": Indexed(".nii", frozenset())}, {"a": Indexed(".nii", frozenset())}))
        False
    """

    def labels(doc: Snapshot) -> set[tuple[str, str]]:
        return {(tag, k) for k, image in doc.items() for tag in image.tags}

    added = tuple(sorted(after.keys() - before.keys()))
    return RefreshReport(
        added_images=added,
        removed_images=tuple(sorted(before.keys() - after.keys())),
        added_labels=tuple(sorted(labels(after) - labels(before))),
        removed_labels=tuple(sorted(labels(before) - labels(after))),
        files=MappingProxyType({k: k + after[k].ext for k in added}),
    )


def log_report(report: RefreshReport) -> None:
    """Log each of the report's :meth:`~RefreshReport.lines` at INFO level.

    Args:
        report: What changed.

    Examples:
        >>> log_report(RefreshReport(added_images=("case1",)))
    """
    for line in report.lines():
        logger.info("%s", line)
