"""Optional 2-D reader (PNG, JPEG, TIFF) through Pillow, behind the ``images2d`` extra.

A single picture becomes ``(C, H, W)``; a multi-page TIFF becomes a frame stack ``(C, T, H, W)``
(kind ``"video"``). Palette and CMYK pictures are converted to RGB, 1-bit ones to uint8.

Examples:
    >>> RASTER2D_READER.sniff(Path("x.png"), b"\\x89PNG\\r\\n\\x1a\\n")
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import ImageReadError
from ._geometry import flat_affine, to_image_data, volume_header
from ._optional import optional_module
from ._values import check_declared_size
from .dicom_file import as_2d, header_2d
from .types import ImageData, ImageHeader, ReadLimits

__all__ = ["RASTER2D_READER", "Raster2DReader"]

_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_CONVERT: Mapping[str, str] = MappingProxyType(
    {"P": "RGB", "PA": "RGBA", "CMYK": "RGB", "YCbCr": "RGB", "LAB": "RGB", "HSV": "RGB"}
)
_BYTES: Mapping[str, int] = MappingProxyType(
    {"1": 1, "L": 1, "LA": 2, "RGB": 3, "RGBA": 4, "I;16": 2, "I;16B": 2, "I": 4, "F": 4}
)


def _pil() -> Any:
    """Import Pillow's Image module or explain which extra to install."""
    needs = "reading PNG/JPEG/TIFF needs Pillow"
    return optional_module("PIL.Image", needs=needs, extra="images2d")


def _frame_array(img: Any) -> npt.NDArray[Any]:
    """One Pillow frame as (H, W, C)."""
    if img.mode in _CONVERT:
        img = img.convert(_CONVERT[img.mode])
    arr = np.asarray(img)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr[..., np.newaxis] if arr.ndim == 2 else arr


class Raster2DReader:
    """PNG/JPEG/TIFF via Pillow."""

    name = "raster2d"

    def sniff(self, path: Path, head: bytes) -> bool:
        """True for PNG, JPEG and TIFF magic numbers.

        Returns:
            Whether this reader claims the file.
        """
        return head.startswith(_MAGIC)

    def _open(self, path: Path) -> Any:
        image = _pil()
        try:
            return image.open(path)
        except (OSError, ValueError, image.DecompressionBombError) as err:
            raise ImageReadError(f"{path}: cannot open picture ({err})") from err

    def _header(self, img: Any, path: Path, limits: ReadLimits) -> ImageHeader:
        width, height = img.size
        frames = int(getattr(img, "n_frames", 1) or 1)
        mode = _CONVERT.get(img.mode, img.mode)
        per_pixel = _BYTES.get(mode, 4)
        check_declared_size(
            width * height * per_pixel * frames,
            max_bytes=limits.max_bytes,
            available=None,
            path=path,
        )
        probe = _frame_array(img.crop((0, 0, 1, 1)))
        header = volume_header(
            "raster2d",
            native_affine=flat_affine((1.0, 1.0, 1.0)),
            native_shape=(width, height, frames),
            channels=probe.shape[-1],
            dtype=probe.dtype,
            kind="video" if frames > 1 else "image",
            n_frames=frames,
        )
        return header_2d(header)

    def probe(self, path: Path, limits: ReadLimits) -> ImageHeader:
        """Size, mode and page count without decoding pixels.

        Returns:
            The header.

        Raises:
            UnsupportedFormatError: Pillow is not installed.
            ImageReadError: Unreadable or over the cap.
        """
        with self._open(path) as img:
            return self._header(img, path, limits)

    def read(self, path: Path, limits: ReadLimits) -> ImageData:
        """Decode the picture (all pages of a TIFF).

        Returns:
            (C, H, W) for a picture, (C, T, H, W) for a multi-page TIFF.

        Raises:
            UnsupportedFormatError: Pillow is not installed.
            ImageReadError: Unreadable, truncated or over the cap.
        """
        with self._open(path) as img:
            header = self._header(img, path, limits)
            frames = []
            try:
                for i in range(max(header.n_frames, 1)):
                    img.seek(i)
                    frames.append(_frame_array(img))
            except (OSError, ValueError, EOFError) as err:
                raise ImageReadError(f"{path}: cannot decode picture ({err})") from err
        stack = np.stack(frames)  # (T, H, W, C)
        is_image = header.kind == "image"
        full = header if not is_image else _as_3d(header)
        data = to_image_data(
            stack.transpose(2, 1, 0, 3), full.native_affine_array, full, {"mode": img.mode}
        )
        return as_2d(data) if is_image else data


def _as_3d(header: ImageHeader) -> ImageHeader:
    from dataclasses import replace

    return replace(header, shape=(1, *header.shape), spacing=(1.0, *header.spacing))


#: The shared Pillow reader.
RASTER2D_READER = Raster2DReader()
