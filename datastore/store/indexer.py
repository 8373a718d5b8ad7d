"""Index the files on disk: one scan per folder, reconciled with the manifest by set differences.

Examples:
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> (root / "a.nii.gz").write_bytes(b"")
    0
    >>> indexer = DiskIndexer(StoreSession(StoreLayout.at(root)), ("*.nii.gz",))
    >>> indexer.refresh().images
    {'a': '.nii.gz'}
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import nofollow
from .disk_match import match_disk
from .layout import StoreLayout
from .name_index import drop_colliding
from .reconcile import reconcile
from .scan import DiskState, scan_disk
from .session import StoreSession
from .vanished import VanishedImages
from .vanished_labels import VanishedLabels

__all__ = ["DiskIndexer"]

logger = logging.getLogger(__name__)


class DiskIndexer:
    """Bring a store's manifest in line with the image and label files on disk.

    An image (or a label) whose file is gone is dropped from the manifest, but its entry (info,
    labels' info) is kept in the trash and given back if the file comes back.

    Args:
        session: The store's session.
        extensions: File-name patterns of images and labels.
    """

    def __init__(self, session: StoreSession, extensions: tuple[str, ...]) -> None:
        self._session = session
        self._extensions = extensions
        self._vanished = VanishedImages(session)
        self._vanished_labels = VanishedLabels(session)

    def make_folders(self, tags: tuple[str, ...]) -> None:
        """Create the images and labels folders and one folder per tag in ``tags``."""
        layout = self._session.layout
        for folder in (layout.images, layout.labels, *(layout.labels / tag for tag in tags)):
            nofollow.makedirs(folder)  # a link below the root is refused, never followed

    def _scan(self) -> DiskState:
        from .imaging_hooks import series_sniffer

        objects = self._session.doc["objects"]
        tracked_labels: dict[str, dict[str, str]] = {}
        for image_id, obj in objects.items():
            for tag, label in obj["labels"].items():
                tracked_labels.setdefault(tag, {})[image_id] = label["ext"]
        return scan_disk(
            self._session.layout,
            self._extensions,
            linked={k for k, v in objects.items() if v["image"]["info"].get("source_path")},
            is_series=series_sniffer(self._extensions),
            tracked={k: v["image"]["ext"] for k, v in objects.items()},
            tracked_labels=tracked_labels,
        )

    def index_in_memory(self) -> None:
        """Index the disk into the in-memory manifest only (a store opened without a manifest)."""
        reconcile(self._session.doc, self._scan(), [], new_versions=False)

    def refresh(self, *, accept: Callable[[Path], bool] | None = None) -> DiskState:
        """Reconcile the manifest with the disk in one transaction; write only on a change.

        Args:
            accept: Optional test a *new* file must pass to be indexed now (the watcher's
                refreshes); such a refresh also warns about new labels that do not fit their
                image (listed in the result's ``misfits``).

        Returns:
            What the scan found.

        Raises:
            ReadOnlyError: On a read-only store.
        """
        session = self._session
        session.check_writable()
        with session.mutation() as txn:
            if accept is None:  # the disk holds exactly the state's files: nothing to change
                matched = match_disk(session.layout, self._extensions, session.doc)
                if matched is not None:
                    session.clear_stale_manifest_temps(matched.root_extras)
                    return matched.state
            patches: list[dict[str, Any]] = []
            state = self._scan()
            names = session.name_index()
            if names is not None:  # a file renamed to another spelling of a tracked id
                objects = session.doc["objects"]
                drop_colliding(names, objects, state, labels_dir=session.layout.labels_dir)
            if accept is not None:
                state = _filter_new(session.doc["objects"], session.layout, state, accept)
            self._vanished.keep(txn, state)
            self._vanished_labels.keep(txn, state)
            remembered = {**self._vanished.recall(state), **self._vanished_labels.recall(state)}
            reconcile(session.doc, state, patches, remembered=remembered)
            txn.patches.extend(patches)
            if accept is not None:
                _warn_misfits(session.layout, state, patches)
            if state.orphans:
                logger.warning("label files without an image: %s", ", ".join(state.orphans[:20]))
            session.clear_stale_manifest_temps()
        return state


def _warn_misfits(layout: StoreLayout, state: DiskState, patches: list[dict[str, Any]]) -> None:
    """Warn about newly indexed labels that do not fit their image (they stay indexed)."""
    from .imaging_hooks import why_misfit

    for patch in patches:
        if patch["op"] != "set_label":
            continue
        image_id, tag = patch["image_id"], patch["tag"]
        label = layout.label_path(tag, image_id, patch["entry"]["ext"])
        image = layout.image_path(image_id, state.images[image_id])
        reason = why_misfit(label, image)
        if reason is not None:
            shown = layout.relative(label)
            logger.warning("label %s does not fit its image: %s", shown, reason)
            state.misfits.append(shown)


def _filter_new(
    objects: dict[str, Any], layout: StoreLayout, state: DiskState, accept: Callable[[Path], bool]
) -> DiskState:
    """Drop not-yet-indexed files that ``accept`` refuses (e.g. still being copied)."""
    for image_id, ext in list(state.images.items()):
        if image_id not in objects and not accept(layout.image_path(image_id, ext)):
            del state.images[image_id]
    for tag, found in state.labels.items():
        for image_id, ext in list(found.items()):
            known = objects.get(image_id, {}).get("labels", {}).get(tag)
            fresh = known is None or known["ext"] != ext
            if image_id not in state.images or (
                fresh and not accept(layout.label_path(tag, image_id, ext))
            ):
                del found[image_id]
    return state
