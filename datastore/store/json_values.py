"""Info values stored faithfully as JSON: refused when JSON cannot hold them, exact when read.

medstore writes JSON with ``orjson`` (fast, byte-identical to MONAI Label's ``json.dumps`` for
ordinary content). Two kinds of values need more care:

* Written by medstore: NaN and infinities have no JSON form (``orjson`` would silently write
  ``null``), and very deep nesting cannot be written back; :func:`check_values` refuses both,
  naming the key, before anything is changed.
* Written by MONAI Label (Python's ``json``): ``NaN``/``Infinity`` tokens, which ``orjson``
  refuses to read, and integers beyond 64 bits, which it reads as floats. Such documents are
  read with Python's ``json`` (duplicate keys still refused), and from then on this process
  copies and writes JSON the exact, slower way, so that every value is written back as read.

Examples:
    >>> check_values({"dice": 0.9, "scores": [1, 2]}, where="image info")
    {'dice': 0.9, 'scores': [1, 2]}
    >>> check_values({"scores": [1, float("nan")]}, where="image info")
    Traceback (most recent call last):
    ...
    medstore.datastore.errors.InvalidValueError: image info 'scores[1]' is nan, not a finite \
number (JSON has no NaN or infinity)
    >>> loads_exact(b'{"big": 1180591620717411303424, "x": NaN}', source="m.json")["big"]
    1180591620717411303424
    >>> dump_json({"big": 2**70}, indent=True)
    b'{\\n  "big": 1180591620717411303424\\n}'
"""

from __future__ import annotations

import copy
import json
import math
import re
import threading
from collections.abc import Mapping
from typing import Any

import orjson

from ..errors import InvalidValueError, ManifestCorruptError

__all__ = ["MAX_DEPTH", "check_values", "deep_copy", "dump_json", "load_json", "loads_exact"]

# Deepest nesting an info value may have: far beyond any real metadata, well within what both
# orjson (254 levels for a whole document) and Python's json can write back.
MAX_DEPTH = 100
# Set once this process has read JSON holding NaN or infinity: from then on copies and writes
# take the exact path (orjson would turn those values into null).
_EXACT = threading.Event()
# A run of 19+ digits may be an integer beyond 64 bits, which orjson reads as a float.
_LONG_DIGITS = re.compile(rb"\d{19,}")


def _shown(path: str) -> str:
    return repr(path if len(path) <= 80 else path[:77] + "...")


def check_values(info: Mapping[str, Any], *, where: str) -> Mapping[str, Any]:
    """Refuse info that JSON cannot hold faithfully.

    Args:
        info: The info mapping a caller wants to store.
        where: What it is, for the message (``"image info"``, ``"label info"``).

    Returns:
        ``info`` itself.

    Raises:
        InvalidValueError: A NaN or infinite float, or nesting deeper than :data:`MAX_DEPTH`;
            the message names the key path (``scores[1].dice``).
    """
    stack: list[tuple[Any, str, int]] = [(info, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidValueError(
                f"{where} {_shown(path)} is {value}, not a finite number "
                "(JSON has no NaN or infinity)"
            )
        if isinstance(value, (dict, list, tuple)):
            if depth >= MAX_DEPTH:
                raise InvalidValueError(
                    f"{where} {_shown(path)} is nested deeper than {MAX_DEPTH} levels"
                )
            if isinstance(value, dict):
                items = [(f"{path}.{k}" if path else str(k), v) for k, v in value.items()]
            else:
                items = [(f"{path}[{i}]", v) for i, v in enumerate(value)]
            stack.extend((v, p, depth + 1) for p, v in items)
    return info


def loads_exact(raw: bytes, *, source: str) -> Any:
    """Parse JSON as Python's ``json`` does (NaN, infinity, big integers), refusing duplicate keys.

    Args:
        raw: The bytes.
        source: The file to name in errors.

    Returns:
        The parsed value.

    Raises:
        ManifestCorruptError: Not JSON, a duplicate key, or nested too deeply to read.
    """
    try:
        value = json.loads(raw, object_pairs_hook=_reject_duplicates)
    except RecursionError as err:
        raise ManifestCorruptError(f"manifest {source} is nested too deeply to read") from err
    except ValueError as err:
        raise ManifestCorruptError(f"manifest {source} is not valid JSON: {err}") from err
    if b"NaN" in raw or b"Infinity" in raw:
        _EXACT.set()
    return value


def load_json(raw: bytes) -> Any:
    """Parse one of medstore's own small JSON files (history and redo records) exactly.

    Args:
        raw: The bytes.

    Returns:
        The parsed value: ``orjson``'s, or Python's ``json``'s for NaN, infinity and integers
        beyond 64 bits.

    Raises:
        ValueError: Not JSON (a torn write).
    """
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)
    return json.loads(raw) if _LONG_DIGITS.search(raw) else value


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise ValueError(f"duplicate key {dup!r}")
    return result


def _dumps_python(value: Any, *, indent: bool) -> bytes:
    options: dict[str, Any] = {"indent": 2} if indent else {"separators": (",", ":")}
    try:
        return json.dumps(value, ensure_ascii=False, **options).encode()
    except UnicodeEncodeError:  # a lone surrogate: keep it as an escape Python reads back
        return json.dumps(value, **options).encode()


def dump_json(value: Any, *, indent: bool = False) -> bytes:
    """Serialise JSON-shaped data, every value as it is (big integers, NaN read from MONAI Label).

    Args:
        value: The data.
        indent: Two-space indentation (MONAI Label's ``json.dumps(indent=2)``); else compact.

    Returns:
        UTF-8 JSON bytes (``orjson``'s, unless a value needs Python's ``json``).
    """
    if not _EXACT.is_set():
        try:
            return orjson.dumps(value, option=orjson.OPT_INDENT_2 if indent else None)
        except orjson.JSONEncodeError:
            pass
    return _dumps_python(value, indent=indent)


def deep_copy(value: Any) -> Any:
    """A deep copy of JSON-shaped data (an order of magnitude faster than ``copy.deepcopy``)."""
    if not _EXACT.is_set():
        try:
            return orjson.loads(orjson.dumps(value))
        except orjson.JSONEncodeError:
            pass
    return copy.deepcopy(value)
