"""MONAI Label's ``label_info``: the class names of a label's voxel values, parsed in one place.

A label's info may carry ``label_info`` in either of two forms:

- a list of ``{"name": ..., "idx": ...}`` entries (what MONAI Label and medstore write);
- a mapping ``{name: idx}`` (what some exporters write).

**Tolerance** (the same for every reader: catalog queries, previews, exports, datasets): an entry
is *usable* when it has a name that is not ``None`` and an index that is an integer, a whole
float or integer text (``1``, ``1.0``, ``"1"``; ``True``, ``1.5``, ``"one"`` are not). Unusable
entries are never an error here: they are set aside in :attr:`LabelClasses.rejected` so that a
strict caller (an export) can report them, and a lenient one (a preview) simply ignores them. A
missing or malformed ``label_info`` (neither a list nor a mapping) has no classes and nothing
rejected.

Examples:
    >>> entries = [{"name": "bg", "idx": 0}, {"name": "liver", "idx": "1"}, 7]
    >>> parsed = parse_label_info({"label_info": entries})
    >>> parsed.pairs
    ((0, 'bg'), (1, 'liver'))
    >>> parsed.rejected
    (7,)
    >>> parse_label_info({"label_info": {"liver": 1, "tumour": 2}}).classes()
    {1: 'liver', 2: 'tumour'}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["LabelClasses", "parse_label_info"]


@dataclass(frozen=True)
class LabelClasses:
    """The usable and rejected entries of one ``label_info``.

    Attributes:
        pairs: ``(idx, name)`` of every usable entry, in their order, background (0) included.
        rejected: The entries that are not usable, as they were.
    """

    pairs: tuple[tuple[int, str], ...] = ()
    rejected: tuple[Any, ...] = ()

    def classes(self) -> dict[int, str]:
        """``{idx: name}`` without the background (index 0); a repeated index keeps its last name.

        Examples:
            >>> LabelClasses(((0, "bg"), (2, "kidney"))).classes()
            {2: 'kidney'}
        """
        return {idx: name for idx, name in self.pairs if idx != 0}

    def names(self) -> frozenset[str]:
        """Every usable class name, background included.

        Examples:
            >>> sorted(LabelClasses(((0, "bg"), (2, "kidney"))).names())
            ['bg', 'kidney']
        """
        return frozenset(name for _, name in self.pairs)


def _index(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def parse_label_info(info: Mapping[str, Any]) -> LabelClasses:
    """Parse the ``label_info`` of a label's info with the module's one tolerance.

    Args:
        info: A label's info dict (``store.get_label_info(...)``).

    Returns:
        The usable ``(idx, name)`` pairs and the rejected entries.

    Examples:
        >>> parse_label_info({}).pairs
        ()
        >>> parse_label_info({"label_info": [{"name": "liver"}]}).rejected
        ({'name': 'liver'},)
    """
    raw = info.get("label_info")
    entries: Iterable[tuple[Any, Any, Any]]
    if isinstance(raw, Mapping):
        entries = ((idx, name, {name: idx}) for name, idx in raw.items())
    elif isinstance(raw, list | tuple):
        entries = (
            (e.get("idx"), e.get("name"), e) if isinstance(e, Mapping) else (None, None, e)
            for e in raw
        )
    else:
        return LabelClasses()
    pairs: list[tuple[int, str]] = []
    rejected: list[Any] = []
    for idx, name, entry in entries:
        value = _index(idx)
        if value is None or name is None:
            rejected.append(entry)
        else:
            pairs.append((value, str(name)))
    return LabelClasses(tuple(pairs), tuple(rejected))
