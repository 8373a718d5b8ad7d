"""nnU-Net v2 raw dataset folders: load one into a store, export a store as one (CV folds too).

A raw dataset folder holds ``dataset.json`` (``channel_names`` ``{"0": "CT"}``, ``labels``
``{"background": 0, "liver": 1}``, ``numTraining``, ``file_ending``), ``imagesTr/{case}_{XXXX}
{file_ending}`` (one file per channel), ``labelsTr/{case}{file_ending}`` and optionally
``imagesTs/``. Import: each training case becomes an image with a ``final`` label whose
``label_info`` names the classes (background excluded; region labels, lists of values, are kept in
the label info as ``nnunet_regions``). A case with several channel files is merged into one 4-D
NIfTI, channels on the fourth axis (such merged images are always copied, even with ``--link``).
A ``splits_final.json`` next to ``dataset.json`` (nnU-Net keeps it in the preprocessed folder:
copy it over or pass ``splits_file``) becomes persisted split assignments in the store's split
log (:class:`~medstore.datastore.SplitLog`, read by ``datasets``' ``split()``): with several folds
each case is assigned ``fold<k>``, the fold that validates on it; a single fold gives ``train``
and ``val``. Everything is checked first; the problems found are reported together and nothing is
imported. The split log is appended after the images are committed, so an import is resumable:
run again after a kill, it leaves the cases already in the store with the same content alone, adds
what is missing and then the split assignments (a case stored with other content is refused).

Export writes ``dataset.json``, ``imagesTr/{id}_0000.nii.gz`` (one file per channel),
``labelsTr/{id}.nii.gz``, ``imagesTs/`` for unlabelled images and ``splits_final.json``: from the
persisted splits when they exist (``fold<k>`` assignments, or ``train``/``val``), else ``folds``
folds with every ``info["patient_id"]`` kept inside one fold.

Examples:
    >>> make_folds({"a": "P1", "b": "P1", "c": "P2", "d": "P3"}, folds=2, seed=0)
    [{'train': ['c', 'd'], 'val': ['a', 'b']}, {'train': ['a', 'b'], 'val': ['c', 'd']}]
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..store.split_log import SplitLog
from .case_export import ExportWriter, class_names, export_cases
from .case_import import CaseSource, ProblemReport, check_cases, complete_cases, import_cases
from .decathlon import load_dataset_json
from .export_options import (
    ChannelChoice,
    ExportSelection,
    channel_count_problem,
    resolve_channel_names,
)
from .export_options import progress as export_progress
from .nnunet_splits import make_folds, persisted_folds, read_splits

if TYPE_CHECKING:
    from ..store.local import LocalDatastore

__all__ = ["NnUNetImport", "export_nnunet", "import_nnunet", "make_folds", "read_nnunet"]

_WHAT = "nnU-Net raw dataset"
_CHANNEL = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")


@dataclass(frozen=True)
class NnUNetImport:
    """What :func:`import_nnunet` did (or, from :func:`read_nnunet`, would do).

    Attributes:
        image_ids: The images (training cases, then test cases).
        labelled: How many got a ``final`` label.
        label_info: The classes given to every label.
        assignments: ``{image_id: split name}`` from ``splits_final.json`` (``{}`` when absent).
        splits_saved: How many assignments were appended to the split log.
        regions: nnU-Net region labels (``{name: [values]}``), kept in the label info.
        cases: The planned cases.
        already_present: Cases whose image and label were in the store already with the same
            content (an earlier, interrupted run of the import): left alone.
    """

    image_ids: list[str]
    labelled: int
    label_info: list[dict[str, Any]]
    assignments: dict[str, str] = field(default_factory=dict)
    splits_saved: int = 0
    regions: dict[str, Any] = field(default_factory=dict)
    cases: list[CaseSource] = field(default_factory=list, repr=False)
    already_present: list[str] = field(default_factory=list)


def _label_info(labels: Any, report: ProblemReport) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    if not isinstance(labels, Mapping):
        report.add("dataset.json labels is missing or not an object")
        return [], {}
    classes, regions = [], {}
    for name, value in labels.items():
        if isinstance(value, list | tuple):
            regions[str(name)] = list(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            if value != 0:
                classes.append({"name": str(name), "idx": value})
        else:
            report.add(f"dataset.json labels: {name!r} has value {value!r}, not an integer")
    return sorted(classes, key=lambda c: c["idx"]), regions


def _channels(data: Mapping[str, Any], report: ProblemReport) -> list[str]:
    raw = data.get("channel_names", data.get("modality"))
    if not isinstance(raw, Mapping) or not raw:
        report.add("dataset.json channel_names is missing or empty")
        return []
    try:
        keys = sorted(raw, key=int)
    except ValueError:
        report.add("dataset.json channel_names keys must be channel numbers")
        return []
    if [int(k) for k in keys] != list(range(len(keys))):
        report.add(f"dataset.json channel_names keys {keys} are not 0..{len(keys) - 1}")
    return [str(raw[k]) for k in keys]


def _group(
    folder: Path, ending: str, channels: int, report: ProblemReport
) -> dict[str, list[Path]]:
    """``{case: [channel files]}`` of an images folder, each case checked for all channels."""
    found: dict[str, dict[int, Path]] = {}
    if not folder.is_dir():
        return {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.name.endswith(ending):
            continue
        match = _CHANNEL.match(path.name[: -len(ending)])
        if match is None:
            report.add(f"{folder.name}/{path.name}: not named <case>_<XXXX>{ending}")
            continue
        found.setdefault(match["case"], {})[int(match["channel"])] = path
    out = {}
    for case, files in sorted(found.items()):
        missing = [f"{case}_{c:04d}{ending}" for c in range(channels) if c not in files]
        extra = sorted(c for c in files if c >= channels)
        if missing:
            report.add(f"case {case!r}: channel file(s) {', '.join(missing)} missing")
        if extra:
            report.add(f"case {case!r}: channel(s) {extra} beyond the {channels} channel_names")
        out[case] = [files[c] for c in sorted(files) if c < channels]
    return out


def read_nnunet(
    src: str | os.PathLike[str],
    store: LocalDatastore,
    *,
    splits_file: str | os.PathLike[str] | None = None,
) -> NnUNetImport:
    """Read and check an nnU-Net v2 raw dataset against a store, importing nothing.

    Args:
        src: The dataset folder (``DatasetXXX_Name``).
        store: The destination store.
        splits_file: A ``splits_final.json`` (default: the one in ``src``, if any).

    Returns:
        The plan.

    Raises:
        UnsupportedFormatError: Every problem found, in one message.
    """
    source = Path(src).absolute()
    report = ProblemReport(source, _WHAT)
    data = load_dataset_json(source / "dataset.json", report)
    cases: list[CaseSource] = []
    label_info: list[dict[str, Any]] = []
    assignments: dict[str, str] = {}
    regions: dict[str, Any] = {}
    if data:
        label_info, regions = _label_info(data.get("labels"), report)
        names = _channels(data, report)
        ending = data.get("file_ending")
        if not isinstance(ending, str) or not ending.startswith("."):
            report.add(f"dataset.json file_ending {ending!r} is missing or invalid")
            ending = ".nii.gz"
        info: dict[str, Any] = {"source_format": "nnunet"}
        if len(names) == 1:
            info["modality"] = names[0]
        elif names:
            info["channel_names"] = names
        train = _group(source / "imagesTr", ending, max(len(names), 1), report)
        labels_dir = source / "labelsTr"
        label_files = {
            p.name[: -len(ending)]
            for p in (labels_dir.iterdir() if labels_dir.is_dir() else [])
            if p.name.endswith(ending) and not p.name.startswith(".")
        }
        for case in sorted(label_files - set(train)):
            report.add(f"labelsTr/{case}{ending}: no images for this case in imagesTr")
        for case, files in train.items():
            cases.append(CaseSource(case, tuple(files), labels_dir / f"{case}{ending}", info))
        declared = data.get("numTraining")
        if declared != len(train):
            report.add(f"dataset.json numTraining is {declared!r} but imagesTr has {len(train)}")
        test = _group(source / "imagesTs", ending, max(len(names), 1), report)
        cases += [CaseSource(case, tuple(files), None, info) for case, files in test.items()]
        splits = Path(splits_file) if splits_file else source / "splits_final.json"
        if splits_file and not splits.is_file():
            report.add(f"splits file {splits} is missing")
        elif splits.is_file():
            assignments = read_splits(splits, set(train), report)
    check_cases(cases, store=store, source=source, report=report, resume=True)
    labelled = sum(c.label is not None for c in cases)
    done = complete_cases(store, cases)
    ids = [c.case_id for c in cases]
    return NnUNetImport(ids, labelled, label_info, assignments, 0, regions, cases, done)


def import_nnunet(
    src: str | os.PathLike[str],
    store: LocalDatastore,
    *,
    link: bool = False,
    splits_file: str | os.PathLike[str] | None = None,
) -> NnUNetImport:
    """Import an nnU-Net v2 raw dataset: all cases or, on any problem, none; resumable.

    Images and labels are committed in one transaction, then the split assignments are
    appended. Run again after an interruption, the import completes what is missing: cases
    already in the store with the same content are left alone (``already_present``).

    Args:
        src: The dataset folder.
        store: The destination store.
        link: Symlink single-channel images instead of copying them (labels and merged
            multi-channel images are copied).
        splits_file: A ``splits_final.json`` (default: the one in ``src``, if any).

    Returns:
        What was imported.

    Raises:
        UnsupportedFormatError: The folder has problems, or a case is in the store with other
            content (all listed); nothing was imported.
    """
    plan = read_nnunet(src, store, splits_file=splits_file)
    extra: dict[str, Any] = {"source_format": "nnunet"}
    if plan.regions:
        extra["nnunet_regions"] = plan.regions
    ids = import_cases(
        store, plan.cases, label_info=plan.label_info, label_extra=extra, link=link, resume=True
    )
    saved = (
        SplitLog(store).save(plan.assignments, source="nnunet", force=True)
        if plan.assignments
        else 0
    )
    return NnUNetImport(
        ids,
        plan.labelled,
        plan.label_info,
        plan.assignments,
        saved,
        plan.regions,
        plan.cases,
        plan.already_present,
    )


def export_nnunet(
    store: LocalDatastore,
    out: str | os.PathLike[str],
    *,
    label_tag: str = "final",
    folds: int = 5,
    seed: int = 0,
    force: bool = False,
    selection: ExportSelection | None = None,
    channels: ChannelChoice | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Write a store as an nnU-Net v2 raw dataset folder (plus ``splits_final.json``).

    Args:
        store: The store.
        out: The dataset folder to create (name it ``DatasetXXX_Name`` for nnU-Net).
        label_tag: Which labels are the training labels.
        folds: Folds to make when the store has no persisted splits.
        seed: Seed of those folds.
        force: Write into a non-empty folder.
        selection: Which images (default: all).
        channels: The ``channel_names`` (default: from the images' info; guessed with a
            warning when it has none: nnU-Net normalises ``"CT"`` differently).
        progress: Show a progress bar on stderr (on a terminal).

    Returns:
        The ``dataset.json`` written.

    Raises:
        FileExistsError: ``out`` is not empty and not ``force``.
        UnsupportedFormatError: Mixed channel counts (the images of each count named),
            conflicting or non-consecutive classes (nnU-Net needs labels 0..N); all listed,
            nothing written, ``out`` not created.
        ImageNotFoundError: ``selection`` names an unknown id.
    """
    cases = export_cases(store, label_tag=label_tag, selection=selection)
    report = ProblemReport(store.root, f"store, as an {_WHAT}", action="export")
    mixed = channel_count_problem(cases)
    if mixed:
        report.add(mixed)
    report.raise_if_any()
    labels = class_names(store, cases, label_tag=label_tag, source=Path(out))
    if sorted(labels) != list(range(1, len(labels) + 1)):
        report.add(f"class indices {sorted(labels)} are not consecutive from 1 (nnU-Net needs it)")
    report.raise_if_any()
    names = resolve_channel_names(cases, channels or ChannelChoice())
    writer = ExportWriter(Path(out), force=force)
    training = [c for c in cases if c.label_path is not None]
    for case in export_progress(cases, enabled=progress, what="exporting"):
        folder = "imagesTr" if case.label_path is not None else "imagesTs"
        writer.write_channels(case, f"{folder}/{case.image_id}")
        if case.label_path is not None:
            writer.write_label(case, f"labelsTr/{case.image_id}.nii.gz")
    doc: dict[str, Any] = {
        "name": store.name() or Path(out).name,
        "description": store.description() or "exported by medstore",
        "channel_names": names.names,
        "labels": {"background": 0, **{n: i for i, n in sorted(labels.items())}},
        "numTraining": len(training),
        "file_ending": ".nii.gz",
    }
    writer.write_json("dataset.json", doc)
    ids = [c.image_id for c in training]
    splits = persisted_folds(store, ids)
    if splits is None:
        patients = {
            c.image_id: f"patient:{c.info['patient_id']}"
            if c.info.get("patient_id")
            else f"image:{c.image_id}"
            for c in training
        }
        splits = make_folds(patients, folds=folds, seed=seed)
    if splits:
        writer.write_json("splits_final.json", splits)
    return doc
