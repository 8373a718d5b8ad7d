"""PNG previews: axial, coronal and sagittal planes of an image and its labels, a colour per class.

Planes are cut from the canonical array (D inferior→superior, H anterior→posterior,
W right→left) and shown the radiological way: axial with anterior up and patient right on the
left, coronal and sagittal with superior up (sagittal: anterior on the left). Each panel keeps
physical proportions (voxel spacing): the longest physical extent among the three planes is drawn
``panel_px`` pixels long. Planes cross the label's centre of mass (the image centre when there is
no label). Each panel's edges carry the patient directions they face (R/L, A/P, S/I). CT is
windowed with the soft-tissue preset (C 40, W 400 HU) unless another window is asked for; other
images with their 0.5-99.5 percentiles (see :mod:`.preview_window`).

Layout (all sizes in pixels): one row per overlay (or one for the bare image), each a
``title_px`` strip then the panels, panels and rows separated by ``margin``; a legend below with
one ``legend_px`` line stating the window (and the channel shown, for a multi-channel image), then
one line per class. Width = ``margin + Σ(panel width + margin)``; height =
``margin + rows·(title_px + row height + margin) + legend lines·legend_px + margin``.

Examples:
    >>> import numpy as np
    >>> vol = np.zeros((8, 10, 12), np.float32)
    >>> lab = np.zeros((8, 10, 12), np.uint8); lab[2:5, 3:6, 4:8] = 1
    >>> img = render_planes(vol, (1.0, 1.0, 1.0), overlays=[Overlay(lab, "final")],
    ...                     classes={1: "liver"}, options=PreviewOptions(panel_px=24))
    >>> img.size
    (100, 92)
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .durable import atomic_write_bytes
from .errors import LabelGeometryError, UnsupportedFormatError
from .preview_panels import (
    Overlay,
    class_colour,
    direction_letters,
    panel_pixels,
    plane_cuts,
    requested_window,
)
from .preview_window import CT_WINDOW, Window, choose_window, parse_window, window_for
from .store.label_info import parse_label_info

if TYPE_CHECKING:
    from PIL import Image

    from .store.local import LocalDatastore

__all__ = [
    "CT_WINDOW",
    "Overlay",
    "PreviewOptions",
    "PreviewResult",
    "Window",
    "centre_of_mass",
    "class_colour",
    "parse_window",
    "preview_image",
    "render_planes",
    "window_for",
    "write_preview",
]


@dataclass(frozen=True)
class PreviewOptions:
    """Rendering options.

    Args:
        panel_px: Pixels of the longest physical extent among the three planes.
        margin: Gap around panels and rows.
        title_px: Height of the title strip above each row.
        legend_px: Height of one legend line.
        window: Display window (a :class:`Window`, or ``(low, high)``); ``None`` chooses by
            modality (CT: soft tissue; others: percentiles).
        channel: Which channel of a multi-channel image to show (stated in the legend).
        alpha: Opacity of filled labels.
    """

    panel_px: int = 256
    margin: int = 8
    title_px: int = 16
    legend_px: int = 16
    window: Window | tuple[float, float] | None = None
    channel: int = 0
    alpha: float = 0.35


def centre_of_mass(label: npt.NDArray[Any] | None, shape: Sequence[int]) -> tuple[int, ...]:
    """The rounded centre of mass of the foreground (label > 0), else the array's centre.

    Example:
        >>> lab = np.zeros((4, 4, 4)); lab[0, 1, 3] = 1
        >>> centre_of_mass(lab, lab.shape)
        (0, 1, 3)
    """
    if label is not None and np.any(label > 0):
        coords = np.nonzero(label > 0)
        return tuple(round(float(c.mean())) for c in coords)
    return tuple(int(s) // 2 for s in shape)


def render_planes(
    volume: npt.NDArray[Any],
    spacing: Sequence[float],
    *,
    overlays: Sequence[Overlay] = (),
    classes: Mapping[int, str] | None = None,
    centre: Sequence[int] | None = None,
    modality: str | None = None,
    options: PreviewOptions | None = None,
    channels: int = 1,
) -> Image.Image:
    """Draw the three planes of a canonical (D, H, W) volume, one row per overlay, and a legend.

    Args:
        volume: The image, canonical (D, H, W) (D = 1 for a 2-D image: axial plane only).
        spacing: Voxel size (D, H, W) in mm.
        overlays: Label maps, one row each (none: one row of the bare image).
        classes: ``{value: name}`` for the legend (present values without a name show as such).
        centre: The voxel the planes cross (default: first overlay's centre of mass).
        modality: Chooses the default window (``"CT"`` → soft tissue, :data:`CT_WINDOW`).
        options: Sizes, window, opacity; ``options.channel`` is named in the legend.
        channels: How many channels the image has (the legend says which one is shown).

    Returns:
        The RGB picture (see the module docstring for its size).

    Raises:
        LabelGeometryError: An overlay's shape differs from the volume's.
    """
    from PIL import Image, ImageDraw

    opts = options or PreviewOptions()
    vol = np.asarray(volume)
    if vol.ndim == 2:
        vol = vol[np.newaxis]
    for ov in overlays:
        if ov.label.shape != vol.shape:
            raise LabelGeometryError(
                f"overlay {ov.title!r} has shape {ov.label.shape}, the image {vol.shape}"
            )
    first = overlays[0].label if overlays else None
    where = tuple(centre) if centre is not None else centre_of_mass(first, vol.shape)
    spacing3 = tuple(float(s) for s in spacing)[-3:]
    spacing3 = (1.0,) * (3 - len(spacing3)) + spacing3
    planes = plane_cuts(vol, where, spacing3)
    extent = max(max(p.shape[0] * r, p.shape[1] * c) for _, p, (r, c) in planes)
    scale = opts.panel_px / extent
    sizes = [
        (max(1, round(p.shape[0] * r * scale)), max(1, round(p.shape[1] * c * scale)))
        for _, p, (r, c) in planes
    ]
    row_h = max(h for h, _ in sizes)
    chosen = choose_window(vol, modality, requested_window(opts.window))
    window = chosen.bounds
    note = f"window {chosen.describe()}"
    if channels > 1:
        note += f"; channel {opts.channel} of {channels} (0-based)"
    names = dict(classes or {})
    for ov in overlays:
        for value in np.unique(ov.label):
            if value > 0:
                names.setdefault(int(value), str(int(value)))
    m = opts.margin
    width = m + sum(w + m for _, w in sizes)
    rows: list[Overlay | None] = list(overlays) or [None]
    legend_h = (len(names) + 1) * opts.legend_px
    height = m + len(rows) * (opts.title_px + row_h + m) + legend_h + m
    canvas = Image.new("RGB", (width, height), (0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    y = m
    for overlay in rows:
        draw.text((m, y + 2), overlay.title if overlay else "image", fill=(255, 255, 255))
        x = m
        for (name, plane, _), size in zip(planes, sizes, strict=True):
            label_planes = plane_cuts(overlay.label, where, spacing3) if overlay else None
            lab = next((p for n, p, _ in label_planes if n == name), None) if label_planes else None
            pixels = panel_pixels(plane, lab, size, window, overlay, opts.alpha)
            canvas.paste(Image.fromarray(pixels, mode="RGB"), (x, y + opts.title_px))
            draw.text((x + 2, y + opts.title_px + 2), name, fill=(255, 255, 0))
            if len(planes) > 1:
                direction_letters(draw, name, (x, y + opts.title_px, size[1], size[0]))
            x += size[1] + m
        y += opts.title_px + row_h + m
    draw.text((m, y + 2), note, fill=(255, 255, 255))
    y += opts.legend_px
    for value, name in sorted(names.items()):
        swatch = opts.legend_px - 4
        draw.rectangle((m, y + 2, m + swatch, y + 2 + swatch), fill=class_colour(value))
        draw.text((m + swatch + 6, y + 2), f"{value}: {name}", fill=(255, 255, 255))
        y += opts.legend_px
    return canvas


def png_bytes(image: Image.Image) -> bytes:
    """The picture encoded as PNG.

    Args:
        image: A PIL image.

    Returns:
        The PNG file content.
    """
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass(frozen=True)
class PreviewResult:
    """What :func:`write_preview` wrote.

    Attributes:
        path: The PNG.
        tag: The label tag drawn (``None``: the bare image).
        window: The display window used.
        channel: The channel shown.
        channels: How many channels the image has.
    """

    path: Path
    tag: str | None
    window: Window
    channel: int = 0
    channels: int = 1

    def describe(self) -> str:
        """One line: label, window, channel (when there are several).

        Example:
            >>> PreviewResult(Path("a.png"), "final", Window(40, 400, "soft-tissue")).describe()
            "label 'final'; window soft-tissue (C 40, W 400)"
        """
        parts = [f"label {self.tag!r}" if self.tag else "no label"]
        parts.append(f"window {self.window.describe()}")
        if self.channels > 1:
            parts.append(f"channel {self.channel} of {self.channels} (0-based)")
        return "; ".join(parts)


def write_preview(
    store: LocalDatastore,
    image_id: str,
    *,
    tag: str | None = None,
    out: str | os.PathLike[str] | None = None,
    options: PreviewOptions | None = None,
) -> PreviewResult:
    """Render an image of the store with one of its labels, write the PNG durably, say what.

    Args:
        store: The store (only read: a read-only store works).
        image_id: The image.
        tag: The label tag (default ``final`` when present, else the image's first tag; no
            overlay when it has none).
        out: The PNG path (default ``<image_id>[-<tag>]-preview.png`` in the current folder).
        options: Rendering options (window, channel, sizes).

    Returns:
        The path and what the picture shows.

    Raises:
        ImageNotFoundError: Unknown image. LabelNotFoundError: ``tag`` has no label for it.
        LabelGeometryError: The label's grid differs from the image's.
        InvalidValueError: ``options.channel`` is not a channel of the image.
        UnsupportedFormatError: Pillow is missing.
    """
    from .errors import InvalidValueError
    from .imaging import read_image

    try:
        import PIL  # noqa: F401
    except ImportError as err:  # pragma: no cover - Pillow is a core dependency
        raise UnsupportedFormatError("previews need Pillow: pip install Pillow") from err
    info = store.get_image_info(image_id)
    tags = list(store.get_labels_by_image_id(image_id))
    if tag is None:
        tag = "final" if "final" in tags else (tags[0] if tags else None)
    data = read_image(store.get_image_uri(image_id))
    opts = options or PreviewOptions()
    array = np.asarray(data.array)
    if not 0 <= opts.channel < array.shape[0]:
        raise InvalidValueError(
            f"--channel {opts.channel}: {image_id!r} has {array.shape[0]} channel(s), "
            f"0 to {array.shape[0] - 1}"
        )
    volume = array[opts.channel]
    overlays, classes = [], {}
    if tag is not None:
        label = np.asarray(read_image(store.get_label_uri(image_id, tag)).array)[0]
        if label.shape != volume.shape:
            raise LabelGeometryError(
                f"label {tag!r} of {image_id!r} has shape {label.shape}, the image {volume.shape}"
            )
        overlays.append(Overlay(label.astype(np.int64, copy=False), f"{image_id} - {tag}"))
        classes = parse_label_info(store.get_label_info(image_id, tag)).classes()
    modality = str(info.get("modality") or data.header.modality or "") or None
    window = choose_window(volume, modality, requested_window(opts.window))
    picture = render_planes(
        volume,
        data.spacing,
        overlays=overlays,
        classes=classes,
        modality=modality,
        options=PreviewOptions(**{**opts.__dict__, "window": window}),
        channels=array.shape[0],
    )
    suffix = f"-{tag}" if tag else ""
    dest = Path(out) if out is not None else Path.cwd() / f"{image_id}{suffix}-preview.png"
    atomic_write_bytes(dest, png_bytes(picture), point="preview")
    return PreviewResult(dest, tag, window, opts.channel, array.shape[0])


def preview_image(
    store: LocalDatastore,
    image_id: str,
    *,
    tag: str | None = None,
    out: str | os.PathLike[str] | None = None,
    options: PreviewOptions | None = None,
) -> Path:
    """Like :func:`write_preview`, returning only the PNG's path.

    Args:
        store: The store.
        image_id: The image.
        tag: The label tag (default ``final``, else the first one).
        out: The PNG path (default: in the current folder).
        options: Rendering options.

    Returns:
        The PNG's path.
    """
    return write_preview(store, image_id, tag=tag, out=out, options=options).path
