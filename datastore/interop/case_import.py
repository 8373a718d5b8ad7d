"""Validate-then-import of segmentation case folders (Decathlon, nnU-Net): one report, no half.

Both importers turn their folder into a list of :class:`CaseSource` and hand it here. Every case
is checked first — files present and readable, ids valid and unique and not already in the store,
labels on their image's grid (canonical shape and affine) — and every problem found goes into one
:class:`~medstore.datastore.UnsupportedFormatError` whose message lists them all. Only a clean plan
is imported, inside one ``store.batch()``: one manifest write, and an exception anywhere (disk
full, Ctrl-C) writes nothing.

With ``resume=True`` an import can be run again after it was killed: a case whose image (and
label) is already in the store with the same content counts as done and is left alone, what is
missing is added, and a case stored under its id with other content is still refused. Single
files are compared by their SHA-256, merged images by their voxels and affine.

Several single-channel files of one case (nnU-Net's ``_0000``, ``_0001``...) are merged into one
4-D NIfTI (channels on the fourth axis, as NIfTI stores 4-D data); such merged images are always
copied, even with ``link=True``. Labels are always copied (the store keeps their history).

Examples:
    >>> import tempfile, pathlib, numpy as np, nibabel as nib
    >>> from medstore.datastore import LocalDatastore
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.int16), np.eye(4)), tmp / "a.nii.gz")
    >>> store = LocalDatastore(tmp / "store")
    >>> cases = [CaseSource("a", (tmp / "a.nii.gz",), None)]
    >>> check_cases(cases, store=store, source=tmp)
    >>> import_cases(store, cases)
    ['a']
    >>> check_cases(cases, store=store, source=tmp, resume=True)  # the same content: done
    >>> complete_cases(store, cases)
    ['a']
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError

from ..errors import DatastoreError, UnsupportedFormatError
from ..ids import derive_id, validate_id
from ..imaging import check_label_geometry, probe_image
from ..store.staging import file_checksum

if TYPE_CHECKING:
    from ..store.local import LocalDatastore

__all__ = [
    "CaseSource",
    "ProblemReport",
    "check_cases",
    "complete_cases",
    "import_cases",
    "load_nifti",
    "merge_channels",
]

_MAX_SHOWN = 200  # problems listed in one report


@dataclass(frozen=True)
class CaseSource:
    """One case of a dataset folder.

    Args:
        case_id: The image id it gets in the store.
        images: One image file, or one single-channel file per channel (merged into 4-D).
        label: The reference label file (saved under tag ``final``), or ``None``.
        info: Extra image info (source format, modality, channel names...).
    """

    case_id: str
    images: tuple[Path, ...]
    label: Path | None
    info: Mapping[str, Any] = field(default_factory=dict)


class ProblemReport:
    """Collects every problem of a dataset folder, then raises them all at once.

    Args:
        source: The folder being read (named in the message).
        what: What it should be, e.g. ``"Decathlon task folder"``.
        action: ``"import"`` or ``"export"`` (for the message).

    Example:
        >>> report = ProblemReport(Path("/data/Task01"), "Decathlon task folder")
        >>> report.add("imagesTr/a.nii.gz: missing")
        >>> report.raise_if_any()
        Traceback (most recent call last):
        ...
        medstore.datastore.errors.UnsupportedFormatError: cannot import /data/Task01 ...
    """

    def __init__(self, source: Path, what: str, *, action: str = "import") -> None:
        self.source = source
        self.what = what
        self.action = action
        self.problems: list[str] = []

    def add(self, problem: str) -> None:
        """Record one problem (one line)."""
        self.problems.append(" ".join(str(problem).split()))

    def __bool__(self) -> bool:
        return bool(self.problems)

    def raise_if_any(self) -> None:
        """Raise the report if it holds any problem.

        Raises:
            UnsupportedFormatError: Listing every problem, one per line; nothing was imported.
        """
        if not self.problems:
            return
        shown = self.problems[:_MAX_SHOWN]
        more = len(self.problems) - len(shown)
        lines = [
            f"cannot {self.action} {self.source} ({self.what}): {len(self.problems)} "
            f"problem(s); nothing was {self.action}ed:",
            *(f"  - {p}" for p in shown),
        ]
        if more:
            lines.append(f"  ... and {more} more")
        raise UnsupportedFormatError("\n".join(lines))


def _shown(path: Path, source: Path) -> str:
    try:
        return str(path.relative_to(source))
    except ValueError:
        return str(path)


def _check_channels(case: CaseSource, report: ProblemReport, source: Path) -> bool:
    """Every channel file readable, single-channel, on the first one's grid."""
    headers = []
    for path in case.images:
        try:
            headers.append(probe_image(path))
        except (DatastoreError, OSError) as err:
            report.add(f"case {case.case_id!r}: {_shown(path, source)} is unreadable: {err}")
            return False
    first = headers[0]
    ok = True
    for path, header in zip(case.images[1:], headers[1:], strict=True):
        if header.channels != 1 or header.shape != first.shape:
            report.add(
                f"case {case.case_id!r}: channel file {_shown(path, source)} has shape "
                f"{header.array_shape}, the first channel {first.array_shape}"
            )
            ok = False
        elif np.abs(header.affine_array - first.affine_array).max() > 1e-3:
            report.add(
                f"case {case.case_id!r}: channel file {_shown(path, source)} has another affine "
                "than the first channel"
            )
            ok = False
    return ok


