"""Fast conversion of the few top-level DICOM values the readers need, straight from raw bytes.

pydicom converts a raw element on first access through several layers (about 25 µs each); a
300-slice series needs ~20 values per slice, which dominated series probing. The numeric, UID and
code-string values used for geometry are decoded here directly; anything unexpected falls back to
pydicom's own conversion.

Examples:
    >>> from pydicom.data import get_testdata_file
    >>> import pydicom
    >>> v = fast_values(pydicom.dcmread(get_testdata_file("CT_small.dcm"), stop_before_pixels=True))
    >>> v["Rows"], v["PixelSpacing"], v["Modality"]
    (128, [0.661468, 0.661468], 'CT')
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from pydicom.dataset import Dataset

__all__ = ["FAST_TAGS", "fast_values"]

# keyword -> (tag, kind): "us" unsigned short, "ds" decimal strings, "is" integer string,
# "text" single code string / UID.
FAST_TAGS: Mapping[str, tuple[int, str]] = MappingProxyType(
    {
        "Rows": (0x00280010, "us"),
        "Columns": (0x00280011, "us"),
        "SamplesPerPixel": (0x00280002, "us"),
        "BitsAllocated": (0x00280100, "us"),
        "BitsStored": (0x00280101, "us"),
        "PixelRepresentation": (0x00280103, "us"),
        "PlanarConfiguration": (0x00280006, "us"),
        "NumberOfFrames": (0x00280008, "is"),
        "PhotometricInterpretation": (0x00280004, "text"),
        "ImagePositionPatient": (0x00200032, "ds"),
        "ImageOrientationPatient": (0x00200037, "ds"),
        "PixelSpacing": (0x00280030, "ds"),
        "ImagerPixelSpacing": (0x00181164, "ds"),
        "SliceThickness": (0x00180050, "ds1"),
        "SpacingBetweenSlices": (0x00180088, "ds1"),
        "RescaleSlope": (0x00281053, "ds1"),
        "RescaleIntercept": (0x00281052, "ds1"),
        "Modality": (0x00080060, "text"),
        "SeriesInstanceUID": (0x0020000E, "text"),
        "StudyInstanceUID": (0x0020000D, "text"),
    }
)
_US_VRS = frozenset({"US", None})


def _convert(raw: Any, kind: str) -> Any:
    """Decode one raw element's bytes, or raise to request pydicom's conversion."""
    value = raw.value
    if not isinstance(value, bytes):
        raise TypeError("already converted")
    if kind == "us":
        if raw.VR not in _US_VRS or len(value) != 2:
            raise TypeError("not a single US")
        return struct.unpack("<H" if raw.is_little_endian else ">H", value)[0]
    text = value.decode("ascii").strip("\x00 ")
    if kind == "text":
        return text or None
    if not text:
        return None
    parts = [p.strip() for p in text.split("\\")]
    if kind == "is":
        return int(parts[0])
    nums = [float(p) for p in parts]
    return nums[0] if kind == "ds1" else nums


def _from_pydicom(value: Any, kind: str) -> Any:
    """Normalise a value pydicom converted to the same plain types."""
    if kind == "ds":
        items = value if isinstance(value, list | tuple) or hasattr(value, "__iter__") else [value]
        return [float(v) for v in items] if not isinstance(value, str) else None
    if kind == "ds1":
        return float(value)
    if kind in ("us", "is"):
        return int(value)
    return str(value).strip() or None


def fast_values(ds: Dataset) -> dict[str, Any]:
    """The :data:`FAST_TAGS` values present in ``ds`` as plain Python values.

    Args:
        ds: A dataset read by pydicom (raw elements not yet converted).

    Returns:
        ``{keyword: value}``: ints for US/IS, floats or lists of floats for DS, stripped strings.
    """
    out: dict[str, Any] = {}
    elements = ds._dict
    for keyword, (tag, kind) in FAST_TAGS.items():
        raw = elements.get(tag)  # type: ignore[call-overload]
        if raw is None:
            continue
        try:
            out[keyword] = _convert(raw, kind)
        except (TypeError, ValueError, UnicodeDecodeError, struct.error):
            value = ds.get(keyword)
            if value is None or value == "":
                continue
            try:
                out[keyword] = _from_pydicom(value, kind)
            except (TypeError, ValueError):
                continue
    return out
