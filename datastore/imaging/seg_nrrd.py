"""3D Slicer segmentations (``.seg.nrrd``): segments read from and written to the NRRD header.

A ``.seg.nrrd`` is an NRRD whose voxels hold one or more *layers* (a ``list`` axis when there are
several) and whose header lists every segment as ``Segment<i>_Name``, ``_LabelValue``,
``_Layer``, ``_Color``... key/value pairs. Segments in one layer cannot overlap; overlapping
segments sit in different layers, so reading keeps them. :class:`Segmentation` holds the layers in
canonical layout with their segments; :meth:`Segmentation.label_info` gives MONAI Label's
``label_info`` (names and values) and :func:`segmentation_bytes` writes a file Slicer opens with
the names and colours.

Examples:
    >>> import numpy as np
    >>> from medstore.datastore.imaging import ImageHeader
    >>> liver, tumour = np.zeros((2, 3, 4), bool), np.zeros((2, 3, 4), bool)
    >>> liver[:, :2], tumour[:, 1:] = True, True          # they overlap in row 1
    >>> seg = Segmentation.from_masks({"liver": liver, "tumour": tumour})
    >>> [(s.name, s.label_value, s.layer) for s in seg.segments], seg.layers.shape
    ([('liver', 1, 0), ('tumour', 2, 1)], (2, 2, 3, 4))
    >>> int(seg.mask("tumour").sum()), seg.label_info()[1]
    (16, {'name': 'tumour', 'idx': 2})
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nrrd
import numpy as np
import numpy.typing as npt

from ..errors import ImageReadError, LabelGeometryError
from .nrrd import read_nrrd_header
from .orientation import canonical_transform, from_canonical
from .registry import read_image
from .types import DEFAULT_MAX_BYTES, ImageHeader, ReadLimits

__all__ = ["Segment", "Segmentation", "read_segmentation", "segmentation_bytes"]

#: Colours given to segments that have none (Slicer's first generic-anatomy colours).
PALETTE = (
    (0.502, 0.682, 0.502),
    (0.945, 0.839, 0.569),
    (0.694, 0.478, 0.396),
    (0.435, 0.722, 0.824),
    (0.847, 0.396, 0.310),
    (0.867, 0.510, 0.396),
    (0.565, 0.933, 0.565),
    (0.753, 0.408, 0.690),
)


@dataclass(frozen=True)
class Segment:
    """One segment of a segmentation.

    Attributes:
        name: Display name (a class name).
        label_value: The voxel value that marks it in its layer.
        layer: Which layer (channel) holds it.
        color: RGB in 0..1.
        id: Slicer's segment id (defaults to the name).
    """

    name: str
    label_value: int
    layer: int = 0
    color: tuple[float, float, float] = PALETTE[0]
    id: str = ""


@dataclass(frozen=True)
class Segmentation:
    """Layers in canonical layout ``(L, D, H, W)`` and the segments they hold.

    Attributes:
        layers: Integer array, one layer per overlap level.
        segments: The segments, in header order.
        affine: RAS+ affine of the canonical spatial axes (identity when built from masks).
    """

    layers: npt.NDArray[Any]
    segments: tuple[Segment, ...]
    affine: npt.NDArray[np.float64] = field(default_factory=lambda: np.eye(4))

    @classmethod
    def from_masks(
        cls,
        masks: Mapping[str, npt.NDArray[Any]],
        *,
        colors: Mapping[str, tuple[float, float, float]] | None = None,
    ) -> Segmentation:
        """Build layers from named boolean masks; a mask overlapping earlier ones opens a layer.

        Args:
            masks: Name → canonical boolean mask ``(D, H, W)``, all the same shape.
            colors: Optional name → RGB (0..1); others get the palette's colours.

        Returns:
            The segmentation; segment ``n`` (in ``masks`` order) has value ``n + 1``.

        Raises:
            LabelGeometryError: The masks differ in shape or there are none.
        """
        items = list(masks.items())
        shapes = {np.shape(m) for _, m in items}
        if len(shapes) != 1:
            raise LabelGeometryError(f"segment masks must share one shape, got {sorted(shapes)}")
        shape = shapes.pop()
        dtype = np.uint8 if len(items) < 255 else np.uint16
        layers: list[npt.NDArray[Any]] = []
        segments = []
        for n, (name, mask) in enumerate(items):
            m = np.asarray(mask, dtype=bool)
            layer = next((i for i, lay in enumerate(layers) if not (lay[m] != 0).any()), None)
            if layer is None:
                layers.append(np.zeros(shape, dtype))
                layer = len(layers) - 1
            layers[layer][m] = n + 1
            color = (colors or {}).get(name, PALETTE[n % len(PALETTE)])
            segments.append(Segment(str(name), n + 1, layer, tuple(color), str(name)))  # type: ignore[arg-type]
        return cls(np.stack(layers or [np.zeros(shape, dtype)]), tuple(segments))

    @classmethod
    def from_label_map(
        cls, label: npt.NDArray[Any], names: Mapping[int, str] | None = None
    ) -> Segmentation:
        """One layer from a canonical label map; each nonzero value becomes a segment.

        Args:
            label: Integer label map ``(D, H, W)``.
            names: Value → name (``"Segment_<value>"`` otherwise).

        Returns:
            The segmentation.
        """
        arr = np.asarray(label)
        values = [int(v) for v in np.unique(arr) if v != 0]
        values = sorted(set(values) | {int(v) for v in (names or {}) if int(v) != 0})
        segs = tuple(
            Segment(
                (names or {}).get(v, f"Segment_{v}"),
                v,
                0,
                PALETTE[n % len(PALETTE)],
                f"Segment_{v}",
            )
            for n, v in enumerate(values)
        )
        return cls(arr[np.newaxis], segs)

    def mask(self, name: str) -> npt.NDArray[np.bool_]:
        """The canonical boolean mask of the segment called ``name``.

        Raises:
            KeyError: No such segment.
        """
        for seg in self.segments:
            if seg.name == name:
                return np.asarray(self.layers[seg.layer] == seg.label_value)
        raise KeyError(name)

    def label_info(self) -> list[dict[str, Any]]:
        """MONAI Label's ``label_info``: ``[{"name", "idx"}]`` in segment order."""
        return [{"name": s.name, "idx": int(s.label_value)} for s in self.segments]


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split())
    except ValueError:
        return ()


