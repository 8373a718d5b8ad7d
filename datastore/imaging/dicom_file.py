"""Reader for one DICOM file: single-frame, Enhanced multi-frame, RT Dose, cine (video) frames.

Frames with patient geometry (top-level or per-frame plane position/orientation) become a volume
sorted along the slice normal; RT Dose frames are placed by GridFrameOffsetVector and scaled by
DoseGridScaling; frames without geometry (ultrasound cine) become a video (C, T, H, W); a single
frame without geometry is a 2-D image (C, H, W). Colour (RGB, YBR, palette) gives C = 3.

Examples:
    >>> from pydicom.data import get_testdata_file
    >>> h = DICOM_FILE_READER.probe(Path(get_testdata_file("rtdose.dcm")), ReadLimits())
    >>> h.kind, h.shape, h.dtype
    ('volume', (15, 10, 10), 'float32')
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import ImageReadError
from ._geometry import flat_affine, to_image_data, volume_header
from .dicom_geometry import (
    Plane,
    classic_plane,
    enhanced_planes,
    stack_planes,
)
from .dicom_io import DicomHeader, is_dicom_file, read_header
from .dicom_pixels import decode_pixels
from .dicom_values import (
    apply_pairs,
    combined_dtype,
    dataset_facts,
    rescale_pairs,
)
from .types import ImageData, ImageHeader, ImageKind, ReadLimits

__all__ = ["DICOM_FILE_READER", "DicomFileReader", "FramePlan", "as_2d", "plan_file"]


@dataclass(frozen=True)
class FramePlan:
    """Everything needed to decode a DICOM file, computed from its header alone.

    Attributes:
        dh: The parsed header.
        header: The public header facts.
        order: Frame indices in output order (sorted along the normal for volumes).
        pairs: Per-output-frame (slope, intercept).
        affine_crk: RAS+ affine of the (column, row, frame) voxel order.
        meta: Extra facts for :class:`ImageData`.
    """

    dh: DicomHeader
    header: ImageHeader
    order: tuple[int, ...]
    pairs: tuple[tuple[float, float], ...]
    affine_crk: npt.NDArray[np.float64]
    meta: dict[str, Any]


def _grid_planes(dh: DicomHeader, base: Plane) -> list[Plane] | None:
    """RT Dose frame planes from GridFrameOffsetVector (relative or absolute form)."""
    gfov = dh.ds.get("GridFrameOffsetVector")
    if gfov is None:
        return None
    try:
        offsets = np.array([float(v) for v in gfov], dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ImageReadError(f"{dh.path}: invalid GridFrameOffsetVector ({err})") from err
    if offsets.size != dh.frame.frames:
        raise ImageReadError(
            f"{dh.path}: GridFrameOffsetVector has {offsets.size} values for "
            f"{dh.frame.frames} frames"
        )
    rel = offsets - offsets[0]
    return [replace(base, position=base.position + d * base.normal) for d in rel]


def _planes(dh: DicomHeader) -> list[Plane] | None:
    """Per-frame planes of a file, or ``None`` when it has no patient geometry."""
    n = dh.frame.frames
    planes = enhanced_planes(dh.ds)
    if planes is not None:
        if len(planes) != n:
            raise ImageReadError(
                f"{dh.path}: {len(planes)} per-frame functional groups for {n} frames"
            )
        return planes
    base = classic_plane(dh.values)
    if base is None:
        return None
    if n == 1:
        return [base]
    grid = _grid_planes(dh, base)
    if grid is not None:
        return grid
    step = base.thickness or 1.0
    return [replace(base, position=base.position + k * step * base.normal) for k in range(n)]


def plan_file(path: Path, limits: ReadLimits) -> FramePlan:
    """Plan the decoding of one DICOM file from its header.

    Args:
        path: The file.
        limits: Safety limits.

    Returns:
        The plan.

    Raises:
        ImageReadError: Unreadable, inconsistent geometry, or over the size cap.
    """
    dh = read_header(path, max_bytes=limits.max_bytes)
    f = dh.frame
    pairs_all = rescale_pairs(dh.ds, f.frames)
    planes = _planes(dh)
    kind: ImageKind
    meta: dict[str, Any] = {"transfer_syntax": dh.transfer_syntax, "photometric": f.photometric}
    if planes is not None:
        stack = stack_planes(planes, where=str(path))
        order = stack.order
        affine = stack.affine_crk
        kind = "volume"
    else:
        order = tuple(range(f.frames))
        row_sp, col_sp = _flat_spacing(dh)
        affine = flat_affine((1.0, row_sp, col_sp))
        kind = "video" if f.frames > 1 else "image"
        frame_time = dh.ds.get("FrameTime")
        if frame_time is not None:
            meta["frame_time_ms"] = float(frame_time)
    pairs = tuple(pairs_all[i] for i in order)
    if len(set(pairs)) == 1 and pairs[0] != (1.0, 0.0):
        meta["rescale"] = {"slope": pairs[0][0], "intercept": pairs[0][1]}
    header = volume_header(
        "dicom",
        native_affine=affine,
        native_shape=(f.cols, f.rows, f.frames),
        channels=f.out_samples,
        dtype=combined_dtype(f, pairs),
        kind=kind,
        n_frames=f.frames,
        **dataset_facts(dh.ds),
    )
    return FramePlan(dh, header, order, pairs, affine, meta)


def _flat_spacing(dh: DicomHeader) -> tuple[float, float]:
    plane = classic_plane(dh.values)
    if plane is not None:
        return plane.spacing
    for key in ("PixelSpacing", "ImagerPixelSpacing"):
        value = dh.values.get(key)
        try:
            sp = (float(value[0]), float(value[1])) if value else None
        except (TypeError, ValueError, IndexError):
            sp = None
        if sp and sp[0] > 0 and sp[1] > 0:
            return sp
    return 1.0, 1.0


def as_2d(data: ImageData) -> ImageData:
    """Drop the single-frame axis of a 2-D image: (C, 1, H, W) → (C, H, W).

    Args:
        data: A decoded single-frame image.

    Returns:
        The 2-D image; its header shape and spacing drop the frame axis too.
    """
    h = data.header
    header = replace(h, shape=h.shape[1:], spacing=h.spacing[1:])
    return replace(data, array=data.array[:, 0], spacing=data.spacing[1:], header=header)


def header_2d(header: ImageHeader) -> ImageHeader:
    """Header of a 2-D image without its single frame axis."""
    if header.kind != "image":
        return header
    return replace(header, shape=header.shape[1:], spacing=header.spacing[1:])


def decode_plan(plan: FramePlan) -> ImageData:
    """Decode a planned file into canonical :class:`ImageData`.

    Args:
        plan: From :func:`plan_file`.

    Returns:
        The image.
    """
    f = plan.dh.frame
    raw = np.empty((f.frames, f.rows, f.cols, f.out_samples), dtype=f.dtype)
    decode_pixels(plan.dh, raw)
    if plan.order != tuple(range(f.frames)):
        raw = raw[list(plan.order)]
    out = apply_pairs(raw, plan.pairs, np.dtype(plan.header.dtype), path=str(plan.dh.path))
    crk = out.transpose(2, 1, 0, 3)
    data = to_image_data(crk, plan.affine_crk, replace(plan.header), plan.meta)
    return as_2d(data) if plan.header.kind == "image" else data


class DicomFileReader:
    """Reader for one DICOM Part 10 file (or a preamble-less dataset)."""

    name = "dicom"

    def sniff(self, path: Path, head: bytes) -> bool:
        """True when the content looks like DICOM.

        Returns:
            Whether this reader claims the file.
        """
        return is_dicom_file(path, head)

    def probe(self, path: Path, limits: ReadLimits) -> ImageHeader:
        """Header facts without pixels.

        Returns:
            The header.

        Raises:
            ImageReadError: See :func:`plan_file`.
        """
        return header_2d(plan_file(path, limits).header)

    def read(self, path: Path, limits: ReadLimits) -> ImageData:
        """Decode the file.

        Returns:
            Canonical channels-first data.

        Raises:
            ImageReadError: Unreadable or inconsistent.
            UnsupportedFormatError: Compressed pixel data without an installed decoder.
        """
        return decode_plan(plan_file(path, limits))


#: The shared single-file DICOM reader.
DICOM_FILE_READER = DicomFileReader()
