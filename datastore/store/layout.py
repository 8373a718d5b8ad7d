"""Where each file of a store lives on disk, with every name validated first.

Examples:
    >>> layout = StoreLayout(Path("/data/store"), images_dir=".", labels_dir="labels")
    >>> layout.label_path("final", "case_1", ".nii.gz").as_posix()
    '/data/store/labels/final/case_1.nii.gz'
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..ids import resolve_inside, validate_id, validate_tag

__all__ = [
    "DEFAULT_EXTENSIONS",
    "LOCK_NAME",
    "MANIFEST_NAME",
    "SIDE_DIR",
    "DefaultLabelTag",
    "StoreLayout",
]

SIDE_DIR = ".medstore"
MANIFEST_NAME = "datastore_v2.json"
LOCK_NAME = ".lock"
# File-name patterns of images and labels when a store is opened without its own.
DEFAULT_EXTENSIONS: tuple[str, ...] = ("*.nii.gz", "*.nii", "*.nrrd", "*.seg.nrrd", "*.dcm")


class DefaultLabelTag:
    """MONAI Label's reserved tags: the folders ``labels/final`` and ``labels/original``."""

    FINAL = "final"
    ORIGINAL = "original"


@dataclass(frozen=True)
class StoreLayout:
    """Paths of one store.

    Args:
        root: The store folder.
        images_dir: Images folder relative to the root (MONAI Label's ``images_dir``).
        labels_dir: Labels folder relative to the root.
        manifest_name: The manifest's file name (MONAI Label's ``datastore_config``).
    """

    root: Path
    images_dir: str = "."
    labels_dir: str = "labels"
    manifest_name: str = MANIFEST_NAME

    @classmethod
    def at(cls, root: str | os.PathLike[str], manifest_name: str = MANIFEST_NAME) -> StoreLayout:
        """The layout of a store folder before its manifest is read (default folders).

        Args:
            root: The store folder.
            manifest_name: The manifest's file name.

        Returns:
            The layout, with an absolute root.

        Examples:
            >>> StoreLayout.at("/data/store").manifest.as_posix()
            '/data/store/datastore_v2.json'
        """
        return cls(Path(root).absolute(), manifest_name=manifest_name)

    @property
    def manifest(self) -> Path:
        """``<root>/datastore_v2.json`` (or the configured name): MONAI Label's manifest."""
        return self.root / self.manifest_name

    @property
    def images(self) -> Path:
        """The images folder."""
        return self.root / self.images_dir if self.images_dir not in ("", ".") else self.root

    @property
    def labels(self) -> Path:
        """The labels folder (one sub-folder per tag)."""
        return self.root / self.labels_dir

    @property
    def side(self) -> Path:
        """``<root>/.medstore``: medstore's own side files, never read by MONAI Label."""
        return self.root / SIDE_DIR

    @property
    def lock(self) -> Path:
        """``<root>/.lock``, the lock file MONAI Label also takes."""
        return self.root / LOCK_NAME

    @property
    def pending(self) -> Path:
        """``.medstore/pending``: redo records and staged files of saves in progress."""
        return self.side_path("pending")

    @property
    def history_root(self) -> Path:
        """``.medstore/history``: kept label versions, one folder per tag and image."""
        return self.side_path("history")

    @property
    def trash_root(self) -> Path:
        """``.medstore/trash``: removed images, one folder per image id."""
        return self.side_path("trash")

    @property
    def cache(self) -> Path:
        """``.medstore/cache``: the datasets' decoded-volume cache."""
        return self.side_path("cache")

    def corrupt_copy(self, stamp: str) -> Path:
        """Where a corrupt manifest is kept before a rebuild (``.medstore/corrupt/``)."""
        return self.side_path("corrupt", f"{stamp}-{self.manifest_name}")

    def side_path(self, *parts: str) -> Path:
        """A path under ``.medstore/``.

        Args:
            *parts: Path components.

        Returns:
            The path (not created).
        """
        return self.side.joinpath(*parts)

    def image_path(self, image_id: str, ext: str, *, for_write: bool = False) -> Path:
        """The image file (or DICOM series folder) of ``image_id``.

        Args:
            image_id: The id (validated).
            ext: Its extension.
            for_write: Also check that the resolved path stays inside the root (symlinks).

        Raises:
            InvalidIdError: The id is invalid or (``for_write``) the path escapes the root.
        """
        validate_id(image_id)
        if for_write:
            return resolve_inside(self.root, self.images_dir, image_id + ext)
        return self.images / (image_id + ext)

    def tag_dir(self, tag: str, *, for_write: bool = False) -> Path:
        """The folder of one label tag.

        Raises:
            InvalidIdError: The tag is invalid or (``for_write``) its folder escapes the root.
        """
        validate_tag(tag)
        if for_write:
            return resolve_inside(self.root, self.labels_dir, tag)
        return self.labels / tag

    def label_path(self, tag: str, image_id: str, ext: str, *, for_write: bool = False) -> Path:
        """The label file of ``image_id`` under ``tag``.

        Raises:
            InvalidIdError: An invalid id or tag, or (``for_write``) a path escaping the root.
        """
        validate_id(image_id)
        self.tag_dir(tag, for_write=for_write)
        if for_write:
            return resolve_inside(self.root, self.labels_dir, tag, image_id + ext)
        return self.labels / tag / (image_id + ext)

    def history_dir(self, tag: str, image_id: str) -> Path:
        """Where previous versions of one label are kept."""
        validate_id(image_id)
        validate_tag(tag)
        return self.history_root / tag / image_id

    def trash_dir(self, image_id: str) -> Path:
        """Where removed images are kept, restorable."""
        validate_id(image_id)
        return self.trash_root / image_id

    def relative(self, path: Path) -> str:
        """``path`` relative to the root, with forward slashes."""
        return path.relative_to(self.root).as_posix()