def _same_image(store: LocalDatastore, case: CaseSource) -> bool:
    """Whether the stored image of ``case.case_id`` holds the case's image (merged or not)."""
    stored = Path(store.get_image_uri(case.case_id))
    if len(case.images) == 1:
        recorded = store.get_image_info(case.case_id).get("checksum")
        return file_checksum(case.images[0]) == (recorded or file_checksum(stored))
    merged, kept = _merged_image(case.images), load_nifti(stored)
    return (
        merged.shape == kept.shape
        and np.allclose(merged.affine, kept.affine, atol=1e-6)
        and np.array_equal(np.asanyarray(merged.dataobj), np.asanyarray(kept.dataobj))
    )


def _same_label(store: LocalDatastore, image_id: str, label: Path, tag: str) -> bool:
    recorded = store.get_label_info(image_id, tag).get("checksum")
    return file_checksum(label) == (recorded or file_checksum(store.get_label_uri(image_id, tag)))


def _stored_differences(
    store: LocalDatastore, case: CaseSource, *, tag: str = "final"
) -> list[str]:
    """What of ``case`` (its files exist) is in the store with other content: one line per part."""
    if not store.has_image(case.case_id):
        return []
    problems = []
    try:
        if not _same_image(store, case):
            problems.append("an image of that id with other content is already in the store")
        labels = store.get_labels_by_image_id(case.case_id)
        if case.label and tag in labels and not _same_label(store, case.case_id, case.label, tag):
            problems.append(f"its {tag!r} label in the store has other content")
    except (DatastoreError, OSError, ImageFileError) as err:
        problems.append(f"its stored image or label cannot be compared: {err}")
    return [f"case {case.case_id!r}: {problem}" for problem in problems]


def _check_case(
    case: CaseSource, store: LocalDatastore, report: ProblemReport, source: Path, resume: bool
) -> None:
    try:
        validate_id(case.case_id)
    except DatastoreError as err:
        report.add(f"case {case.case_id!r}: not a valid image id ({err})")
        return
    if not resume and store.has_image(case.case_id):
        report.add(f"case {case.case_id!r}: an image of that id is already in the store")
    missing = [p for p in (*case.images, *([case.label] if case.label else [])) if not p.is_file()]
    for path in missing:
        report.add(f"case {case.case_id!r}: file {_shown(path, source)} is missing")
    if missing:
        return
    if resume:
        for problem in _stored_differences(store, case):
            report.add(problem)
    if len(case.images) == 1 and derive_id(case.images[0].name, store.extensions) is None:
        report.add(
            f"case {case.case_id!r}: {case.images[0].name} matches none of the store's "
            f"patterns {list(store.extensions)}"
        )
        return
    if not _check_channels(case, report, source) or case.label is None:
        return
    try:
        check_label_geometry(case.label, case.images[0])
    except (DatastoreError, OSError) as err:
        text = str(err).replace(str(case.label), _shown(case.label, source))
        report.add(f"case {case.case_id!r}: label does not match its image: {text}")


def check_cases(
    cases: Sequence[CaseSource],
    *,
    store: LocalDatastore,
    source: Path,
    report: ProblemReport | None = None,
    resume: bool = False,
) -> None:
    """Check every case; raise one report listing every problem found.

    Args:
        cases: The cases to import.
        store: The destination store (ids must be new to it, files must match its patterns).
        source: The dataset folder (for relative names in messages).
        report: A report that may already hold the format's own problems.
        resume: Accept ids already in the store whose image and label hold the same content
            (an earlier run of the import); other content under such an id is still a problem.

    Raises:
        UnsupportedFormatError: Listing every problem (of ``report`` and of the cases).
    """
    report = report if report is not None else ProblemReport(source, "dataset folder")
    counts = Counter(c.case_id for c in cases)
    for case_id, count in sorted(counts.items()):
        if count > 1:
            report.add(f"case id {case_id!r} occurs {count} times")
    for case in cases:
        _check_case(case, store, report, source, resume)
    report.raise_if_any()


