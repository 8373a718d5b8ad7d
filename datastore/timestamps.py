"""UTC timestamps in the two text forms medstore writes: ISO-8601 for records, compact for names.

Records (label history, split log, annotation side files, ``approved_at``) use ISO-8601 UTC with
microseconds and a ``Z``: ``2026-11-21T10:00:00.000000Z``, which sorts as text in time order.
File and folder names (trash, archives, kept corrupt manifests) use the compact form
``20261121T100000000000Z``, which holds no ``:`` (refused by Windows and exFAT).

Examples:
    >>> import datetime as dt
    >>> moment = dt.datetime(2026, 11, 21, 10, 0, tzinfo=dt.UTC)
    >>> iso_utc(moment)
    '2026-11-21T10:00:00.000000Z'
    >>> compact_utc(moment)
    '20261121T100000000000Z'
    >>> parse_utc("2026-11-21T10:00:00Z") == moment
    True
"""

from __future__ import annotations

import datetime as dt

__all__ = ["compact_utc", "iso_utc", "parse_utc", "utc_now"]

_ISO = "%Y-%m-%dT%H:%M:%S.%fZ"
_COMPACT = "%Y%m%dT%H%M%S%fZ"


def utc_now() -> dt.datetime:
    """The current time, timezone-aware in UTC."""
    return dt.datetime.now(dt.UTC)


def _as_utc(moment: dt.datetime | float | None) -> dt.datetime:
    if moment is None:
        return utc_now()
    if isinstance(moment, dt.datetime):
        return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)
    return dt.datetime.fromtimestamp(moment, dt.UTC)


def iso_utc(moment: dt.datetime | float | None = None) -> str:
    """ISO-8601 UTC text with microseconds and ``Z``.

    Args:
        moment: A datetime (naive means UTC), POSIX seconds, or ``None`` for now.

    Returns:
        E.g. ``"2026-11-21T10:00:00.000000Z"``.

    Examples:
        >>> iso_utc(0)
        '1970-01-01T00:00:00.000000Z'
    """
    return _as_utc(moment).strftime(_ISO)


def compact_utc(moment: dt.datetime | float | None = None) -> str:
    """Compact UTC text for file names (no ``:``), microseconds included.

    Args:
        moment: A datetime (naive means UTC), POSIX seconds, or ``None`` for now.

    Returns:
        E.g. ``"20261121T100000000000Z"``.

    Examples:
        >>> compact_utc(0)
        '19700101T000000000000Z'
    """
    return _as_utc(moment).strftime(_COMPACT)


def parse_utc(value: str) -> dt.datetime:
    """Parse ISO-8601 text (``...Z``, an offset, or naive meaning UTC) into an aware UTC datetime.

    Args:
        value: E.g. ``"2026-11-21T10:00:00.000000Z"``.

    Returns:
        The moment, in UTC.

    Raises:
        ValueError: The text is not ISO-8601.

    Examples:
        >>> parse_utc("2026-11-21T11:00:00+01:00").isoformat()
        '2026-11-21T10:00:00+00:00'
        >>> parse_utc("yesterday")
        Traceback (most recent call last):
        ...
        ValueError: 'yesterday' is not an ISO-8601 timestamp
    """
    try:
        parsed = dt.datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError as err:
        raise ValueError(f"{value!r} is not an ISO-8601 timestamp") from err
    return _as_utc(parsed)
