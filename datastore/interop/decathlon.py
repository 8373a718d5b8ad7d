"""Medical Segmentation Decathlon task folders: import into a store, export a store as one.

A task folder holds ``dataset.json`` (``name``, ``modality`` ``{"0": "CT"}``, ``labels``
``{"0": "background", "1": "liver", ...}``, ``training`` ``[{"image", "label"}]``, ``test``
``["./imagesTs/..."]``), and the files under ``imagesTr/``, ``labelsTr/`` and ``imagesTs/``.
Import: each training pair becomes an image with a ``final`` label whose ``label_info`` names the
classes (background excluded); each test image an unlabelled image. 4-D (multi-modal) images are
kept as they are. Everything is checked before anything is written; the problems found are
reported together and nothing is imported (see :mod:`medstore.datastore.interop.case_import`).

Export writes the same layout from a store: ``final``-labelled images to ``imagesTr``/``labelsTr``,
the others to ``imagesTs``; ``monai.data.load_decathlon_datalist`` reads it back.

Examples:
    >>> import tempfile, pathlib, numpy as np, nibabel as nib, json
    >>> from medstore.datastore import LocalDatastore
    >>> task = pathlib.Path(tempfile.mkdtemp())
    >>> for sub in ("imagesTr", "labelsTr"):
    ...     (task / sub).mkdir()
    >>> nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.int16), np.eye(4)),
    ...          task / "imagesTr" / "c1.nii.gz")
    >>> nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.uint8), np.eye(4)),
    ...          task / "labelsTr" / "c1.nii.gz")
    >>> _ = (task / "dataset.json").write_text(json.dumps({"name": "t", "labels":
    ...     {"0": "background", "1": "organ"}, "modality": {"0": "CT"}, "training":
    ...     [{"image": "./imagesTr/c1.nii.gz", "label": "./labelsTr/c1.nii.gz"}], "test": []}))
    >>> store = LocalDatastore(task.parent / (task.name + "-store"))
    >>> import_decathlon(task, store).image_ids
    ['c1']
    >>> store.get_label_info("c1", "final")["label_info"]
    [{'name': 'organ', 'idx': 1}]
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .case_export import ExportWriter, class_names, export_cases
from .case_import import CaseSource, ProblemReport, check_cases, import_cases
from .export_options import ChannelChoice, ExportSelection, resolve_channel_names
from .export_options import progress as export_progress

if TYPE_CHECKING:
    from ..store.local import LocalDatastore

__all__ = ["DecathlonImport", "export_decathlon", "import_decathlon", "read_decathlon"]

_WHAT = "Decathlon task folder"
_EXTS = (".nii.gz", ".nii")


@dataclass(frozen=True)
class DecathlonImport:
    """What :func:`import_decathlon` did (or, from :func:`read_decathlon`, would do).

    Attributes:
        image_ids: The images imported (training cases first, then test images).
        labelled: How many got a ``final`` label.
        label_info: The classes given to every label.
        cases: The planned cases.
    """

    image_ids: list[str]
    labelled: int
    label_info: list[dict[str, Any]]
    cases: list[CaseSource] = field(default_factory=list, repr=False)


def load_dataset_json(path: Path, report: ProblemReport) -> dict[str, Any]:
    """Read a ``dataset.json`` (a problem is recorded when it is missing or not an object).

    Args:
        path: The file.
        report: Where problems go.

    Returns:
        The parsed object, or ``{}``.
    """
    if not path.is_file():
        report.add(f"{path.name} is missing")
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as err:
        report.add(f"{path.name} is not valid JSON: {err}")
        return {}
    if not isinstance(data, dict):
        report.add(f"{path.name} is not a JSON object")
        return {}
    return data


def label_info_from(labels: Mapping[str, Any], report: ProblemReport) -> list[dict[str, Any]]:
    """MONAI Label ``label_info`` from Decathlon ``{"1": "liver"}`` (background, 0, excluded).

    Args:
        labels: The ``labels`` object.
        report: Where problems go.

    Returns:
        ``[{"name", "idx"}]`` sorted by index.
    """
    out = []
    for key, name in labels.items():
        try:
            idx = int(key)
        except (TypeError, ValueError):
            report.add(f"dataset.json labels: key {key!r} is not an integer")
            continue
        if idx != 0:
            out.append({"name": str(name), "idx": idx})
    return sorted(out, key=lambda c: c["idx"])


def _case_id(rel: str) -> str:
    name = os.path.basename(rel)
    for ext in _EXTS:
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return name


def _inside(src: Path, rel: Any, report: ProblemReport, where: str) -> Path | None:
    """``src / rel`` when ``rel`` is a relative path staying inside ``src``."""
    if not isinstance(rel, str) or not rel:
        report.add(f"dataset.json {where}: {rel!r} is not a file path")
        return None
    path = Path(os.path.normpath(src / rel))
    if Path(rel).is_absolute() or not path.is_relative_to(os.path.normpath(src)):
        report.add(f"dataset.json {where}: {rel!r} points outside the task folder")
        return None
    return path


def _info(data: Mapping[str, Any]) -> dict[str, Any]:
    info: dict[str, Any] = {"source_format": "decathlon"}
    modality = data.get("modality")
    if isinstance(modality, Mapping) and modality:
        names = [str(modality[k]) for k in sorted(modality, key=lambda k: int(k))]
        if len(names) == 1:
            info["modality"] = names[0]
        else:
            info["channel_names"] = names
    return info


def read_decathlon(src: str | os.PathLike[str], store: LocalDatastore) -> DecathlonImport:
    """Read and check a Decathlon task folder against a store, importing nothing.

    Args:
        src: The task folder (holding ``dataset.json``).
        store: The destination store.

    Returns:
        The plan (``image_ids`` are the ids the import would create).

    Raises:
        UnsupportedFormatError: Every problem found, in one message.
    """
    source = Path(src).absolute()
    report = ProblemReport(source, _WHAT)
    data = load_dataset_json(source / "dataset.json", report)
    labels = data.get("labels", {})
    if data and not isinstance(labels, Mapping):
        report.add("dataset.json labels is not an object")
        labels = {}
    label_info = label_info_from(labels, report)
    info = _info(data) if data else {}
    cases: list[CaseSource] = []
    training = data.get("training", [])
    for n, entry in enumerate(training if isinstance(training, list) else []):
        where = f"training[{n}]"
        if not isinstance(entry, Mapping) or "image" not in entry or "label" not in entry:
            report.add(f"dataset.json {where} needs 'image' and 'label'")
            continue
        image = _inside(source, entry["image"], report, where)
        label = _inside(source, entry["label"], report, where)
        if image is not None and label is not None:
            cases.append(CaseSource(_case_id(entry["image"]), (image,), label, info))
    test = data.get("test", [])
    for n, entry in enumerate(test if isinstance(test, list) else []):
        rel = entry.get("image") if isinstance(entry, Mapping) else entry
        image = _inside(source, rel, report, f"test[{n}]")
        if image is not None:
            cases.append(CaseSource(_case_id(str(rel)), (image,), None, info))
    if data and not isinstance(training, list):
        report.add("dataset.json training is not a list")
    if data and not cases and not report:
        report.add("dataset.json lists no training or test case")
    check_cases(cases, store=store, source=source, report=report)
    labelled = sum(c.label is not None for c in cases)
    return DecathlonImport([c.case_id for c in cases], labelled, label_info, cases)


def import_decathlon(
    src: str | os.PathLike[str], store: LocalDatastore, *, link: bool = False
) -> DecathlonImport:
    """Import a Decathlon task folder: all cases or, on any problem, none.

    Args:
        src: The task folder.
        store: The destination store.
        link: Symlink the images instead of copying them (labels are always copied).

    Returns:
        What was imported.

    Raises:
        UnsupportedFormatError: The folder has problems (all listed); nothing was imported.

    Example:
        See the module example.
    """
    plan = read_decathlon(src, store)
    ids = import_cases(
        store,
        plan.cases,
        label_info=plan.label_info,
        label_extra={"source_format": "decathlon"},
        link=link,
    )
    return DecathlonImport(ids, plan.labelled, plan.label_info, plan.cases)


def export_decathlon(
    store: LocalDatastore,
    out: str | os.PathLike[str],
    *,
    label_tag: str = "final",
    force: bool = False,
    selection: ExportSelection | None = None,
    channels: ChannelChoice | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Write a store as a Decathlon task folder (``dataset.json``, ``imagesTr``, ``labelsTr``,
    ``imagesTs``).

    NIfTI images and labels are copied byte for byte (``.nii`` is gzipped); other images
    (DICOM...) and their labels are written as NIfTI from their canonical arrays, so each pair
    shares a grid. Every file is written durably and only inside ``out``.

    Args:
        store: The store.
        out: The task folder to create (must be empty or absent unless ``force``).
        label_tag: Which labels are the training labels.
        force: Write into a non-empty folder, replacing files of the same names.
        selection: Which images (default: all).
        channels: The ``modality`` names (default: from the images' info; guessed with a
            warning when it has none).
        progress: Show a progress bar on stderr (on a terminal).

    Returns:
        The ``dataset.json`` written.

    Raises:
        FileExistsError: ``out`` is not empty and not ``force``.
        UnsupportedFormatError: Labels disagree on class names (all listed); nothing is
            written and ``out`` is not created.
        ImageNotFoundError: ``selection`` names an unknown id.

    Example:
        >>> import tempfile, pathlib, numpy as np, nibabel as nib
        >>> from medstore.datastore import LocalDatastore
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> for name, value in (("c1", 0), ("c1_mask", 1)):
        ...     image = nib.Nifti1Image(np.full((4, 4, 4), value, np.uint8), np.eye(4))
        ...     nib.save(image, root.parent / f"{root.name}-{name}.nii.gz")
        >>> store = LocalDatastore(root)
        >>> store.add_image("c1", str(root.parent / f"{root.name}-c1.nii.gz"), {})
        'c1'
        >>> _ = store.save_label(
        ...     "c1", str(root.parent / f"{root.name}-c1_mask.nii.gz"), "final",
        ...     {"label_info": [{"name": "organ", "idx": 1}]})
        >>> doc = export_decathlon(store, root.parent / f"{root.name}-Task01")
        >>> doc["numTraining"], doc["labels"]
        (1, {'0': 'background', '1': 'organ'})
    """
    cases = export_cases(store, label_tag=label_tag, selection=selection)
    labels = class_names(store, cases, label_tag=label_tag, source=Path(out))
    names = resolve_channel_names(cases, channels or ChannelChoice())
    writer = ExportWriter(Path(out), force=force)
    training, test = [], []
    for case in export_progress(cases, enabled=progress, what="exporting"):
        if case.label_path is not None:
            image = writer.write_image(case, f"imagesTr/{case.image_id}.nii.gz")
            label = writer.write_label(case, f"labelsTr/{case.image_id}.nii.gz")
            training.append({"image": f"./{image}", "label": f"./{label}"})
        else:
            test.append(f"./{writer.write_image(case, f'imagesTs/{case.image_id}.nii.gz')}")
    n_channels = max((c.channels for c in cases), default=1)
    doc: dict[str, Any] = {
        "name": store.name() or Path(out).name,
        "description": store.description() or "exported by medstore",
        "tensorImageSize": "4D" if n_channels > 1 else "3D",
        "reference": "",
        "licence": "",
        "release": "",
        "modality": names.names,
        "labels": {"0": "background", **{str(i): n for i, n in sorted(labels.items())}},
        "numTraining": len(training),
        "numTest": len(test),
        "training": training,
        "test": test,
    }
    writer.write_json("dataset.json", doc)
    return doc
