"""``LocalDatastore``: MONAI Label's local datastore API on crash-safe, multi-process-safe files.

A thin facade: MONAI Label's methods and signatures, each delegating to one small collaborator
that shares the store's :class:`~medstore.datastore.store.session.StoreSession` (lock, manifest
sync, transactions): a :class:`~.catalog.Catalog` for reads, an :class:`~.image_writes.ImageWriter`
and a :class:`~.label_writes.LabelWriter` for changes, a :class:`~.indexer.DiskIndexer` for
``refresh``.

Examples:
    >>> import tempfile
    >>> with LocalDatastore(tempfile.mkdtemp()) as store:
    ...     store.status()["total"]
    0
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

from ..ids import validate_id, validate_tag
from ..interop.monailabel_archive import write_dataset_archive
from .catalog import Catalog
from .history import LabelHistory
from .image_listing import ENTRIES, EntryBuilders, EntryT, ImageEntry
from .image_writes import ImageWriter
from .indexer import DiskIndexer
from .label_writes import LabelWriter
from .layout import DEFAULT_EXTENSIONS, MANIFEST_NAME, DefaultLabelTag, StoreLayout
from .scan import DiskState
from .session import StoreSession
from .source_files import read_regular

if TYPE_CHECKING:
    import numpy as np

    from ..annotations.storage import AnnotationStore
    from ..imaging.seg_nrrd import Segmentation
    from ..watch.watcher import StoreWatcher, WatchOptions

__all__ = ["DEFAULT_EXTENSIONS", "DefaultLabelTag", "LocalDatastore"]


def _tag_or_none(tag: str | None) -> str | None:
    return None if tag is None else validate_tag(tag)


class LocalDatastore:
    """A MONAI Label studies folder, opened for reading and durable writing.

    Args:
        datastore_path: The store folder (created unless ``read_only``).
        images_dir: Images folder relative to the root (a manifest's own value wins).
        labels_dir: Labels folder relative to the root (a manifest's own value wins).
        datastore_config: Manifest file name.
        extensions: File-name patterns of images and labels (MONAI Label's meaning).
        auto_reload: Watch the folders and index files that appear.
        read_only: Never write anything: no lock file, no folders; mutators raise.
        lock_timeout: Seconds to wait for the store lock before ``StoreLockedError``.
        watch: ``"native"`` (inotify/FSEvents) or ``"poll"`` (NFS/SMB) when ``auto_reload``.
        file_mode: Permission bits for new files (e.g. ``0o600`` for patient data); ``None``
            follows the process umask. Replaced files always keep their own mode.
        refresh: Reconcile with the disk on opening (MONAI Label does). ``False`` opens the
            manifest as it is and writes nothing until a mutator is called (what datasets,
            DataLoader workers and torch.distributed ranks use).
        watch_options: Timing of the watcher (debounce, stability window, poll interval...).

    Raises:
        ManifestCorruptError: The manifest cannot be trusted (it is never overwritten).
        StoreLockedError: The lock is held elsewhere past ``lock_timeout``.
        FileNotFoundError: ``read_only`` and the folder does not exist.

    Examples:
        >>> import tempfile
        >>> store = LocalDatastore(tempfile.mkdtemp(), lock_timeout=5.0)
        >>> store.list_images()
        []
    """

    def __init__(
        self,
        datastore_path: str | os.PathLike[str],
        images_dir: str = ".",
        labels_dir: str = "labels",
        datastore_config: str = MANIFEST_NAME,
        extensions: Sequence[str] | str = DEFAULT_EXTENSIONS,
        auto_reload: bool = False,
        read_only: bool = False,
        *,
        lock_timeout: float = 30.0,
        watch: Literal["native", "poll"] = "native",
        file_mode: int | None = None,
        refresh: bool = True,
        watch_options: WatchOptions | None = None,
    ) -> None:
        self._extensions: tuple[str, ...] = (
            (extensions,) if isinstance(extensions, str) else tuple(extensions)
        )
        base = StoreLayout(
            Path(datastore_path).absolute(), images_dir, labels_dir, datastore_config
        )
        if read_only and not base.root.is_dir():
            raise FileNotFoundError(f"store folder {base.root} does not exist")
        self._session = StoreSession(
            base, read_only=read_only, lock_timeout=lock_timeout, file_mode=file_mode
        )
        history = LabelHistory(self._session.layout)
        self._catalog = Catalog(self._session, history)
        self._labels = LabelWriter(self._session, history, self._extensions)
        self._images = ImageWriter(self._session, self._labels, self._extensions)
        self._indexer = DiskIndexer(self._session, self._extensions)
        self._watcher: StoreWatcher | None = None
        self._annotations: AnnotationStore | None = None
        if not read_only and refresh:
            self._indexer.make_folders((DefaultLabelTag.FINAL, DefaultLabelTag.ORIGINAL))
            self.refresh()
        elif not self._session.existed:
            self._indexer.index_in_memory()
        if auto_reload:
            from ..watch.watcher import StoreWatcher

            self._watcher = StoreWatcher(self, mode=watch, options=watch_options)
            self._watcher.start()

    # ------------------------------------------------------------------ the store itself
    @property
    def root(self) -> Path:
        """The store folder."""
        return self._session.layout.root

    @property
    def read_only(self) -> bool:
        """Whether the store was opened read-only."""
        return self._session.read_only

    @property
    def layout(self) -> StoreLayout:
        """Where the store's files live."""
        return self._session.layout

    @property
    def extensions(self) -> tuple[str, ...]:
        """The configured file-name patterns."""
        return self._extensions

    @property
    def annotations(self) -> AnnotationStore:
        """Entity annotations (boxes, lines, skeletons...) of this store's images."""
        from ..annotations.storage import AnnotationStore

        if self._annotations is None:
            self._annotations = AnnotationStore(self)
        return self._annotations

    @property
    def watcher(self) -> StoreWatcher | None:
        """The running watcher of an ``auto_reload`` store (``None`` otherwise or once closed)."""
        return self._watcher

    def side_path(self, *parts: str) -> Path:
        """A path under ``<root>/.medstore/`` (not created)."""
        return self._session.layout.side_path(*parts)

    def check_writable(self) -> None:
        """Raise ``ReadOnlyError`` when the store is read-only."""
        self._session.check_writable()

    def locked(self) -> contextlib.AbstractContextManager[None]:
        """Hold the store lock (MONAI Label's ``.lock`` too), re-entrantly.

        Raises ``ReadOnlyError`` on a read-only store, ``StoreLockedError`` past the timeout.
        """
        return self._session.locked()

    @contextlib.contextmanager
    def batch(self) -> Iterator[LocalDatastore]:
        """Group many changes into one locked transaction and one manifest write.

        An exception inside the block discards every change of the batch.

        Examples:
            >>> import tempfile
            >>> store = LocalDatastore(tempfile.mkdtemp())
            >>> with store.batch():
            ...     store.set_name("a")
            ...     store.set_description("b")
            >>> store.name(), store.description()
            ('a', 'b')
        """
        with self._session.batch():
            yield self

    def close(self) -> None:
        """Stop the watcher (its threads are joined), if any, and fold the journal in.

        The store stays readable (and writable) after it.
        """
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None
        self._session.close()

    def compact(self) -> int:
        """Fold the journal of recent saves into ``datastore_v2.json`` now.

        Large stores keep recent saves in a journal under ``.medstore/journal/`` (each save
        O(1)) and fold them into the manifest MONAI Label reads on ``close()``, after
        ``MEDSTORE_COMPACT_AFTER_S`` seconds (30 by default) or after many saves. medstore
        readers see every save either way; this makes MONAI Label see them now.

        Returns:
            How many journal records were folded in.

        Raises:
            ReadOnlyError: The store is read-only.
            StoreLockedError: The lock is held elsewhere past the timeout.

        Examples:
            >>> import tempfile
            >>> LocalDatastore(tempfile.mkdtemp()).compact()
            0
        """
        return self._session.compact()

    def __enter__(self) -> LocalDatastore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def refresh(self, *, accept: Callable[[Path], bool] | None = None) -> DiskState:
        """Reconcile the manifest with the files on disk; write only if something changed.

        Label files without an image are logged, never deleted; links leaving the root, special
        files and newcomers that would re-point a tracked id are skipped (``skipped`` in the
        returned scan). See :meth:`~.indexer.DiskIndexer.refresh` for ``accept``.
        """
        return self._indexer.refresh(accept=accept)

    def index_in_memory(self) -> None:
        """See the folder's current files now, in memory only (nothing written; read-only safe).

        Kept entries keep their info; new files get fresh entries until a :meth:`refresh`.
        """
        self._indexer.index_in_memory()

    # ------------------------------------------------------------------ reads (Catalog)
    def name(self) -> str:
        """The store's name."""
        return self._catalog.name()

    def description(self) -> str:
        """The store's description."""
        return self._catalog.description()

    def list_images(self) -> list[str]:
        """Ids of every image in the store."""
        return self._catalog.list_images()

    def has_image(self, image_id: str) -> bool:
        """Whether ``image_id`` is in the store."""
        return self._catalog.has_image(validate_id(image_id))

    def get_image_uri(self, image_id: str) -> str:
        """Absolute, resolved path of an image file or series folder; ``ImageNotFoundError``."""
        return self._catalog.get_image_uri(validate_id(image_id))

    def get_image(self, image_id: str, params: Mapping[str, Any] | None = None) -> io.BytesIO:
        """The image file as a stream, as MONAI Label returns it (``params`` is unused)."""
        return io.BytesIO(read_regular(self.get_image_uri(image_id)))  # never a FIFO

    def get_image_info(self, image_id: str) -> dict[str, Any]:
        """A copy of the image's info, plus its ``path``; ``ImageNotFoundError`` if unknown."""
        return self._catalog.get_image_info(validate_id(image_id))

    def get_label_uri(self, label_id: str, label_tag: str) -> str:
        """Absolute, resolved path of a label file; ``LabelNotFoundError`` if there is none."""
        return self._catalog.get_label_uri(validate_id(label_id), validate_tag(label_tag))

    def get_label(
        self, label_id: str, label_tag: str, params: Mapping[str, Any] | None = None
    ) -> io.BytesIO:
        """The label file as a stream, as MONAI Label returns it (``params`` is unused)."""
        return io.BytesIO(read_regular(self.get_label_uri(label_id, label_tag)))

    def get_label_info(self, label_id: str, label_tag: str) -> dict[str, Any]:
        """A copy of the label's info; ``LabelNotFoundError`` if there is no such label."""
        return self._catalog.get_label_info(validate_id(label_id), validate_tag(label_tag))

    def get_labels_by_image_id(self, image_id: str) -> dict[str, str]:
        """``{tag: label_id}`` for every label of an image (``{}`` when none)."""
        return self._catalog.get_labels_by_image_id(validate_id(image_id))

    def get_label_by_image_id(self, image_id: str, tag: str) -> str:
        """The label id of ``image_id`` under ``tag``, or ``""`` when it has none."""
        return self.get_labels_by_image_id(image_id).get(validate_tag(tag), "")

    @overload
    def image_entries(self, image_ids: Iterable[str] | None = None) -> list[ImageEntry]: ...

    @overload
    def image_entries(
        self, image_ids: Iterable[str] | None = None, *, builders: EntryBuilders[EntryT]
    ) -> list[EntryT]: ...

    def image_entries(
        self, image_ids: Iterable[str] | None = None, *, builders: EntryBuilders[Any] = ENTRIES
    ) -> list[Any]:
        """Paths and infos of many images and their labels at once (what datasets index).

        Each entry holds what ``get_image_uri``/``get_image_info``/``get_label_uri``/
        ``get_label_info`` answer, refusals included, but the infos are the store's own dicts
        (read only, not copies; an image's lacks ``path``); ``builders`` builds other objects
        than :class:`ImageEntry` from the same fields. See
        :meth:`~.catalog.Catalog.image_entries`.

        Examples:
            >>> import tempfile
            >>> LocalDatastore(tempfile.mkdtemp()).image_entries()
            []
        """
        ids = None if image_ids is None else [validate_id(i) for i in image_ids]
        return self._catalog.image_entries(ids, builders)

    def get_labeled_images(
        self, label_tag: str | None = None, labels: Sequence[str] | None = None
    ) -> list[str]:
        """Images with a label under ``label_tag`` (default ``final``) naming all ``labels``."""
        return self._catalog.get_labeled_images(_tag_or_none(label_tag), labels)

    def get_unlabeled_images(
        self, label_tag: str | None = None, labels: Sequence[str] | None = None
    ) -> list[str]:
        """The complement of :meth:`get_labeled_images` over all images."""
        return self._catalog.get_unlabeled_images(_tag_or_none(label_tag), labels)

    def datalist(
        self, full_path: bool = True, *, label_tag: str | None = None, with_info: bool = False
    ) -> list[dict[str, Any]]:
        """MONAI Label's ``[{"image", "label"}]``; see :meth:`~.catalog.Catalog.datalist`."""
        return self._catalog.datalist(
            full_path, label_tag=_tag_or_none(label_tag), with_info=with_info
        )

    def status(self) -> dict[str, Any]:
        """``{"total", "completed", "label_tags": {tag: count}}`` as MONAI Label reports it."""
        return self._catalog.status()

    def json(self) -> dict[str, Any]:
        """A deep copy of the manifest."""
        return self._catalog.json()

    def label_history(self, image_id: str, tag: str, *, earlier_images: bool = False) -> list[dict]:
        """A label's versions, oldest first, current last; ``earlier_images``: of reused ids too."""
        return self._catalog.label_history(validate_id(image_id), validate_tag(tag), earlier_images)

    def get_dataset_archive(self, limit_cases: int | None = None) -> str:
        """Zip the ``final``-labelled cases as MONAI Label 0.8.5 does; returns the zip's path.

        See :func:`~medstore.datastore.interop.monailabel_archive.write_dataset_archive`.
        """
        return str(write_dataset_archive(self, limit_cases=limit_cases))

    # ------------------------------------------------------------------ writes (ImageWriter)
    def set_name(self, name: str) -> None:
        """Set the store's name."""
        self._images.set_name(name)

    def set_description(self, description: str) -> None:
        """Set the store's description."""
        self._images.set_description(description)

    def update_image_info(self, image_id: str, info: Mapping[str, Any]) -> None:
        """Merge ``info`` into the image's info (the caller's dict is not kept or mutated)."""
        self._images.update_image_info(validate_id(image_id), info)

    def update_label_info(self, label_id: str, label_tag: str, info: Mapping[str, Any]) -> None:
        """Merge ``info`` into a label's info; ``LabelNotFoundError`` if there is no such label."""
        self._images.update_label_info(validate_id(label_id), validate_tag(label_tag), info)

    def add_tags(self, image_id: str, tags: Iterable[str]) -> list[str]:
        """Add image tags (``info["tags"]``), keeping order and uniqueness; returns them all."""
        return self._images.add_tags(validate_id(image_id), tags)

    def remove_tags(self, image_id: str, tags: Iterable[str]) -> list[str]:
        """Remove image tags; returns the remaining ones."""
        return self._images.remove_tags(validate_id(image_id), tags)

    def add_image(
        self,
        image_id: str,
        image_filename: str | os.PathLike[str],
        image_info: Mapping[str, Any] | None = None,
        *,
        link: bool = False,
    ) -> str:
        """Copy (or with ``link=True`` symlink) an image file or DICOM series folder in.

        See :meth:`~.image_writes.ImageWriter.add_image`; returns the image id.
        """
        return self._images.add_image(image_id, image_filename, image_info, link=link)

    def add_images(
        self,
        sources: Iterable[str | os.PathLike[str] | tuple[str, str | os.PathLike[str]]],
        *,
        info: Mapping[str, Any] | None = None,
        link: bool = False,
        progress: bool = False,
    ) -> list[str]:
        """Add many images (paths or ``(image_id, path)`` pairs) in one transaction.

        ``progress=True`` shows a progress bar on stderr (what ``medstore add`` does on a
        terminal); see :meth:`~.image_writes.ImageWriter.add_images`.
        """
        return self._images.add_images(sources, info=info, link=link, progress=progress)

    def remove_image(self, image_id: str) -> None:
        """Remove an image and its labels; files go to trash and history, restorable."""
        self._images.remove_image(validate_id(image_id))

    def restore_image(self, image_id: str, *, image_version: str | None = None) -> None:
        """Bring back the most recently removed image (or ``image_version``) with its labels."""
        self._images.restore_image(validate_id(image_id), image_version=image_version)

    # ------------------------------------------------------------------ writes (LabelWriter)
    def save_label(
        self,
        image_id: str,
        label_filename: str | os.PathLike[str] | np.ndarray | Segmentation,
        label_tag: str,
        label_info: Mapping[str, Any] | None = None,
        *,
        force: bool = False,
    ) -> str:
        """Save (or replace) the label of ``image_id`` under ``label_tag``; returns the label id.

        See :meth:`~.label_writes.LabelWriter.save_label` (geometry check, history, errors).
        """
        return self._labels.save_label(
            validate_id(image_id),
            label_filename,
            validate_tag(label_tag),
            label_info,
            force=force,
        )

    def remove_label(self, label_id: str, label_tag: str) -> None:
        """Remove a label; its file and info go to the label history (restorable)."""
        self._labels.remove_label(validate_id(label_id), validate_tag(label_tag))

    def restore_label(self, image_id: str, tag: str, version: int) -> None:
        """Make a kept version current again; the replaced one is kept in turn."""
        self._labels.restore_label(validate_id(image_id), validate_tag(tag), version)

    def promote_label(
        self, image_id: str, from_tag: str, to_tag: str = "final", approved_by: str | None = None
    ) -> None:
        """Copy an annotator's label to the reference tag, recording who approved it when."""
        self._labels.promote_label(
            validate_id(image_id), validate_tag(from_tag), validate_tag(to_tag), approved_by
        )
