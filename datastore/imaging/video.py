"""Optional video reader (MP4, AVI, MOV, MKV, WebM) through PyAV, behind the ``video`` extra.

Frames of the first video stream are decoded to RGB and returned as ``(3, T, H, W)`` uint8
(kind ``"video"``); ``meta["fps"]`` holds the stream's average frame rate.

Examples:
    >>> VIDEO_READER.sniff(Path("clip.mp4"), b"\\x00\\x00\\x00\\x18ftypmp42")
    True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ImageReadError
from ._geometry import flat_affine, to_image_data, volume_header
from ._optional import optional_module
from ._values import check_declared_size
from .types import ImageData, ImageHeader, ReadLimits

__all__ = ["VIDEO_READER", "VideoReader"]

_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg"})


def _av() -> Any:
    """Import PyAV or explain which extra to install."""
    return optional_module("av", needs="reading video files needs PyAV", extra="video")


def _looks_like_video(head: bytes) -> bool:
    return (
        head[4:8] == b"ftyp"
        or (head[:4] == b"RIFF" and head[8:12] == b"AVI ")
        or head[:4] == b"\x1a\x45\xdf\xa3"
    )


class VideoReader:
    """Video files via PyAV."""

    name = "video"

    def sniff(self, path: Path, head: bytes) -> bool:
        """True for video containers (by magic number or suffix).

        Returns:
            Whether this reader claims the file.
        """
        return _looks_like_video(head) or path.suffix.lower() in _SUFFIXES

    def _header(self, stream: Any, frames: int, path: Path, limits: ReadLimits) -> ImageHeader:
        width, height = int(stream.codec_context.width), int(stream.codec_context.height)
        check_declared_size(
            width * height * 3 * max(frames, 1),
            max_bytes=limits.max_bytes,
            available=None,
            path=path,
        )
        return volume_header(
            "video",
            native_affine=flat_affine((1.0, 1.0, 1.0)),
            native_shape=(width, height, frames),
            channels=3,
            dtype=np.dtype(np.uint8),
            kind="video",
            n_frames=frames,
        )

    def probe(self, path: Path, limits: ReadLimits) -> ImageHeader:
        """Frame size and count from the container (no decoding).

        Returns:
            The header (``n_frames`` as the container declares it).

        Raises:
            UnsupportedFormatError: PyAV is not installed.
            ImageReadError: Unreadable, no video stream, or over the cap.
        """
        av = _av()
        try:
            with av.open(str(path)) as container:
                stream = self._stream(container, path)
                return self._header(stream, int(stream.frames or 0), path, limits)
        except ImageReadError:
            raise
        except (av.error.FFmpegError, OSError) as err:  # pragma: no cover - needs PyAV
            raise ImageReadError(f"{path}: cannot open video ({err})") from err

    @staticmethod
    def _stream(container: Any, path: Path) -> Any:
        if not container.streams.video:
            raise ImageReadError(f"{path}: no video stream")
        return container.streams.video[0]

    def read(self, path: Path, limits: ReadLimits) -> ImageData:
        """Decode every frame to RGB (the cap is checked against the declared and decoded frames).

        Returns:
            (3, T, H, W) uint8.

        Raises:
            UnsupportedFormatError: PyAV is not installed.
            ImageReadError: Unreadable or over the cap.
        """
        av = _av()
        frames = []
        try:
            with av.open(str(path)) as container:
                stream = self._stream(container, path)
                first = self._header(stream, int(stream.frames or 0), path, limits)
                per_frame = first.shape[1] * first.shape[2] * 3
                fps = float(stream.average_rate or 0)
                for frame in container.decode(stream):
                    frames.append(frame.to_ndarray(format="rgb24"))
                    if per_frame * len(frames) > limits.max_bytes:
                        raise ImageReadError(f"{path}: decoded video exceeds the size cap")
        except ImageReadError:
            raise
        except (av.error.FFmpegError, OSError) as err:  # pragma: no cover - needs PyAV
            raise ImageReadError(f"{path}: cannot decode video ({err})") from err
        if not frames:
            raise ImageReadError(f"{path}: video has no frames")
        stack = np.stack(frames)  # (T, H, W, 3)
        header = self._header(stream, len(frames), path, limits)
        return to_image_data(
            stack.transpose(2, 1, 0, 3), header.native_affine_array, header, {"fps": fps}
        )


#: The shared PyAV reader.
VIDEO_READER = VideoReader()