def segments_of(
    fields: Mapping[str, Any], n_layers: int, *, path: object = ""
) -> tuple[Segment, ...]:
    """The segments listed in a ``.seg.nrrd`` header (empty when it lists none).

    Args:
        fields: The NRRD header (pynrrd's dict, key/value pairs included).
        n_layers: How many layers the voxels hold.
        path: The file, for messages.

    Returns:
        The segments in index order.

    Raises:
        ImageReadError: A segment's value or layer is not an integer or its layer does not exist.
    """
    out = []
    n = 0
    while f"Segment{n}_ID" in fields or f"Segment{n}_Name" in fields:
        get = lambda key, default="", n=n: str(fields.get(f"Segment{n}_{key}", default)).strip()  # noqa: E731
        try:
            # Old files (no LabelValue/Layer) hold one segment per layer, marked 1.
            value = int(get("LabelValue", "1"))
            layer = int(get("Layer", str(n if n_layers > 1 else 0)))
        except ValueError as err:
            raise ImageReadError(f"{path}: segment {n} has a non-integer value or layer") from err
        if not 0 <= layer < n_layers:
            raise ImageReadError(f"{path}: segment {n} is in layer {layer} of {n_layers}")
        rgb = _floats(get("Color"))
        color = rgb[:3] if len(rgb) >= 3 else PALETTE[n % len(PALETTE)]
        name = get("Name") or get("ID") or f"Segment_{n}"
        out.append(Segment(name, value, layer, (color[0], color[1], color[2]), get("ID") or name))
        n += 1
    return tuple(out)


def read_segmentation(
    path: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_BYTES
) -> Segmentation:
    """Read a ``.seg.nrrd`` (or any integer NRRD) into canonical layers and its segments.

    Args:
        path: The file.
        max_bytes: The cap on declared voxel bytes.

    Returns:
        Layers ``(L, D, H, W)`` in canonical layout and the header's segments (a plain label NRRD
        gets one segment per nonzero value).

    Raises:
        ImageReadError: Not NRRD, not integer voxels, or an invalid segment entry.

    Example:
        See :func:`segmentation_bytes`.
    """
    p = Path(path)
    header = read_nrrd_header(p, ReadLimits(max_bytes=max_bytes))
    data = read_image(p, max_bytes=max_bytes)
    if data.array.dtype.kind not in "iub":
        raise ImageReadError(f"{p}: a segmentation has integer voxels, not {data.array.dtype}")
    segments = segments_of(header.fields, data.array.shape[0], path=p)
    if not segments:
        built = Segmentation.from_label_map(data.array[0])
        return Segmentation(data.array, built.segments, data.affine)
    return Segmentation(data.array, segments, data.affine)


