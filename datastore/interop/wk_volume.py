"""WEBKNOSSOS volume layers: the zarr3 voxel data in an annotation ``.zip``, read and written.

A WEBKNOSSOS 4.x annotation zip holds the NML and, per volume layer, a nested zip (the layer's
``location``) with ``datasource-properties.json`` and the layer's magnification-1 array in zarr
v3 (axes ``c, x, y, z``, positions in dataset voxels). The ``zarr`` library reads and writes
those arrays; only the layer's bounding box is read, never the whole (possibly huge, sparse)
array. WKW-format layers are refused with a clear error (no well-kept WKW reader for Python 3
wheels). Positions are dataset voxels, i.e. the image file's own voxels
(see :mod:`~medstore.datastore.interop.wk_coords`).

Examples:
    >>> import io, numpy as np
    >>> from medstore.datastore.annotations import SkeletonAnnotation, VoxelSize
    >>> sk = SkeletonAnnotation(voxel_size=VoxelSize(x=1, y=1, z=1))
    >>> labels = np.zeros((4, 5, 6), np.uint8); labels[1, 2, 3] = 7
    >>> data = annotation_zip_bytes(sk, {"seg": labels})
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.zip"; _ = path.write_bytes(data)
    >>> int(read_volume_layer(path, "seg")[1, 2, 3])
    7
"""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..annotations.skeleton import SegmentInfo, SkeletonAnnotation, VolumeLayer
from ..errors import AnnotationError, UnsupportedFormatError
from .nml import load_nml
from .nml_writer import dump_nml

__all__ = ["MAX_VOLUME_BYTES", "annotation_zip_bytes", "read_volume_layer"]

#: Largest decoded volume layer (bytes) and largest nested data zip read.
MAX_VOLUME_BYTES = 2 << 30
_PROPERTIES = "datasource-properties.json"


def _zarr() -> Any:
    try:
        import zarr
    except ImportError as err:  # pragma: no cover - zarr is a core dependency
        raise UnsupportedFormatError("WEBKNOSSOS volume data needs the 'zarr' package") from err
    return zarr


def _inner_zip(outer: zipfile.ZipFile, location: str, limit: int) -> zipfile.ZipFile:
    try:
        info = outer.getinfo(location)
    except KeyError:
        raise AnnotationError(f"volume data {location!r} is missing from the zip") from None
    if info.file_size > limit:
        raise AnnotationError(f"volume data {location!r} is larger than {limit} bytes")
    try:
        return zipfile.ZipFile(io.BytesIO(outer.read(info)))
    except zipfile.BadZipFile as err:
        raise AnnotationError(f"volume data {location!r} is not a zip: {err}") from err


def _layer_properties(inner: zipfile.ZipFile) -> dict[str, Any]:
    try:
        props = json.loads(inner.read(_PROPERTIES))
        (layer,) = props["dataLayers"]
        return dict(layer)
    except (KeyError, ValueError, TypeError) as err:
        raise AnnotationError(f"volume data: bad or missing {_PROPERTIES} ({err})") from err


def _mag1_path(layer: Mapping[str, Any]) -> str:
    for mag in layer.get("mags", []):
        if list(mag.get("mag", [])) == [1, 1, 1]:
            return str(mag.get("path") or f"{layer['name']}/1").removeprefix("./")
    raise AnnotationError("volume data has no magnification-1 array")


def _box(layer: Mapping[str, Any]) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    try:
        box = layer["boundingBox"]
        top = tuple(int(v) for v in box["topLeft"])
        size = (int(box["width"]), int(box["height"]), int(box["depth"]))
    except (KeyError, TypeError, ValueError) as err:
        raise AnnotationError(f"volume data: bad boundingBox ({err})") from err
    if len(top) != 3 or min(top) < 0 or min(size) < 0:
        raise AnnotationError(f"volume data: bad boundingBox {top} + {size}")
    return (top[0], top[1], top[2]), size


