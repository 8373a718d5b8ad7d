"""nnU-Net ``splits_final.json`` folds and the store's persisted split assignments.

Import: :func:`read_splits` turns the folds into ``{case: split}`` (``fold<k>``, the fold that
validates on the case, or ``train``/``val`` for a single fold). Export: :func:`persisted_folds`
turns the store's split log back into folds; :func:`make_folds` makes patient-grouped folds when
the store has none.

Examples:
    >>> make_folds({"a": "P1", "b": "P1", "c": "P2", "d": "P3"}, folds=2, seed=0)
    [{'train': ['c', 'd'], 'val': ['a', 'b']}, {'train': ['a', 'b'], 'val': ['c', 'd']}]
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ..store.split_log import SplitLog, seeded_order_key
from .case_import import ProblemReport

if TYPE_CHECKING:
    from ..store.local import LocalDatastore

__all__ = ["make_folds", "persisted_folds", "read_splits"]

_FOLD = re.compile(r"^fold(\d+)$")


def read_splits(path: Path, training: set[str], report: ProblemReport) -> dict[str, str]:
    """``{case: split name}`` from an nnU-Net ``splits_final.json``.

    Args:
        path: The file.
        training: The training case ids.
        report: Where problems go.

    Returns:
        ``fold<k>`` per case when there are several folds, ``train``/``val`` for a single one.
    """
    try:
        folds = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        report.add(f"{path.name} is not valid JSON: {err}")
        return {}
    if not isinstance(folds, list) or not all(isinstance(f, Mapping) for f in folds) or not folds:
        report.add(f"{path.name} must be a non-empty list of {{'train', 'val'}} objects")
        return {}
    out: dict[str, str] = {}
    for k, fold in enumerate(folds):
        for part in ("train", "val"):
            for case in fold.get(part, []):
                if case not in training:
                    report.add(f"{path.name} fold {k} {part}: {case!r} is not a training case")
    if len(folds) == 1:
        for part in ("train", "val"):
            for case in folds[0].get(part, []):
                if out.setdefault(str(case), part) != part:
                    report.add(f"{path.name}: {case!r} is in both train and val")
        return out
    for k, fold in enumerate(folds):
        for case in fold.get("val", []):
            if str(case) in out:
                report.add(f"{path.name}: {case!r} is validated in {out[str(case)]} and fold{k}")
            out.setdefault(str(case), f"fold{k}")
    return out


def make_folds(patients: Mapping[str, str], *, folds: int = 5, seed: int = 0) -> list[dict]:
    """Cross-validation folds keeping each patient's cases in one fold.

    Groups (patients) are taken largest first, in a seeded hash order, each into the fold with
    the fewest validation cases so far.

    Args:
        patients: ``{case id: patient key}`` (use the case id itself when unknown).
        folds: Number of folds (fewer when there are fewer patients).
        seed: Seed of the order.

    Returns:
        nnU-Net's ``[{"train": [...], "val": [...]}]``, ids sorted; ``[]`` under two patients.

    Example:
        See the module example.
    """
    groups: dict[str, list[str]] = {}
    for case, patient in patients.items():
        groups.setdefault(patient, []).append(case)
    k = min(folds, len(groups))
    if k < 2:
        return []
    val: list[list[str]] = [[] for _ in range(k)]
    for key in sorted(groups, key=lambda g: (-len(groups[g]), seeded_order_key(seed, g))):
        smallest = min(range(k), key=lambda i: (len(val[i]), i))
        val[smallest].extend(groups[key])
    every = sorted(patients)
    return [{"train": [c for c in every if c not in set(v)], "val": sorted(v)} for v in val]


def persisted_folds(store: LocalDatastore, training: list[str]) -> list[dict] | None:
    """The store's persisted splits of ``training`` as nnU-Net folds (``None``: none usable).

    Args:
        store: The store.
        training: The training image ids.

    Returns:
        One fold per ``fold<k>`` split, or one ``train``/``val`` fold; ``None`` when the store
        has no assignment of those images, or none of those forms.
    """
    wanted = set(training)
    live = {k: v.split for k, v in SplitLog(store).assignments().items() if k in wanted}
    if not live:
        return None
    names = set(live.values())
    if all(_FOLD.match(n) for n in names):
        order = sorted(names, key=lambda n: int(n[4:]))
        return [
            {
                "train": sorted(c for c in training if live.get(c) not in (None, name)),
                "val": sorted(c for c, n in live.items() if n == name),
            }
            for name in order
        ]
    if "train" in names:
        val_names = {"val", "validation"}
        return [
            {
                "train": sorted(c for c, n in live.items() if n == "train"),
                "val": sorted(c for c, n in live.items() if n in val_names),
            }
        ]
    return None
