"""Bounded gzip streaming: a gzip file's head, a span straight into a buffer, or a full check.

Every gzip member's CRC and length are verified (zlib does it at the end of each member), output
is produced in bounded pieces, and a stream that ends early is reported as truncated.

Examples:
    >>> import gzip, tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.gz"
    >>> _ = p.write_bytes(gzip.compress(b"headerDATA"))
    >>> buf = bytearray(4)
    >>> read_span(p, skip=6, into=memoryview(buf))
    >>> bytes(buf), gzip_head(p, 6), verify_gzip(p, keep=6)
    (b'DATA', b'header', (b'header', 10))
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Generator

from ..errors import ImageReadError

__all__ = ["MAX_DEFLATE_RATIO", "gzip_head", "read_span", "verify_gzip"]

#: Deflate cannot expand better than about 1032:1; a larger declared size is impossible.
MAX_DEFLATE_RATIO = 1032
_CHUNK = 1 << 20
_PIECE = 1 << 22


def _pieces(path: str | os.PathLike[str], piece: int = _PIECE) -> Generator[bytes, None, None]:
    """Yield decompressed pieces of a (possibly multi-member) gzip file.

    Raises:
        ImageReadError: Corrupt data, CRC mismatch or a truncated stream.
    """
    dec = zlib.decompressobj(zlib.MAX_WBITS | 16)
    started = False
    with open(path, "rb") as fh:
        pending = b""
        while True:
            if not pending:
                pending = fh.read(min(_CHUNK, piece))
                if not pending:
                    break
            if not started:
                pending = pending.lstrip(b"\x00")  # zero padding between/after members
                if not pending:
                    continue
                started = True
            try:
                out = dec.decompress(pending, piece)
            except zlib.error as err:
                raise ImageReadError(f"{path}: corrupt gzip data ({err})") from err
            pending = dec.unconsumed_tail
            if dec.eof:
                pending = dec.unused_data + pending
                dec = zlib.decompressobj(zlib.MAX_WBITS | 16)
                started = False
            if out:
                yield out
    if started:
        raise ImageReadError(f"{path}: gzip stream is truncated (unexpected end of file)")


def gzip_head(path: str | os.PathLike[str], n: int) -> bytes:
    """The first ``n`` decompressed bytes of a gzip file (fewer if it is shorter).

    Args:
        path: The gzip file.
        n: Bytes wanted.

    Returns:
        Up to ``n`` bytes.

    Raises:
        ImageReadError: The file is not valid gzip, or ends before ``n`` bytes.
    """
    out = bytearray()
    gen = _pieces(path, max(n, 1 << 16))
    try:
        for piece in gen:
            out += piece[: n - len(out)]
            if len(out) >= n:
                break
    finally:
        gen.close()
    return bytes(out)


def read_span(path: str | os.PathLike[str], *, skip: int, into: memoryview) -> None:
    """Decompress a gzip file, discard ``skip`` bytes, fill ``into``, verify the rest.

    Args:
        path: The gzip file.
        skip: Decompressed bytes to discard first (header, extensions).
        into: Writable byte buffer to fill completely.

    Raises:
        ImageReadError: Corrupt data, CRC mismatch, or the stream ends before ``into`` is full.
    """
    need = len(into)
    pos = 0
    to_skip = skip
    for piece in _pieces(path):
        view = memoryview(piece)
        if to_skip:
            cut = min(to_skip, len(view))
            to_skip -= cut
            view = view[cut:]
        if view and pos < need:
            take = min(need - pos, len(view))
            into[pos : pos + take] = view[:take]
            pos += take
    if pos < need or to_skip:
        raise ImageReadError(
            f"{path}: gzip stream is truncated ({pos} of {need} data bytes present)"
        )


def verify_gzip(path: str | os.PathLike[str], *, keep: int = 0) -> tuple[bytes, int]:
    """Decompress a whole gzip file, verifying every member's CRC and length, keeping no output.

    Args:
        path: The gzip file.
        keep: Decompressed bytes to return from its start.

    Returns:
        The first ``keep`` decompressed bytes (fewer if it is shorter) and the decompressed length.

    Raises:
        ImageReadError: Not gzip, corrupt data, a CRC or length mismatch, or a truncated stream.
    """
    head = bytearray()
    total = 0
    for piece in _pieces(path):
        if len(head) < keep:
            head += piece[: keep - len(head)]
        total += len(piece)
    return bytes(head), total
