"""Write a segmentation entity as a label file in MONAI Label's layout, with its ``label_info``.

Examples:
    >>> import tempfile, numpy as np, nibabel as nib
    >>> from pathlib import Path
    >>> from medstore.datastore import LocalDatastore
    >>> folder = Path(tempfile.mkdtemp())
    >>> nib.save(nib.Nifti1Image(np.zeros((2, 3, 4), np.int16), np.eye(4)), folder / "case_1.nii")
    >>> store = LocalDatastore(folder)
    >>> seg = VolumeSegmentation.from_semantic_segmentation(
    ...     np.zeros((2, 3, 4), np.uint8), {"liver": 1}, created_by="reader-a")
    >>> save_segmentation_label(store, "case_1", seg, affine=np.eye(4))
    'reader-a'
    >>> store.get_label_info("case_1", "reader-a")["label_info"]
    [{'name': 'liver', 'idx': 1}]
"""

from __future__ import annotations

import contextlib
import importlib
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from .. import nofollow
from ..crashpoints import crashpoint
from ..errors import AnnotationError, LabelGeometryError
from ..ids import validate_tag
from .geometry import as_affine
from .segmentation import VolumeSegmentation

__all__ = ["image_affine", "save_segmentation_label"]

_IMAGING = "medstore.datastore.imaging"  # imported lazily: the imaging package is heavy
_MAP_PREFIX = "label-map-"
# A map lives as long as one save_label (lock wait included): one this old was left by a process
# killed before it removed its map.
_LEFTOVER_AGE_S = 3600.0


def _clear_leftovers(folder: Path) -> None:
    """Delete label maps of earlier saves killed before removing them (older than an hour)."""
    now = time.time()
    for name in nofollow.listdir(folder):
        if not name.endswith(".nii.gz") or not name.startswith((_MAP_PREFIX, "tmp")):
            continue
        with contextlib.suppress(OSError):
            if now - nofollow.lstat(folder / name).st_mtime > _LEFTOVER_AGE_S:
                nofollow.unlink(folder / name, missing_ok=True)


class _LabelStore(Protocol):
    def side_path(self, *parts: str) -> Path: ...

    def check_writable(self) -> None: ...

    def get_image_info(self, image_id: str) -> dict[str, Any]: ...

    def save_label(
        self, image_id: str, label_filename: str, label_tag: str, label_info: dict[str, Any]
    ) -> Any: ...


def image_affine(store: Any, image_id: str) -> npt.NDArray[np.float64]:
    """The canonical-array affine of an image: from its info, else by reading its header.

    Args:
        store: The store.
        image_id: The image.

    Returns:
        The 4x4 affine (RAS+ mm of the ``(D, H, W)`` array).

    Raises:
        AnnotationError: The affine cannot be found.
    """
    info = store.get_image_info(image_id)
    if info.get("affine") is not None:
        return as_affine(info["affine"])
    try:
        imaging: Any = importlib.import_module(_IMAGING)
        return as_affine(imaging.read_image(store.get_image_uri(image_id)).affine)
    except (ImportError, AttributeError) as err:
        raise AnnotationError(
            f"cannot find the affine of image {image_id!r}; pass affine="
        ) from err


def save_segmentation_label(
    store: _LabelStore,
    image_id: str,
    seg: VolumeSegmentation,
    *,
    tag: str | None = None,
    affine: npt.ArrayLike | None = None,
) -> str:
    """Save ``seg``'s label map as ``labels/<tag>/<image_id>.nii.gz`` through ``store.save_label``.

    The NIfTI holds the canonical ``(D, H, W)`` array with its affine, so any reader maps it to
    the same anatomy; ``label_info`` is MONAI Label's ``[{"name", "idx"}]`` list.

    Args:
        store: The store.
        image_id: The image.
        seg: A segmentation built with :meth:`VolumeSegmentation.from_semantic_segmentation`.
        tag: Label tag; default ``seg.created_by`` or ``"final"``.
        affine: Affine of the array; default the image's.

    Returns:
        The tag written.

    Raises:
        AnnotationError: ``seg`` carries no array, or no affine is known.
        LabelGeometryError: The array's shape differs from the image's recorded shape.
    """
    import nibabel as nib

    store.check_writable()
    array = seg.array
    if array is None:
        raise AnnotationError("this segmentation holds no label map (loaded from JSON?)")
    label_tag = validate_tag(tag or seg.created_by or "final")
    shape = store.get_image_info(image_id).get("shape")
    if isinstance(shape, list | tuple) and len(shape) == array.ndim and tuple(shape) != array.shape:
        raise LabelGeometryError(
            f"label map shape {array.shape} differs from image shape {tuple(shape)}"
        )
    matrix = as_affine(affine) if affine is not None else image_affine(store, image_id)
    data = array.astype(np.uint8 if array.max(initial=0) < 256 else np.uint16)
    folder = store.side_path("tmp")
    nofollow.makedirs(folder)  # .medstore/tmp planted as a link is refused, never written
    _clear_leftovers(folder)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=_MAP_PREFIX, suffix=".nii.gz")
    os.close(fd)
    try:
        nib.save(nib.Nifti1Image(data, matrix), tmp)
        crashpoint("annotations.label_map")
        info = {"label_info": seg.label_info(), "annotation_id": seg.id}
        store.save_label(image_id, tmp, label_tag, info)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return label_tag
