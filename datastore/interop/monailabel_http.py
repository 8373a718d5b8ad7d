"""medstore errors as the HTTP errors MONAI Label's server should answer with (never a 500).

:func:`http_error` maps an error to a status, a one-line detail and headers; :func:`http_errors`
is the context manager the server adapter (:mod:`.monailabel`) wraps every call in. It raises
FastAPI's ``HTTPException`` (what MONAI Label's endpoints turn into a JSON error response) when
FastAPI is installed, and lets the medstore error through unchanged when it is not.

Examples:
    >>> from medstore.datastore.errors import StoreLockedError
    >>> http_error(StoreLockedError("store lock busy"))
    HttpError(status=503, detail='store lock busy', headers={'Retry-After': '5'})
    >>> http_error(FileNotFoundError(2, "No such file", "x.nii.gz")).status
    404
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator
from dataclasses import dataclass, field

from ..errors import (
    DatastoreError,
    ImageNotFoundError,
    ImageReadError,
    LabelNotFoundError,
    ManifestError,
    ReadOnlyError,
    StoreLockedError,
    StoreLockUnsupportedError,
)

__all__ = ["RETRY_AFTER_S", "HttpError", "http_error", "http_errors"]

RETRY_AFTER_S = 5
"""Seconds a client is asked to wait (``Retry-After``) when the store lock is busy."""


@dataclass(frozen=True)
class HttpError:
    """What to answer: status code, a one-line message, extra headers."""

    status: int
    detail: str
    headers: dict[str, str] = field(default_factory=dict)


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text or type(err).__name__


def http_error(err: BaseException) -> HttpError:
    """The HTTP answer for ``err``.

    404 unknown image or label (or a vanished file); 400 bad input (invalid id or tag, value,
    format, geometry, unreadable upload, archive); 403 read-only store; 503 store unavailable,
    with ``Retry-After`` when the lock is only busy; 507 disk full; other system errors 503.

    Args:
        err: A medstore error or an ``OSError``.

    Returns:
        The status, detail and headers.
    """
    detail = _one_line(err)
    if isinstance(err, StoreLockedError):
        return HttpError(503, detail, {"Retry-After": str(RETRY_AFTER_S)})
    if isinstance(err, ImageNotFoundError | LabelNotFoundError | FileNotFoundError):
        return HttpError(404, detail)
    if isinstance(err, ReadOnlyError):
        return HttpError(403, detail)
    if isinstance(err, ManifestError | StoreLockUnsupportedError):
        return HttpError(503, detail)
    if isinstance(err, ImageReadError | DatastoreError | ValueError):
        return HttpError(400, detail)
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return HttpError(507, detail)
    return HttpError(503, detail)


@contextlib.contextmanager
def http_errors() -> Iterator[None]:
    """Turn medstore errors and ``OSError`` raised inside into FastAPI ``HTTPException``.

    Raises:
        fastapi.HTTPException: With :func:`http_error`'s status, detail and headers.
    """
    try:
        yield
    except (DatastoreError, OSError) as err:
        exception_class = _http_exception_class()
        if exception_class is None:  # not in a server: the medstore error is the clearest
            raise
        answer = http_error(err)
        raise exception_class(answer.status, answer.detail, answer.headers or None) from err


def _http_exception_class() -> type[Exception] | None:
    try:
        from fastapi import HTTPException
    except ImportError:
        return None
    return HTTPException
