"""Writing a store's cases as files of another layout (Decathlon, nnU-Net), durably, inside OUT.

:func:`export_cases` lists the store's images with their label of one tag and header facts;
:class:`ExportWriter` writes them under an output folder. NIfTI pairs are copied byte for byte
(``.nii`` is gzipped on the way); any other image the store reads (DICOM series, files...) is
written as NIfTI from its canonical array and affine, and then its label too is written from its
canonical array, so image and label always share a voxel grid. Every file goes through
:mod:`..durable` (temp file, fsync, replace) and every destination is checked to stay
inside the output folder, even through symlinked sub-folders.

Examples:
    >>> import tempfile, pathlib
    >>> writer = ExportWriter(pathlib.Path(tempfile.mkdtemp()) / "out")
    >>> writer.write_json("dataset.json", {"numTraining": 0})
    >>> sorted(p.name for p in writer.root.iterdir())
    ['dataset.json']
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nibabel as nib
import numpy as np

from ..durable import atomic_copy, atomic_write_bytes
from ..errors import InvalidIdError
from ..imaging import probe_image, read_image
from ..store.label_info import LabelClasses, parse_label_info
from .case_import import ProblemReport, load_nifti
from .export_options import ExportSelection, select_ids

if TYPE_CHECKING:
    from ..store.local import LocalDatastore

__all__ = ["ExportCase", "ExportWriter", "class_names", "export_cases"]

_NIFTI = (".nii.gz", ".nii")


@dataclass(frozen=True)
class ExportCase:
    """One image of the store to export.

    Attributes:
        image_id: Its id (the case id in the output).
        image_path: Its file or series folder.
        label_path: Its label of the exported tag, or ``None``.
        channels: Number of image channels.
        modality: ``info["modality"]`` or the header's, when known.
        channel_names: ``info["channel_names"]`` when present.
        info: A copy of the image info (``patient_id``...).
        label_info: The label's classes, parsed by
            :func:`~medstore.datastore.store.label_info.parse_label_info` (empty when none or no
            label).
    """

    image_id: str
    image_path: Path
    label_path: Path | None
    channels: int = 1
    modality: str | None = None
    channel_names: tuple[str, ...] = ()
    info: dict[str, Any] = field(default_factory=dict)
    label_info: LabelClasses = field(default_factory=LabelClasses)

    @property
    def is_nifti(self) -> bool:
        """Whether image and label are NIfTI files (copied as they are)."""
        paths = [self.image_path] + ([self.label_path] if self.label_path else [])
        return all(p.name.lower().endswith(_NIFTI) and p.is_file() for p in paths)


def export_cases(
    store: LocalDatastore,
    *,
    label_tag: str = "final",
    selection: ExportSelection | None = None,
) -> list[ExportCase]:
    """The store's images (or those ``selection`` keeps), sorted by id, with their labels.

    Args:
        store: The store.
        label_tag: The tag of the exported labels.
        selection: Which images (default: all).

    Returns:
        The cases.

    Raises:
        ImageNotFoundError: ``selection`` names an id the store does not have.
    """
    cases = []
    for image_id in select_ids(store, selection or ExportSelection()):
        info = store.get_image_info(image_id)
        label_path = None
        label_info = LabelClasses()
        if store.get_label_by_image_id(image_id, label_tag):
            label_path = Path(store.get_label_uri(image_id, label_tag))
            label_info = parse_label_info(store.get_label_info(image_id, label_tag))
        path = Path(info.pop("path"))
        header = probe_image(path)
        channels = int(info.get("channels") or 0) or header.channels
        modality = info.get("modality") or header.modality
        names = info.get("channel_names")
        cases.append(
            ExportCase(
                image_id=image_id,
                image_path=path,
                label_path=label_path,
                channels=channels,
                modality=str(modality) if modality else None,
                channel_names=tuple(str(n) for n in names) if isinstance(names, list) else (),
                info=info,
                label_info=label_info,
            )
        )
    return cases


def class_names(
    store: LocalDatastore, cases: list[ExportCase], *, label_tag: str, source: Path
) -> dict[int, str]:
    """The one class map all exported labels share: ``{idx: name}`` (background excluded).

    Args:
        store: The store (named in messages).
        cases: The cases.
        label_tag: The exported tag.
        source: The output folder (named in messages).

    Returns:
        The class map (empty when no label has ``label_info``).

    Raises:
        UnsupportedFormatError: Two labels give one index two names (all conflicts listed).
    """
    report = ProblemReport(store.root, f"store, to {source}", action="export")
    names: dict[int, str] = {}
    seen: dict[int, str] = {}
    for case in cases:
        for entry in case.label_info.rejected:
            report.add(f"label {label_tag!r} of {case.image_id!r}: bad label_info {entry!r}")
        for idx, name in case.label_info.pairs:
            if idx == 0:
                continue
            if idx in names and names[idx] != name:
                report.add(
                    f"label {label_tag!r} of {case.image_id!r} names class {idx} {name!r}, "
                    f"{seen[idx]!r} names it {names[idx]!r}"
                )
                continue
            names.setdefault(idx, name)
            seen.setdefault(idx, case.image_id)
    report.raise_if_any()
    return names


def _gzipped(path: Path) -> bytes:
    return gzip.compress(path.read_bytes(), compresslevel=6, mtime=0)


def _nifti_bytes(array: np.ndarray, affine: np.ndarray) -> bytes:
    """A gzipped NIfTI-1 of a canonical (C, D, H, W) array (C > 1: channels on axis 4)."""
    data = array[0] if array.shape[0] == 1 else np.moveaxis(array, 0, -1)
    image = nib.Nifti1Image(np.ascontiguousarray(data), affine)
    image.header.set_data_dtype(data.dtype)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    return gzip.compress(image.to_bytes(), compresslevel=6, mtime=0)


class ExportWriter:
    """Writes files under one output folder, durably, never outside it.

    Args:
        root: The output folder (created).
        force: Allow a non-empty folder (same-name files are replaced).

    Raises:
        FileExistsError: ``root`` is not empty and not ``force``.
        NotADirectoryError: ``root`` is a file.
    """

    def __init__(self, root: Path, *, force: bool = False) -> None:
        if root.exists() and not root.is_dir():
            raise NotADirectoryError(f"export folder {root} is a file")
        if root.is_dir() and any(root.iterdir()) and not force:
            raise FileExistsError(f"export folder {root} is not empty (use --force to overwrite)")
        root.mkdir(parents=True, exist_ok=True)
        self.root = root.resolve()

    def path(self, rel: str) -> Path:
        """The destination of ``rel``, its folder created; refused if it leaves the root.

        Raises:
            InvalidIdError: The path escapes the output folder.
        """
        dest = self.root / rel
        if os.path.isabs(rel) or ".." in Path(rel).parts:
            raise InvalidIdError(f"export path {rel!r} leaves the output folder")
        dest.parent.mkdir(parents=True, exist_ok=True)
        parent = dest.parent.resolve()
        if not parent.is_relative_to(self.root) or dest.is_symlink():
            raise InvalidIdError(f"export path {rel!r} resolves outside {self.root}")
        return parent / dest.name

    def write_bytes(self, rel: str, data: bytes) -> str:
        """Durably write ``data`` to ``rel``; returns ``rel``."""
        atomic_write_bytes(self.path(rel), data, point="export")
        return rel

    def write_json(self, rel: str, doc: Any) -> None:
        """Durably write an indented JSON document."""
        self.write_bytes(rel, (json.dumps(doc, indent=4, ensure_ascii=False) + "\n").encode())

    def _copy_nifti(self, src: Path, rel: str) -> str:
        if src.name.lower().endswith(".nii.gz"):
            atomic_copy(src, self.path(rel), point="export")
            return rel
        return self.write_bytes(rel, _gzipped(src))

    def write_image(self, case: ExportCase, rel: str) -> str:
        """Write the case's image as NIfTI at ``rel`` (``.nii.gz``); returns ``rel``."""
        if case.is_nifti:
            return self._copy_nifti(case.image_path, rel)
        data = read_image(case.image_path)
        return self.write_bytes(rel, _nifti_bytes(np.asarray(data.array), data.affine))

    def write_label(self, case: ExportCase, rel: str) -> str:
        """Write the case's label (on its image's grid as written) at ``rel``; returns ``rel``."""
        assert case.label_path is not None
        if case.is_nifti:
            return self._copy_nifti(case.label_path, rel)
        data = read_image(case.label_path)
        return self.write_bytes(rel, _nifti_bytes(np.asarray(data.array), data.affine))

    def write_channels(self, case: ExportCase, rel_prefix: str) -> list[str]:
        """One 3-D NIfTI per channel: ``<rel_prefix>_0000.nii.gz``, ``_0001``...; returns them."""
        rels = [f"{rel_prefix}_{c:04d}.nii.gz" for c in range(case.channels)]
        if case.channels == 1:
            return [self.write_image(case, rels[0])]
        for channel, (array, affine) in zip(rels, _channel_arrays(case), strict=True):
            self.write_bytes(channel, _nifti_bytes(array[np.newaxis], affine))
        return rels


def _channel_arrays(case: ExportCase) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Each channel of a multi-channel image, in the file's own grid when it is NIfTI."""
    if case.is_nifti:
        image = load_nifti(case.image_path)
        data = np.asanyarray(image.dataobj)
        for c in range(data.shape[3]):
            yield np.asarray(data[..., c]), image.affine
        return
    decoded = read_image(case.image_path)
    for c in range(decoded.array.shape[0]):
        yield np.asarray(decoded.array[c]), decoded.affine
