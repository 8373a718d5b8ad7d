"""Dataset splits: local seeded ratios, the store's persisted assignments, legacy tags.

Persisted assignments live in the store's split log (:class:`medstore.datastore.SplitLog`,
``.medstore/splits.jsonl``); this module only decides which images go in which part.

Example:
    >>> import tempfile
    >>> from medstore.datasets import VolumeDataset
    >>> from medstore.datastore import LocalDatastore
    >>> store = LocalDatastore(tempfile.mkdtemp())
    >>> parts = VolumeDataset(store).split(train=0.5, val=0.5, seed=0)
    >>> parts
    SplitResult(train=0, val=0; source='local')
"""

from __future__ import annotations

import math
import secrets
import warnings
from collections.abc import Collection, Iterator, Mapping
from typing import Any, Generic, Protocol, Self, TypeVar

from medstore.datastore import SplitLog, seeded_order_key
from medstore.datastore.timestamps import iso_utc

from .item.label_space import LabelSpace
from .item_index import ItemIndex

__all__ = ["SplitResult", "SplittableDataset", "split_dataset"]


class SplittableDataset(Protocol):
    """What a split needs of a dataset (every :class:`~medstore.datasets.StoreDataset` has it)."""

    split_name: str | None
    split_source: str | None
    split_as_of_timestamp: str | None

    @property
    def store(self) -> Any: ...
    @property
    def index(self) -> ItemIndex: ...
    def label_space(self) -> LabelSpace: ...
    def keep_images(self, image_ids: Collection[str]) -> Self: ...
    def __len__(self) -> int: ...


D = TypeVar("D", bound=SplittableDataset)


class SplitResult(Mapping[str, D], Generic[D]):
    """The parts of a split: a read-only mapping of name → dataset, savable to the store.

    Attributes:
        source: ``"local"``, ``"store"`` or ``"tags"``.
        as_of_timestamp: The replay time of a store split, else ``None``.

    Example:
        >>> import tempfile, pathlib, numpy as np, nibabel as nib
        >>> from medstore.datastore import LocalDatastore
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> image = nib.Nifti1Image(np.zeros((6, 5, 4), np.int16), np.eye(4))
        >>> for n in range(4):
        ...     nib.save(image, root / f"ct_{n}.nii.gz")
        >>> store = LocalDatastore(root)
        >>> from medstore.datasets import VolumeDataset
        >>> parts = VolumeDataset(store).split(train=0.5, val=0.5, seed=1)
        >>> parts.save()
        4
        >>> VolumeDataset(store).split()  # the saved assignments
        SplitResult(train=2, val=2; source='store')
    """

    def __init__(
        self, parts: dict[str, D], *, source: str, as_of_timestamp: str | None, store: Any
    ) -> None:
        self._parts = dict(parts)
        self.source = source
        self.as_of_timestamp = as_of_timestamp
        self._store = store

    def __getitem__(self, name: str) -> D:
        return self._parts[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._parts)

    def __len__(self) -> int:
        return len(self._parts)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={len(v)}" for k, v in self._parts.items())
        return f"SplitResult({sizes}; source={self.source!r})"

    def assignments(self) -> dict[str, str]:
        """``{image_id: part name}`` of this result.

        Returns:
            The mapping.

        Raises:
            ValueError: An image is in two parts (e.g. two ``split:`` tags).
        """
        out: dict[str, str] = {}
        for name, part in self._parts.items():
            for record in part.index.image_records():
                image_id = record.image_id
                if out.setdefault(image_id, name) != name:
                    raise ValueError(
                        f"image {image_id!r} is in parts {out[image_id]!r} and {name!r}"
                    )
        return out

    def save(self, *, force: bool = False) -> int:
        """Append these assignments to the store's split log (``.medstore/splits.jsonl``).

        Images already assigned to the same part are left alone. An image assigned to another
        part is an error unless ``force``, which soft-deletes the old record (a ``delete``
        event) and appends the new one, so older states stay replayable by timestamp. The
        append happens under the store lock and is fsynced before returning.

        Args:
            force: Re-assign images that already belong to another part.

        Returns:
            The number of new assignments written.

        Raises:
            ReadOnlyError: The store is read-only.
            ValueError: A conflicting assignment exists and ``force`` is false.
        """
        return SplitLog(self._store).save(self.assignments(), source=self.source, force=force)


def _check_ratios(ratios: Mapping[str, float]) -> None:
    if not ratios:
        raise ValueError("give split ratios, e.g. split(train=0.8, val=0.2)")
    for name, ratio in ratios.items():
        if not isinstance(ratio, (int, float)) or not math.isfinite(ratio) or ratio <= 0:
            raise ValueError(f"split ratio {name}={ratio!r} must be a positive number")
    total = sum(ratios.values())
    if abs(total - 1.0) > 0.01:
        raise ValueError(f"split ratios must sum to 1 (±0.01), got {total:.4f}")


