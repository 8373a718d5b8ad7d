"""What an export writes: which cases (``--ids``, ``--image-tag``, ``--split``) and which channel
names (``--modality``, ``--channel-names``), shared by the Decathlon, nnU-Net and datalist exports.

Channel names matter: nnU-Net normalises a channel named ``"CT"`` by fixed Hounsfield percentiles
and any other channel per image (z-score), so an MR store exported as ``"CT"`` trains badly. The
names come from ``--channel-names``, else ``--modality``, else the images' info (``modality``,
``channel_names``, as the Decathlon and nnU-Net imports and DICOM headers record them); only when
none says is the modality guessed from the first image's voxels (values down to -500 or below:
``"CT"``, else ``"MR"``), and a warning says so.

Examples:
    >>> choice = ChannelChoice(modality="MR")
    >>> resolve_channel_names([], choice).names
    {'0': 'MR'}
    >>> ExportSelection(ids=("a",)).describe()
    'ids a'
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

import numpy as np

from ..errors import ImageNotFoundError, InvalidValueError
from ..imaging import read_image

if TYPE_CHECKING:
    from ..store.local import LocalDatastore


__all__ = [
    "CaseFacts",
    "ChannelChoice",
    "ChannelNames",
    "ExportSelection",
    "channel_count_problem",
    "progress",
    "resolve_channel_names",
    "select_ids",
]

logger = logging.getLogger(__name__)


class CaseFacts(Protocol):
    """What the channel rules read of an exported case (``case_export.ExportCase`` has it)."""

    @property
    def image_id(self) -> str: ...
    @property
    def image_path(self) -> Path: ...
    @property
    def channels(self) -> int: ...
    @property
    def modality(self) -> str | None: ...
    @property
    def channel_names(self) -> tuple[str, ...]: ...


_Case = TypeVar("_Case")
_CT_FLOOR = -500.0  # CT air is about -1000 HU; MR and PET are not negative


@dataclass(frozen=True)
class ExportSelection:
    """Which images to export (every given filter must hold; none given: all images).

    Args:
        ids: Exactly these image ids (each must exist).
        image_tag: Only images carrying this image tag.
        split: Only images the store's persisted splits put in this split (``train``...).
    """

    ids: tuple[str, ...] | None = None
    image_tag: str | None = None
    split: str | None = None

    def describe(self) -> str:
        """The filters, for messages (``"all images"`` when none)."""
        parts = []
        if self.ids is not None:
            parts.append("ids " + ", ".join(self.ids))
        if self.image_tag:
            parts.append(f"image tag {self.image_tag!r}")
        if self.split:
            parts.append(f"split {self.split!r}")
        return "; ".join(parts) or "all images"


@dataclass(frozen=True)
class ChannelChoice:
    """The user's channel naming (``--modality``, ``--channel-names``); empty: from the images.

    Args:
        modality: One modality for every channel (``"CT"``, ``"MR"``...).
        channel_names: One name per channel, in order.
    """

    modality: str | None = None
    channel_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class ChannelNames:
    """The channel names an export writes.

    Attributes:
        names: ``{"0": name, ...}``.
        source: Where they came from: ``"option"``, ``"info"`` or ``"guessed"``.
    """

    names: dict[str, str]
    source: str


def select_ids(store: LocalDatastore, selection: ExportSelection) -> list[str]:
    """The sorted image ids ``selection`` keeps.

    Raises:
        ImageNotFoundError: An id of ``selection.ids`` is not in the store (all named).
    """
    from ..store.split_log import SplitLog

    every = sorted(store.list_images())
    kept = every
    if selection.ids is not None:
        missing = sorted(set(selection.ids) - set(every))
        if missing:
            raise ImageNotFoundError(f"not in store {store.root}: {', '.join(missing)}")
        wanted = set(selection.ids)
        kept = [i for i in kept if i in wanted]
    if selection.image_tag:
        tag = selection.image_tag
        kept = [i for i in kept if tag in (store.get_image_info(i).get("tags") or [])]
    if selection.split:
        live = SplitLog(store).assignments()
        kept = [i for i in kept if i in live and live[i].split == selection.split]
    return kept


def channel_count_problem(cases: Sequence[CaseFacts]) -> str | None:
    """A message naming the images of each channel count, when they differ (``None``: same).

    Examples:
        >>> channel_count_problem([])
    """
    groups: dict[int, list[str]] = {}
    for case in cases:
        groups.setdefault(case.channels, []).append(case.image_id)
    if len(groups) <= 1:
        return None

    def ids(items: list[str]) -> str:
        shown = ", ".join(items[:5])
        return shown + (f" and {len(items) - 5} more" if len(items) > 5 else "")

    parts = [f"{n} channel(s): {ids(items)}" for n, items in sorted(groups.items())]
    return "images have different channel counts (" + "; ".join(parts) + ")"


def _guess_modality(case: CaseFacts) -> tuple[str, str]:
    """Guess CT or MR from the first image's lowest voxel value; returns (modality, why)."""
    try:
        low = float(np.nanmin(np.asarray(read_image(case.image_path).array)))
    except (OSError, ValueError) as err:
        return "MR", f"its voxels could not be read ({err})"
    guess = "CT" if low <= _CT_FLOOR else "MR"
    return guess, f"the lowest value of {case.image_id} is {low:g}"


def resolve_channel_names(cases: Sequence[CaseFacts], choice: ChannelChoice) -> ChannelNames:
    """The channel names to write, and where they came from; warns when they are guessed.

    Args:
        cases: The exported cases (the first one's info decides).
        choice: The user's options.

    Returns:
        The names.

    Raises:
        InvalidValueError: ``choice.channel_names`` does not give one name per channel.
    """
    channels = max((c.channels for c in cases), default=1)
    if choice.channel_names:
        if len(choice.channel_names) != channels:
            raise InvalidValueError(
                f"--channel-names gives {len(choice.channel_names)} name(s) for images with "
                f"{channels} channel(s)"
            )
        return ChannelNames({str(i): n for i, n in enumerate(choice.channel_names)}, "option")
    first = cases[0] if cases else None
    if choice.modality is None and first is not None and first.channel_names:
        return ChannelNames({str(i): n for i, n in enumerate(first.channel_names)}, "info")
    modality, source = choice.modality, "option"
    if modality is None and first is not None and first.modality:
        modality, source = first.modality, "info"
    if modality is None:
        modality, why = _guess_modality(first) if first is not None else ("CT", "no images")
        source = "guessed"
        logger.warning(
            "no modality in the images' info: exporting channels as %r (guessed: %s); "
            "pass --modality or --channel-names to say (nnU-Net normalises 'CT' by HU "
            "percentiles, any other name per image)",
            modality,
            why,
        )
    if channels == 1:
        return ChannelNames({"0": modality}, source)
    return ChannelNames({str(i): f"{modality}_{i}" for i in range(channels)}, source)


def progress(cases: Sequence[_Case], *, enabled: bool, what: str) -> Iterator[_Case]:
    """Iterate over ``cases`` with a tqdm bar on stderr (only on a terminal, and when enabled).

    Examples:
        >>> list(progress([], enabled=True, what="x"))
        []
    """
    from tqdm import tqdm

    bar = tqdm(cases, desc=what, unit="case", file=sys.stderr, disable=None if enabled else True)
    try:
        yield from bar
    finally:
        bar.close()
