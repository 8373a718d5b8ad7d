"""A store as a MONAI datalist JSON: the Decathlon-style document MONAI's loader reads.

``{"training": [{"image", "label"}, ...], "validation": [...], "test": [...]}``, read by
``monai.data.load_decathlon_datalist(path, data_list_key="training")``. Paths point at the store's
own files (nothing is copied), relative to the JSON file's folder, which is where MONAI's loader
resolves them from by default. Sections come from the store's persisted splits when it has them
(``train`` → ``training``; ``val``/``validation`` → ``validation``; ``test`` → ``test``; any other
split keeps its name); without splits, labelled images are ``training`` and unlabelled ones
``test``. Empty sections are left out: MONAI's loader fails on ``"test": []``.

Examples:
    >>> section_for("val"), section_for("fold0")
    ('validation', 'fold0')
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..durable import atomic_write_bytes
from .case_export import class_names, export_cases
from .export_options import ExportSelection

if TYPE_CHECKING:
    from ..store.local import LocalDatastore

__all__ = ["export_datalist", "section_for"]

_SECTIONS = {"train": "training", "training": "training", "val": "validation"}
_SECTIONS |= {"validation": "validation", "test": "test", "testing": "test"}
_ORDER = ("training", "validation", "test")


def section_for(split: str) -> str:
    """The datalist section of a persisted split name."""
    return _SECTIONS.get(split, split)


def _relative(path: Path, base: Path) -> str:
    try:
        return Path(os.path.relpath(path.absolute(), base.absolute())).as_posix()
    except ValueError:  # another drive (Windows): keep it absolute
        return path.absolute().as_posix()


def export_datalist(
    store: LocalDatastore,
    out: str | os.PathLike[str],
    *,
    label_tag: str = "final",
    selection: ExportSelection | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Write the store's datalist JSON to ``out`` (a file), durably.

    Args:
        store: The store.
        out: The JSON file to write.
        label_tag: Which labels go in ``"label"``.
        selection: Which images (default: all).
        force: Replace an existing ``out``.

    Returns:
        The document written.

    Raises:
        FileExistsError: ``out`` exists and not ``force``.
        UnsupportedFormatError: Labels disagree on class names.
        ImageNotFoundError: ``selection`` names an unknown id.

    Example:
        >>> import tempfile, pathlib, numpy as np, nibabel as nib
        >>> from medstore.datastore import LocalDatastore
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.uint8), np.eye(4)), root / "c1.nii.gz")
        >>> doc = export_datalist(LocalDatastore(root), root / "datalist.json")
        >>> doc
        {'test': [{'image': 'c1.nii.gz'}]}
    """
    target = Path(out)
    if target.is_dir():
        raise IsADirectoryError(f"{target} is a folder; name the JSON file to write")
    if target.exists() and not force:
        raise FileExistsError(f"{target} already exists (use --force to replace it)")
    cases = export_cases(store, label_tag=label_tag, selection=selection)
    class_names(store, cases, label_tag=label_tag, source=target)
    from ..store.split_log import SplitLog

    live = SplitLog(store).assignments()
    use_splits = any(c.image_id in live for c in cases)
    base = target.parent
    sections: dict[str, list[dict[str, str]]] = {}
    for case in cases:
        entry = {"image": _relative(case.image_path, base)}
        if case.label_path is not None:
            entry["label"] = _relative(case.label_path, base)
        if use_splits:
            if case.image_id not in live:
                continue
            section = section_for(live[case.image_id].split)
        else:
            section = "training" if case.label_path is not None else "test"
        sections.setdefault(section, []).append(entry)
    order = [s for s in _ORDER if s in sections] + sorted(set(sections) - set(_ORDER))
    doc = {name: sections[name] for name in order}
    target.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    atomic_write_bytes(target, text.encode(), point="export")
    return doc