def _extent(layer: npt.NDArray[Any], value: int) -> str:
    """Slicer's ``Segment<i>_Extent``: inclusive voxel bounds (i, j, k) of the segment."""
    where = np.argwhere(layer == value)
    if where.size == 0:
        return "0 -1 0 -1 0 -1"
    lo, hi = where.min(axis=0), where.max(axis=0)
    return " ".join(f"{int(a)} {int(b)}" for a, b in zip(lo, hi, strict=True))


def segmentation_bytes(seg: Segmentation, header: ImageHeader) -> bytes:
    """A gzip-encoded ``.seg.nrrd`` of ``seg`` in the geometry of the image ``header`` describes.

    Layers are written in the image file's own voxel order and LPS space, the way Slicer writes
    them, with every segment's name, value, layer and colour in the header.

    Args:
        seg: Canonical layers and segments; each layer has the image's canonical shape.
        header: The image's header (from :func:`~.registry.probe_image`).

    Returns:
        The file content.

    Raises:
        LabelGeometryError: The layers do not have the image's canonical shape.

    Example:
        >>> import tempfile, pathlib, nibabel as nib
        >>> from medstore.datastore.imaging import probe_image
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> nib.save(nib.Nifti1Image(np.zeros((4, 3, 2), np.int16), np.eye(4)), d / "img.nii")
        >>> seg = Segmentation.from_label_map(np.ones((2, 3, 4), np.uint8), {1: "liver"})
        >>> _ = (d / "l.seg.nrrd").write_bytes(segmentation_bytes(seg, probe_image(d / "img.nii")))
        >>> back = read_segmentation(d / "l.seg.nrrd")
        >>> back.segments[0].name, back.layers.shape, bool((back.layers == 1).all())
        ('liver', (1, 2, 3, 4), True)
    """
    shape3 = header.shape if len(header.shape) == 3 else (1, *header.shape)
    if tuple(seg.layers.shape[1:]) != tuple(shape3):
        raise LabelGeometryError(
            f"segmentation layers {seg.layers.shape[1:]} do not match the image's canonical "
            f"shape {tuple(shape3)}"
        )
    tr = canonical_transform(header.native_affine_array, header.native_shape or shape3[::-1])
    native = np.stack([np.asarray(from_canonical(lay, tr)) for lay in seg.layers])
    hi = int(native.max(initial=0))
    native = native.astype(np.uint8 if hi < 256 else np.uint16 if hi < 65536 else np.int32)
    lps = np.diag([-1.0, -1.0, 1.0]) @ header.native_affine_array[:3]
    fields: dict[str, Any] = {"encoding": "gzip", "space": "left-posterior-superior"}
    fields["space origin"] = lps[:, 3]
    if len(native) == 1:
        data = native[0]
        fields["space directions"] = lps[:, :3].T
        fields["kinds"] = ["domain"] * 3
    else:
        data = native
        fields["space directions"] = np.vstack([np.full(3, np.nan), lps[:, :3].T])
        fields["kinds"] = ["list", "domain", "domain", "domain"]
    fields["Segmentation_MasterRepresentation"] = "Binary labelmap"
    fields["Segmentation_ContainedRepresentationNames"] = "Binary labelmap|"
    fields["Segmentation_ReferenceImageExtentOffset"] = "0 0 0"
    for n, s in enumerate(seg.segments):
        key = f"Segment{n}_"
        fields[key + "ID"] = s.id or s.name
        fields[key + "Name"] = s.name
        fields[key + "NameAutoGenerated"] = "0"
        fields[key + "LabelValue"] = str(int(s.label_value))
        fields[key + "Layer"] = str(int(s.layer))
        fields[key + "Color"] = " ".join(f"{c:.6g}" for c in s.color)
        fields[key + "ColorAutoGenerated"] = "0"
        fields[key + "Extent"] = _extent(native[s.layer], s.label_value)
        fields[key + "Tags"] = "|"
    buf = io.BytesIO()
    nrrd.write(buf, data, fields, compression_level=6)
    return buf.getvalue()


def is_segmentation_name(name: str | os.PathLike[str]) -> bool:
    """Whether a file name is a Slicer segmentation (``*.seg.nrrd``)."""
    return os.fspath(name).lower().endswith(".seg.nrrd")


def label_info_of(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """``label_info`` from a ``.seg.nrrd`` header's segments (empty when it lists none).

    Args:
        path: The file.

    Returns:
        ``[{"name", "idx"}]`` in segment order.
    """
    h = read_nrrd_header(path)
    n_layers = int(np.prod([h.sizes[i] for i in h.channel_axes], dtype=np.int64))
    return [{"name": s.name, "idx": s.label_value} for s in segments_of(h.fields, n_layers)]