def complete_cases(
    store: LocalDatastore, cases: Sequence[CaseSource], *, tag: str = "final"
) -> list[str]:
    """The ids of the cases whose image and label (if any) are both in the store already.

    Meant after :func:`check_cases` with ``resume=True``, which checked that their content is
    the same: such cases are done and a resumed import leaves them alone.

    Args:
        store: The store.
        cases: The cases.
        tag: The tag labels are saved under.

    Returns:
        Those ids, in the cases' order.
    """
    return [
        case.case_id
        for case in cases
        if store.has_image(case.case_id)
        and (case.label is None or tag in store.get_labels_by_image_id(case.case_id))
    ]


def load_nifti(path: str | os.PathLike[str]) -> nib.Nifti1Image:
    """Open a NIfTI file lazily (header now, voxels on access).

    Args:
        path: A ``.nii``/``.nii.gz`` file.

    Returns:
        The image.
    """
    return cast(nib.Nifti1Image, nib.load(os.fspath(path)))


def merge_channels(files: Sequence[Path], dest: Path) -> None:
    """Stack single-channel NIfTI files into one 4-D NIfTI (channel = fourth voxel axis).

    The first file's affine and header (spacing, units) are kept; files are stacked in order.

    Args:
        files: Same-grid single-channel files (``_0000``, ``_0001``...).
        dest: The 4-D ``.nii``/``.nii.gz`` to write.
    """
    nib.save(_merged_image(files), os.fspath(dest))


def _merged_image(files: Sequence[Path]) -> nib.Nifti1Image:
    """Single-channel files stacked into one 4-D image in memory (see :func:`merge_channels`)."""
    first = load_nifti(files[0])
    arrays = [np.asanyarray(first.dataobj)]
    arrays += [np.asanyarray(load_nifti(p).dataobj) for p in files[1:]]
    dtype = np.result_type(*arrays)
    data = np.stack([a.astype(dtype, copy=False) for a in arrays], axis=-1)
    header = first.header.copy()
    header.set_data_dtype(dtype)
    image = nib.Nifti1Image(data, first.affine, header)
    image.header.set_xyzt_units(*first.header.get_xyzt_units())
    return image


def import_cases(
    store: LocalDatastore,
    cases: Sequence[CaseSource],
    *,
    label_info: Sequence[Mapping[str, Any]] = (),
    label_extra: Mapping[str, Any] | None = None,
    link: bool = False,
    tag: str = "final",
    resume: bool = False,
) -> list[str]:
    """Import checked cases in one transaction (all or nothing).

    Args:
        store: The destination store.
        cases: Cases that passed :func:`check_cases`.
        label_info: MONAI Label ``label_info`` (``[{"name", "idx"}]``) given to every label.
        label_extra: Further label info.
        link: Symlink single-file images instead of copying them.
        tag: The label tag.
        resume: Leave alone an image or label already in the store with the same content (it
            is compared again under the store lock), add what is missing.

    Returns:
        The cases' image ids, in order (with ``resume``, those that were there already too).

    Raises:
        UnsupportedFormatError: With ``resume``, a case is in the store with other content
            (nothing was imported).
    """
    ids: list[str] = []
    with tempfile.TemporaryDirectory(prefix="medstore-import-") as tmp, store.batch():
        for case in cases:
            present = resume and store.has_image(case.case_id)
            if present:
                problems = _stored_differences(store, case, tag=tag)
                if problems:
                    raise UnsupportedFormatError("; ".join(problems) + "; nothing was imported")
                ids.append(case.case_id)
            else:
                ids.append(_add_image(store, case, Path(tmp), link=link))
            labelled = present and tag in store.get_labels_by_image_id(case.case_id)
            if case.label is not None and not labelled:
                extra = {**(label_extra or {}), "label_info": [dict(c) for c in label_info]}
                store.save_label(case.case_id, case.label, tag, extra)
    return ids


def _add_image(store: LocalDatastore, case: CaseSource, tmp: Path, *, link: bool) -> str:
    source, linked = case.images[0], link and len(case.images) == 1
    info = dict(case.info)
    if len(case.images) > 1:
        source = tmp / f"{case.case_id}.nii.gz"
        merge_channels(case.images, source)
        info["merged_from"] = [p.name for p in case.images]
    return store.add_image(case.case_id, source, info, link=linked)
