"""Optional dependencies of the readers: import one, or say which extra installs it.

Examples:
    >>> optional_module("math", needs="computing", extra="none").sqrt(4.0)
    2.0
    >>> optional_module("no_such_module_here", needs="reading X needs Y", extra="x")
    Traceback (most recent call last):
    ...
    medstore.datastore.errors.UnsupportedFormatError: reading X needs Y: pip install 'medstore[x]'
"""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import UnsupportedFormatError

__all__ = ["optional_module"]


def optional_module(name: str, *, needs: str, extra: str) -> Any:
    """Import module ``name``, or raise saying what needs it and which extra installs it.

    Args:
        name: The module to import.
        needs: What needs it, e.g. ``"reading video files needs PyAV"``.
        extra: The medstore extra that installs it.

    Returns:
        The module.

    Raises:
        UnsupportedFormatError: The module cannot be imported.
    """
    try:
        return importlib.import_module(name)
    except ImportError as err:
        raise UnsupportedFormatError(f"{needs}: pip install 'medstore[{extra}]'") from err