def read_volume_layer(
    path: str | os.PathLike[str],
    volume_layer_name: str | None = None,
    volume_layer_id: int | None = None,
    *,
    max_bytes: int = MAX_VOLUME_BYTES,
) -> npt.NDArray[Any]:
    """The voxels of one volume layer of a WEBKNOSSOS annotation zip.

    Args:
        path: The annotation ``.zip``.
        volume_layer_name: The layer's name (or ``volume_layer_id``; neither: the only one).
        volume_layer_id: The layer's id.
        max_bytes: Refuse layers whose decoded voxels would exceed this.

    Returns:
        ``(X, Y, Z)`` array from voxel ``(0, 0, 0)`` to the end of the layer's bounding box
        (zeros outside it), in dataset (= image file) voxel order.

    Raises:
        AnnotationError: No such layer, no data, malformed or oversized data.
        UnsupportedFormatError: A WKW-format layer.
    """
    path = Path(path)
    layer = load_nml(path).get_volume_layer(volume_layer_name, volume_layer_id)
    if layer.location is None:
        raise AnnotationError(f"volume layer {layer.name!r} has no voxel data in the zip")
    with zipfile.ZipFile(path) as outer:
        inner = _inner_zip(outer, layer.location, max_bytes)
    if layer.format not in (None, "zarr3") or _PROPERTIES not in inner.namelist():
        raise UnsupportedFormatError(
            f"volume layer {layer.name!r} is stored as {layer.format or 'WKW'}; only zarr3 "
            "volume data (WEBKNOSSOS 4.x) can be read"
        )
    props = _layer_properties(inner)
    top, size = _box(props)
    end = tuple(t + s for t, s in zip(top, size, strict=True))
    zarr = _zarr()
    from zarr.core.buffer import cpu

    prefix = _mag1_path(props)
    members = {
        name: cpu.Buffer.from_bytes(inner.read(name))
        for name in inner.namelist()
        if name.startswith(prefix + "/") and not name.endswith("/")
    }
    try:
        array = zarr.open_array(zarr.storage.MemoryStore(members), path=prefix, mode="r")
    except Exception as err:  # zarr raises many kinds for bad metadata
        raise AnnotationError(
            f"volume layer {layer.name!r}: unreadable zarr array ({err})"
        ) from err
    if len(array.shape) != 4 or array.shape[0] != 1:
        raise AnnotationError(f"volume layer {layer.name!r}: expected (1, x, y, z), {array.shape}")
    nbytes = int(np.prod(end, dtype=np.int64)) * np.dtype(array.dtype).itemsize
    if nbytes > max_bytes:
        raise AnnotationError(f"volume layer {layer.name!r} would decode to {nbytes} bytes")
    out = np.zeros(end, dtype=array.dtype)
    region = tuple(slice(t, min(e, n)) for t, e, n in zip(top, end, array.shape[1:], strict=True))
    out[region] = array[(0, *region)]
    return out


def _layer_zip(name: str, data: npt.NDArray[Any], largest: int) -> bytes:
    zarr = _zarr()
    store: dict[str, Any] = {}
    memory = zarr.storage.MemoryStore(store)
    zarr.open_group(memory, mode="w")
    array = zarr.create_array(
        memory, name=f"{name}/1", shape=(1, *data.shape), dtype=data.dtype,
        chunks=(1, *(min(64, max(1, s)) for s in data.shape)), fill_value=0,
        dimension_names=["c", "x", "y", "z"], compressors=zarr.codecs.ZstdCodec(level=5),
    )  # fmt: skip
    array[0] = data
    props = {
        "id": {"name": name, "team": ""},
        "scale": {"factor": [1.0, 1.0, 1.0], "unit": "nanometer"},
        "dataLayers": [{
            "name": name, "category": "segmentation", "dataFormat": "zarr3",
            "boundingBox": {"topLeft": [0, 0, 0], "width": int(data.shape[0]),
                            "height": int(data.shape[1]), "depth": int(data.shape[2])},
            "mags": [{"mag": [1, 1, 1], "path": f"./{name}/1",
                      "axisOrder": {"c": 0, "x": 1, "y": 2, "z": 3}}],
            "largestSegmentId": largest, "numChannels": 1, "elementClass": data.dtype.name,
        }],
        "version": 1,
    }  # fmt: skip
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(_PROPERTIES, json.dumps(props, indent=4))
        for key in sorted(store):
            archive.writestr(key, store[key].to_bytes())
    return buffer.getvalue()


def annotation_zip_bytes(sk: SkeletonAnnotation, volumes: Mapping[str, npt.ArrayLike]) -> bytes:
    """A WEBKNOSSOS annotation zip: the NML plus one zarr3 data zip per given volume layer.

    Args:
        sk: The annotation (its voxel size is the dataset's).
        volumes: ``{layer name: (X, Y, Z) integer label array in dataset voxels}``; a layer
            missing from ``sk`` is added, segments present in the data but not described get a
            description.

    Returns:
        The zip's bytes.

    Raises:
        AnnotationError: Not 3-D integer data, or negative labels.
    """
    annotated = sk.model_copy(deep=True)
    files: dict[str, bytes] = {}
    for name, given in volumes.items():
        data = np.asarray(given)
        if data.ndim != 3 or data.dtype.kind not in "biu":
            raise AnnotationError(f"volume {name!r}: needs a 3-D integer array, got {data.dtype}")
        if data.size and int(data.min()) < 0:
            raise AnnotationError(f"volume {name!r}: labels must not be negative")
        data = data.astype(np.uint32 if data.dtype.itemsize <= 4 else np.uint64)
        ids = sorted(int(v) for v in np.unique(data) if v)
        if name not in annotated.get_volume_layer_names():
            annotated.add_volume_layer(name)
        layer = annotated.get_volume_layer(name)
        known = {s.id for s in layer.segments}
        segments = [*layer.segments, *(SegmentInfo(id=i) for i in ids if i not in known)]
        largest = max([*ids, layer.largest_segment_id or 0])
        location = f"data_{layer.id}_{name}.zip"
        updated = VolumeLayer.model_validate(
            {**layer.model_dump(), "location": location, "format": "zarr3",
             "largest_segment_id": largest or None,
             "segments": [s.model_dump() for s in segments]}
        )  # fmt: skip
        annotated.volumes = [updated if v.id == layer.id else v for v in annotated.volumes]
        files[location] = _layer_zip(name, data, largest)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", annotated.identifier)
        archive.writestr(f"{stem}.nml", dump_nml(annotated))
        for location, payload in files.items():
            archive.writestr(location, payload)
    return buffer.getvalue()
