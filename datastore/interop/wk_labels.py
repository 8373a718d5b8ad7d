"""A WEBKNOSSOS volume layer becomes a store label, and a store label a volume layer.

A volume layer's voxels are the image file's own voxels (its dataset was made from the file),
so they are reoriented to medstore's canonical layout (flips and transposes only) and saved as a
label in MONAI Label's layout, with the layer's segment names as ``label_info``. The other way,
a label is brought back to the file's voxel order and written as a zarr3 volume layer.

Examples:
    >>> import tempfile, numpy as np, nibabel as nib
    >>> from pathlib import Path
    >>> from medstore.datastore import LocalDatastore
    >>> from medstore.datastore.annotations import SkeletonAnnotation
    >>> folder = Path(tempfile.mkdtemp())
    >>> affine = np.diag([-1.0, 1.0, 2.0, 1.0])                        # an LAS file
    >>> nib.save(nib.Nifti1Image(np.zeros((4, 5, 6), np.int16), affine), folder / "ct.nii")
    >>> store = LocalDatastore(folder)
    >>> labels = np.zeros((4, 5, 6), np.uint8); labels[1, 2, 3] = 2    # file voxels
    >>> zip_path = folder / "wk.zip"
    >>> _ = zip_path.write_bytes(label_zip_bytes_from_array(labels, store, "ct"))
    >>> ann_id = volume_layer_to_label(store, "ct", zip_path, label_tag="wk")
    >>> again = read_volume_layer(label_to_volume_zip(store, "ct", "wk", folder / "b.zip"))
    >>> bool((again == labels).all())
    True
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..annotations.grid import ImageGrid
from ..annotations.segmentation import VolumeSegmentation
from ..annotations.skeleton import SegmentInfo, SkeletonAnnotation
from ..durable import atomic_write_bytes
from ..errors import AnnotationError
from ..imaging.orientation import from_canonical, to_canonical
from ..imaging.registry import read_image
from .nml import load_nml
from .wk_coords import voxel_size_of
from .wk_volume import annotation_zip_bytes, read_volume_layer

__all__ = [
    "label_to_volume_zip",
    "label_zip_bytes_from_array",
    "read_volume_layer",
    "volume_layer_to_label",
]


def _fit(data: npt.NDArray[Any], shape: tuple[int, int, int], what: str) -> npt.NDArray[Any]:
    """``data`` cut or padded (zeros) to the image's file shape; labels outside it refused."""
    out = np.zeros(shape, dtype=data.dtype)
    common = tuple(slice(0, min(a, b)) for a, b in zip(data.shape, shape, strict=True))
    out[common] = data[common]
    if int(np.count_nonzero(data)) != int(np.count_nonzero(out)):
        raise AnnotationError(f"{what}: labelled voxels lie outside the image {shape}")
    return out


def volume_layer_to_label(
    store: Any,
    image_id: str,
    zip_path: str | os.PathLike[str],
    volume_layer_name: str | None = None,
    *,
    volume_layer_id: int | None = None,
    label_tag: str | None = None,
) -> str:
    """Save a volume layer of a WEBKNOSSOS zip as the image's label (and its annotation).

    Args:
        store: The ``LocalDatastore``.
        image_id: The image the annotation was made on.
        zip_path: The WEBKNOSSOS annotation zip.
        volume_layer_name: The layer (or ``volume_layer_id``; neither: the only one).
        volume_layer_id: The layer's id.
        label_tag: The label's tag (default: the annotation's owner, else ``"final"``).

    Returns:
        The id of the stored :class:`VolumeSegmentation`.

    Raises:
        AnnotationError: No such layer, bad data, or voxels outside the image.
    """
    path = Path(zip_path)
    sk = load_nml(path)
    layer = sk.get_volume_layer(volume_layer_name, volume_layer_id)
    grid = ImageGrid.of_image(store, image_id)
    native = _fit(read_volume_layer(path, layer.name, layer.id), grid.native_shape, "volume")
    canonical, _, _ = to_canonical(native, grid.native_affine)
    names = {s.id: s.name or f"segment {s.id}" for s in layer.segments}
    present = {int(v) for v in np.unique(canonical) if v}
    class_map = {names.get(i, f"segment {i}"): i for i in sorted(present | set(names))}
    seg = VolumeSegmentation.from_semantic_segmentation(
        np.ascontiguousarray(canonical), class_map, identifier=layer.name or "segmentation",
        created_by=label_tag or sk.owner_name or "final",
    )  # fmt: skip
    return str(store.annotations.add(image_id, seg))


def label_zip_bytes_from_array(
    native: npt.ArrayLike, store: Any, image_id: str, *, layer_name: str = "segmentation"
) -> bytes:
    """A WEBKNOSSOS zip holding ``native`` (file voxel order) as a volume layer of the image."""
    grid = ImageGrid.of_image(store, image_id)
    sk = SkeletonAnnotation(identifier=image_id, dataset_name=image_id,
                            voxel_size=voxel_size_of(grid))  # fmt: skip
    return annotation_zip_bytes(sk, {layer_name: np.asarray(native)})


def label_to_volume_zip(
    store: Any,
    image_id: str,
    label_tag: str,
    out: str | os.PathLike[str],
    *,
    layer_name: str = "segmentation",
    skeleton: SkeletonAnnotation | None = None,
) -> Path:
    """Write the image's label ``label_tag`` as a volume layer of a WEBKNOSSOS zip.

    Args:
        store: The ``LocalDatastore``.
        image_id: The image.
        label_tag: The label's tag.
        out: The ``.zip`` to write (durably).
        layer_name: The volume layer's name.
        skeleton: An annotation to add the layer to (default: an empty one on the image).

    Returns:
        ``out``.
    """
    grid = ImageGrid.of_image(store, image_id)
    canonical = read_image(store.get_label_uri(image_id, label_tag)).array[0]
    native = from_canonical(canonical, grid.transform)
    _fit(native, grid.native_shape, "label")
    info = store.get_label_info(image_id, label_tag).get("label_info") or []
    sk = skeleton or SkeletonAnnotation(identifier=image_id, dataset_name=image_id)
    if sk.voxel_size is None:
        sk = sk.model_copy(update={"voxel_size": voxel_size_of(grid)})
    if layer_name not in sk.get_volume_layer_names():
        sk = sk.model_copy(deep=True)
        layer = sk.add_volume_layer(layer_name)
        layer.segments = [
            SegmentInfo(id=int(item["idx"]), name=str(item["name"]))
            for item in info
            if isinstance(item, dict) and "idx" in item and "name" in item
        ]
    data = np.ascontiguousarray(native)
    if data.dtype.kind == "f":
        data = data.astype(np.int64)
    path = Path(out)
    atomic_write_bytes(path, annotation_zip_bytes(sk, {layer_name: data}), point="export")
    return path
