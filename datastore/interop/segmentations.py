"""DICOM SEG and RT Structure Sets into and out of a store, onto the image they reference.

:func:`import_segmentation` reads a SEG or an RTSTRUCT (told apart by SOP Class UID), finds the
store's image of the referenced series (by SeriesInstanceUID), rasterises every segment or ROI on
that image's grid and saves one label under a tag, with ``label_info`` from the segment or ROI
names: one ``save_label``, so a failure anywhere leaves the store as it was.
:func:`export_segmentation` writes a label of an image stored as a DICOM series back as a SEG or
an RTSTRUCT referencing that series' slices.

Examples:
    >>> from medstore.datastore.interop.segmentations import ImportResult
    >>> ImportResult("ct", "seg", "SEG", [{"name": "liver", "idx": 1}]).label_info[0]["name"]
    'liver'
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pydicom

from ..durable import atomic_write_bytes
from ..errors import ImageReadError, UnsupportedFormatError
from ..ids import validate_tag
from ..imaging import probe_image, read_image
from ..imaging.dicom_seg import (
    SEG_SOP_CLASS,
    SegmentationImport,
    SegReferences,
    dicom_seg_bytes,
    read_dicom_seg,
    seg_references,
)
from ..imaging.rtstruct import (
    RTSTRUCT_SOP_CLASS,
    read_rtstruct,
    rtstruct_bytes,
    rtstruct_references,
)
from ..imaging.types import ImageHeader
from ..store.label_info import parse_label_info

if TYPE_CHECKING:
    from ..store.local import LocalDatastore

__all__ = ["ImportResult", "export_segmentation", "find_series_image", "import_segmentation"]

_KINDS = {SEG_SOP_CLASS: "SEG", RTSTRUCT_SOP_CLASS: "RTSTRUCT"}


@dataclass(frozen=True)
class ImportResult:
    """What an import saved.

    Attributes:
        image_id: The image the label belongs to.
        tag: Its tag.
        kind: ``"SEG"`` or ``"RTSTRUCT"``.
        label_info: The class names saved with it.
        overlap_voxels: Voxels claimed by several segments (the later one kept).
        notes: Things the user should know.
    """

    image_id: str
    tag: str
    kind: str
    label_info: list[dict[str, Any]]
    overlap_voxels: int = 0
    notes: list[str] = field(default_factory=list)


def _kind_of(path: Path) -> str:
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID"])
    except (pydicom.errors.InvalidDicomError, OSError, ValueError) as err:
        raise ImageReadError(f"{path}: not a DICOM file ({err})") from err
    sop = str(ds.get("SOPClassUID", "") or getattr(ds.file_meta, "MediaStorageSOPClassUID", ""))
    if sop not in _KINDS:
        raise ImageReadError(f"{path}: neither a DICOM SEG nor an RT Structure Set (SOP {sop})")
    return _KINDS[sop]


def find_series_image(
    store: LocalDatastore, refs: SegReferences, *, where: object
) -> tuple[str, ImageHeader]:
    """The store's image whose DICOM SeriesInstanceUID is referenced.

    Args:
        store: The store.
        refs: The referenced UIDs.
        where: The importing file, for messages.

    Returns:
        The image id and its header.

    Raises:
        ImageReadError: No image of the store is of a referenced series (the UIDs are named).
    """
    for image_id in store.list_images():
        name = str(store.get_image_info(image_id).get("name", ""))
        if not (name == image_id or name.lower().endswith((".dcm", ".dicom"))):
            continue  # neither a series folder nor a DICOM file
        try:
            header = probe_image(store.get_image_uri(image_id))
        except (ImageReadError, UnsupportedFormatError, OSError):
            continue
        if header.series_uid in refs.series_uids:
            return image_id, header
    raise ImageReadError(
        f"{where}: the store has no image of the referenced series "
        f"{', '.join(sorted(refs.series_uids))}; add that series first"
    )


def import_segmentation(
    store: LocalDatastore, path: str | os.PathLike[str], *, tag: str = "seg"
) -> ImportResult:
    """Import a DICOM SEG or RTSTRUCT as a label of the image it references.

    Args:
        store: The store (writable).
        path: The SEG or RTSTRUCT file.
        tag: The label tag (validated like any tag).

    Returns:
        What was saved.

    Raises:
        ImageReadError: Not a SEG/RTSTRUCT, a missing referenced series, or content that does
            not fit the image (the store is unchanged).
        InvalidIdError: A bad tag.
    """
    p = Path(path)
    validate_tag(tag)
    kind = _kind_of(p)
    refs = seg_references(p) if kind == "SEG" else rtstruct_references(p)
    image_id, header = find_series_image(store, refs, where=p)
    found: SegmentationImport = (
        read_dicom_seg(p, header) if kind == "SEG" else read_rtstruct(p, header)
    )
    info = {"label_info": found.label_info, "source": f"{kind} {p.name}"}
    store.save_label(image_id, found.label, tag, info)
    return ImportResult(image_id, tag, kind, found.label_info, found.overlap_voxels, found.notes)


def export_segmentation(
    store: LocalDatastore,
    image_id: str,
    tag: str,
    dest: str | os.PathLike[str],
    *,
    kind: Literal["SEG", "RTSTRUCT"] = "SEG",
) -> Path:
    """Write the label ``(image_id, tag)`` as a DICOM SEG or RTSTRUCT referencing the image.

    Args:
        store: The store.
        image_id: An image stored as a DICOM series folder.
        tag: The label's tag.
        dest: The output file.
        kind: ``"SEG"`` or ``"RTSTRUCT"``.

    Returns:
        ``dest`` as a path.

    Raises:
        UnsupportedFormatError: The image is not a DICOM series.
        LabelGeometryError: The label is empty or does not fit.
    """
    image = Path(store.get_image_uri(image_id))
    if not image.is_dir():
        raise UnsupportedFormatError(
            f"image {image_id!r} is not stored as a DICOM series; a {kind} must reference one"
        )
    header = probe_image(image)
    label = read_image(store.get_label_uri(image_id, tag)).array[0]
    names = parse_label_info(store.get_label_info(image_id, tag)).classes()
    writer = dicom_seg_bytes if kind == "SEG" else rtstruct_bytes
    data = writer(label, header, image, names=names)
    atomic_write_bytes(dest, data, point="export")
    return Path(dest)