def _local_parts(
    ds: SplittableDataset, ratios: Mapping[str, float], seed: int | None, by_patient: bool
) -> dict[str, set[str]]:
    """Assign whole groups (images or patients) to parts in a seeded, hash-defined order."""
    groups: dict[str, list[str]] = {}
    for record in ds.index.image_records():
        patient = record.info.get("patient_id") if by_patient else None
        key = f"patient:{patient}" if patient not in (None, "") else f"image:{record.image_id}"
        groups.setdefault(key, []).append(record.image_id)
    effective_seed = secrets.randbits(63) if seed is None else int(seed)
    order = sorted(groups, key=lambda k: seeded_order_key(effective_seed, k))
    total_images = sum(len(g) for g in groups.values())
    total_ratio = sum(ratios.values())
    names = list(ratios)
    bounds, acc = [], 0.0
    for name in names:
        acc += ratios[name] / total_ratio
        bounds.append(acc * total_images)
    parts: dict[str, set[str]] = {name: set() for name in names}
    start = 0
    for key in order:
        size = len(groups[key])
        center = start + size / 2
        j = next((n for n, b in enumerate(bounds) if center < b), len(names) - 1)
        parts[names[j]].update(groups[key])
        start += size
    return parts


def _report_unassigned(unassigned: list[str], *, total: int, found: bool) -> None:
    """Refuse a persisted split that assigns nothing; warn about images it leaves out."""
    if not unassigned:
        return
    shown = ", ".join(repr(i) for i in unassigned[:5]) + (" ..." if len(unassigned) > 5 else "")
    if not found:
        raise ValueError(
            f"none of the dataset's {total} image(s) has a persisted split assignment "
            f"({shown}); split them with ratios and save() the result"
        )
    warnings.warn(
        f"{len(unassigned)} image(s) of {total} have no persisted split assignment and are in "
        f"no part: {shown}; split them with ratios and save() the result",
        UserWarning,
        stacklevel=4,
    )


def split_dataset(
    ds: D,
    *,
    seed: int | None,
    use_project_splits: bool | None,
    use_server_splits: bool | None,
    as_of_timestamp: str | None,
    by_patient: bool,
    ratios: Mapping[str, float],
) -> SplitResult[D]:
    """Split ``ds`` (see :meth:`StoreDataset.split`).

    Modes: local ratios (``seed``, ``by_patient``); persisted store assignments
    (``use_project_splits``, replayable with ``as_of_timestamp``); legacy ``split:<name>`` image
    tags (``use_server_splits``, deprecated). With no explicit mode: ratios → local; else
    persisted assignments if the log has any (or ``as_of_timestamp`` is given); else tags.

    Args:
        ds: The dataset.
        seed: Local-split seed (``None``: random).
        use_project_splits: Force/forbid the store mode.
        use_server_splits: Force/forbid the tag mode (deprecated).
        as_of_timestamp: ISO-8601 UTC replay time (store mode only).
        by_patient: Group by ``info["patient_id"]`` (local mode only).
        ratios: Part name → fraction.

    Returns:
        The parts, each carrying ``split_name``, ``split_source``, ``split_as_of_timestamp``.

    Raises:
        ValueError: Invalid ratios, conflicting modes, or no assignments found.
    """
    if use_project_splits and use_server_splits:
        raise ValueError("use_project_splits and use_server_splits are exclusive")
    if ratios and (use_project_splits or use_server_splits):
        raise ValueError("split ratios cannot be combined with persisted or tag splits")
    if as_of_timestamp is not None and (ratios or use_server_splits):
        raise ValueError("as_of_timestamp applies to persisted (project) splits only")
    if by_patient and not ratios:
        raise ValueError("by_patient applies to local ratio splits only")
    if use_server_splits:
        warnings.warn(
            "use_server_splits (split:* tags) is deprecated; persist splits with "
            "SplitResult.save() and use use_project_splits",
            DeprecationWarning,
            stacklevel=3,
        )
    if ratios:
        mode = "local"
    elif use_project_splits or (
        use_project_splits is None
        and not use_server_splits
        and (as_of_timestamp is not None or SplitLog(ds.store).assignments())
    ):
        mode = "store"
    else:
        mode = "tags"

    as_of: str | None = None
    parts: dict[str, set[str]]
    if mode == "local":
        _check_ratios(ratios)
        parts = _local_parts(ds, ratios, seed, by_patient)
    elif mode == "store":
        as_of = as_of_timestamp or iso_utc()
        log = SplitLog(ds.store)
        live = log.assignments(as_of)
        if not live:
            raise ValueError(f"no split assignments in {log.path} as of {as_of}")
        parts = {}
        unassigned: list[str] = []
        for record in ds.index.image_records():
            hit = live.get(record.image_id)
            if hit is not None:
                parts.setdefault(hit.split, set()).add(record.image_id)
            else:
                unassigned.append(record.image_id)
        _report_unassigned(unassigned, total=len(ds.index.image_records()), found=bool(parts))
        parts = dict(sorted(parts.items()))
    else:
        parts = {}
        for record in ds.index.image_records():
            for tag in record.tags:
                if tag.startswith("split:") and len(tag) > 6:
                    parts.setdefault(tag[6:], set()).add(record.image_id)
        if not parts:
            raise ValueError("no image has a 'split:<name>' tag; give ratios to split locally")
        parts = dict(sorted(parts.items()))

    ds.label_space()  # one class list shared by every part
    result: dict[str, D] = {}
    for name, keep in parts.items():
        part = ds.keep_images(keep)
        part.split_name, part.split_source, part.split_as_of_timestamp = name, mode, as_of
        result[name] = part
    return SplitResult(result, source=mode, as_of_timestamp=as_of, store=ds.store)
