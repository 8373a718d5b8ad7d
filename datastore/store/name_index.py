"""Ids and tags by the name the filesystem sees: collisions found in O(1), not O(N) per name.

On a filesystem that ignores letter case (exFAT, FAT, SMB shares, macOS by default) or Unicode
normalisation (macOS APFS), two ids such as ``Case1`` and ``case1`` name one file. A store on such
a filesystem keeps an index of its ids (and tags) by the key the filesystem compares names by,
so admitting a new name costs one look-up. The index follows the in-memory manifest: it is
rebuilt (O(N), as reading that manifest was) whenever the manifest object is another one or has
another number of images than the index expects, and every hit is confirmed against the manifest.

The same check guards the scans: :func:`drop_colliding` removes from a scan's result the files
whose names collide with a tracked id (a file renamed by the user to another spelling), reports
them, and keeps the tracked id, which still names the file.

Examples:
    >>> from medstore.datastore.store.fs_probe import NameRules
    >>> index = NameIndex(NameRules(folds_case=True))
    >>> objects = {"Case1": {"labels": {}}}
    >>> index.colliding_id("case1", objects)
    'Case1'
    >>> index.colliding_id("case2", objects) is None
    True
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .. import nofollow
from ..errors import InvalidIdError
from .fs_probe import NameRules, probe_names
from .scan import DiskState

__all__ = ["NameGuard", "NameIndex", "drop_colliding"]

logger = logging.getLogger(__name__)


class NameIndex:
    """A store's image ids and label tags by their filesystem key (see the module docstring).

    Args:
        rules: How the store's filesystem compares names.
    """

    def __init__(self, rules: NameRules) -> None:
        self.rules = rules
        self._ids: dict[str, set[str]] = {}
        self._source: Mapping[str, Any] | None = None
        self._size = -1
        self._tags: dict[str, set[str]] = {}
        self._tags_source: Mapping[str, Any] | None = None

    # ------------------------------------------------------------------ image ids
    def _sync_ids(self, objects: Mapping[str, Any]) -> None:
        if objects is self._source and len(objects) == self._size:
            return
        self._ids = {}
        for image_id in objects:
            self._ids.setdefault(self.rules.key(image_id), set()).add(image_id)
        self._source, self._size = objects, len(objects)

    def colliding_id(self, image_id: str, objects: Mapping[str, Any]) -> str | None:
        """The tracked id that names the same file as ``image_id`` here, if any.

        Args:
            image_id: A new id.
            objects: The manifest's ``objects``.

        Returns:
            The other id, or ``None``.
        """
        self._sync_ids(objects)
        for other in sorted(self._ids.get(self.rules.key(image_id), ())):
            if other != image_id and other in objects:
                return other
        return None

    def check_id(self, image_id: str, objects: Mapping[str, Any]) -> None:
        """Refuse a new id this filesystem cannot store apart from a tracked one; admit it.

        An admitted id is expected in ``objects`` next (the write that follows adds it), so
        several new ids of one batch are checked against each other too.

        Args:
            image_id: The new id.
            objects: The manifest's ``objects``.

        Raises:
            InvalidIdError: A character the filesystem refuses, or a collision (both named).
        """
        self.rules.check(image_id, (), kind="image id")
        other = self.colliding_id(image_id, objects)
        if other is not None:
            self.rules.check(image_id, (other,), kind="image id")
        if image_id not in objects:
            self._ids.setdefault(self.rules.key(image_id), set()).add(image_id)
            self._size = len(objects) + 1

    # ------------------------------------------------------------------ tags
    def _known_tags(self, objects: Mapping[str, Any]) -> dict[str, set[str]]:
        if objects is not self._tags_source:
            tags: dict[str, set[str]] = {}
            for obj in objects.values():
                for tag in obj["labels"]:
                    tags.setdefault(self.rules.key(tag), set()).add(tag)
            self._tags, self._tags_source = tags, objects
        return self._tags

    def check_tag(self, tag: str, objects: Mapping[str, Any], labels: Path) -> None:
        """Refuse a tag this filesystem cannot keep apart from an existing one.

        Existing tags are those of the manifest (indexed once per manifest object) and the
        folders of ``labels`` (one listing: tags are few).

        Args:
            tag: The tag being used.
            objects: The manifest's ``objects``.
            labels: The labels folder.

        Raises:
            InvalidIdError: A character the filesystem refuses, or a collision (both named).
        """
        self.rules.check(tag, (), kind="label tag")
        key = self.rules.key(tag)
        same = set(self._known_tags(objects).get(key, ()))
        same.update(name for name in _folders(labels) if self.rules.key(name) == key)
        if tag not in same:
            self.rules.check(tag, sorted(same), kind="label tag")


def _folders(labels: Path) -> Iterable[str]:
    try:
        return os.listdir(labels)
    except OSError:
        return ()


def drop_colliding(
    index: NameIndex, objects: Mapping[str, Any], state: DiskState, *, labels_dir: str = "labels"
) -> None:
    """Leave out of ``state`` the new files whose names collide with tracked ids; report them.

    A tracked id keeps its image (its name still opens the file) and its labels: a label file
    found under the colliding spelling is the tracked label's file.

    Args:
        index: The store's name index.
        objects: The manifest's ``objects``.
        state: What a scan found (changed in place).
        labels_dir: The labels folder's name, for the orphans it reports.
    """
    dropped: dict[str, str] = {}
    for image_id, ext in sorted(state.images.items()):
        if image_id in objects:
            continue
        try:
            index.check_id(image_id, objects)
        except InvalidIdError as err:
            other = index.colliding_id(image_id, objects)
            del state.images[image_id]
            state.skipped.append(image_id + ext)
            logger.warning("not indexing %s: %s", image_id + ext, err)
            if other is not None:
                dropped[image_id] = other
    if not dropped:
        return
    for tag, found in state.labels.items():
        for label_id in [k for k in found if k in dropped]:
            ext = found.pop(label_id)
            tracked = objects[dropped[label_id]]["labels"].get(tag)
            if tracked is not None and tracked["ext"] == ext:
                found.setdefault(dropped[label_id], ext)
            else:
                state.orphans.append(f"{labels_dir}/{tag}/{label_id}{ext}")


class NameGuard:
    """The name rules of one writable store's filesystem, probed once, and the index they need.

    Args:
        side: The store's ``.medstore`` folder (the probe's throw-away files go there).
    """

    def __init__(self, side: Path) -> None:
        self._side = side
        self._rules: NameRules | None = None
        self._index: NameIndex | None = None

    def index(self) -> NameIndex | None:
        """The index by filesystem key; ``None`` where every name is kept apart and allowed.

        A probe that cannot run (the store not writable) is tried again at the next call; the
        write itself reports why the store is not writable.
        """
        if self._rules is None:
            try:
                nofollow.makedirs(self._side)
                self._rules = probe_names(self._side)
            except OSError:
                return None
        if self._rules == NameRules():
            return None
        if self._index is None:  # O(1) per name: ids and tags indexed by their filesystem key
            self._index = NameIndex(self._rules)
        return self._index
