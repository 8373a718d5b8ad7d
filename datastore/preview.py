"""PNG previews: axial, coronal and sagittal planes of an image and its labels, a colour per class.

Planes are cut from the canonical array (D inferior→superior, H anterior→posterior,
W right→left) and shown the radiological way: axial with anterior up and patient right on the
left, coronal and sagittal with superior up (sagittal: anterior on the left). Each panel keeps
physical proportions (voxel spacing): the longest physical extent among the three planes is drawn
``panel_px`` pixels long. Planes cross the label's centre of mass (the image centre when there is
no label). CT is windowed to [-200, 300] HU; other images to their 0.5-99.5 percentiles.

Layout (all sizes in pixels): one row per overlay (or one for the bare image), each a
``title_px`` strip then the panels, panels and rows separated by ``margin``; a legend below with
one ``legend_px`` line per class. Width = ``margin + Σ(panel width + margin)``; height =
``margin + rows·(title_px + row height + margin) + legend lines·legend_px + margin``.

Examples:
    >>> import numpy as np
    >>> vol = np.zeros((8, 10, 12), np.float32)
    >>> lab = np.zeros((8, 10, 12), np.uint8); lab[2:5, 3:6, 4:8] = 1
    >>> img = render_planes(vol, (1.0, 1.0, 1.0), overlays=[Overlay(lab, "final")],
    ...                     classes={1: "liver"}, options=PreviewOptions(panel_px=24))
    >>> img.size
    (100, 76)
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from .durable import atomic_write_bytes
from .errors import LabelGeometryError, UnsupportedFormatError
from .store.label_info import parse_label_info

if TYPE_CHECKING:
    from PIL import Image

    from .store.local import LocalDatastore

__all__ = [
    "CT_WINDOW",
    "Overlay",
    "PreviewOptions",
    "centre_of_mass",
    "class_colour",
    "preview_image",
    "render_planes",
    "window_for",
]

CT_WINDOW = (-200.0, 300.0)
_PALETTE = (
    (230, 25, 75),
    (60, 180, 75),
    (0, 130, 200),
    (255, 225, 25),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
    (0, 128, 128),
    (170, 110, 40),
)


@dataclass(frozen=True)
class PreviewOptions:
    """Rendering options.

    Args:
        panel_px: Pixels of the longest physical extent among the three planes.
        margin: Gap around panels and rows.
        title_px: Height of the title strip above each row.
        legend_px: Height of one legend line.
        window: Display window ``(low, high)``; ``None`` chooses by modality.
        channel: Which channel of a multi-channel image to show.
        alpha: Opacity of filled labels.
    """

    panel_px: int = 256
    margin: int = 8
    title_px: int = 16
    legend_px: int = 16
    window: tuple[float, float] | None = None
    channel: int = 0
    alpha: float = 0.35


@dataclass(frozen=True)
class Overlay:
    """A label map drawn over one row of planes.

    Args:
        label: Integer (D, H, W) map on the image's canonical grid.
        title: Shown above the row.
        style: ``"fill"`` (translucent fill plus outline) or ``"outline"`` only.
    """

    label: npt.NDArray[Any]
    title: str
    style: Literal["fill", "outline"] = "fill"


def class_colour(idx: int) -> tuple[int, int, int]:
    """The RGB colour of class ``idx`` (1-based; the palette repeats after 12).

    Example:
        >>> class_colour(1)
        (230, 25, 75)
    """
    return _PALETTE[(int(idx) - 1) % len(_PALETTE)]


def window_for(volume: npt.NDArray[Any], modality: str | None) -> tuple[float, float]:
    """The display window: :data:`CT_WINDOW` for CT, else the 0.5-99.5 percentiles.

    Example:
        >>> window_for(np.arange(10.0), "CT")
        (-200.0, 300.0)
    """
    if (modality or "").upper() == "CT":
        return CT_WINDOW
    finite = volume[np.isfinite(volume)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(finite, [0.5, 99.5])
    return float(lo), float(hi) if hi > lo else float(lo) + 1.0


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


def _planes(
    array: npt.NDArray[Any], centre: Sequence[int], spacing: Sequence[float]
) -> list[tuple[str, npt.NDArray[Any], tuple[float, float]]]:
    """``(name, 2-D slice oriented for display, (row mm, column mm))`` per plane."""
    d, h, w = centre
    sd, sh, sw = spacing
    if array.shape[0] == 1:
        return [("axial", array[0], (sh, sw))]
    return [
        ("axial", array[d], (sh, sw)),
        ("coronal", array[::-1, h, :], (sd, sw)),
        ("sagittal", array[::-1, :, w], (sd, sh)),
    ]


def _nearest(plane: npt.NDArray[Any], size: tuple[int, int]) -> npt.NDArray[Any]:
    """Nearest-neighbour resize of a 2-D array to ``(height, width)``."""
    rows = np.minimum((np.arange(size[0]) + 0.5) * plane.shape[0] / size[0], plane.shape[0] - 1)
    cols = np.minimum((np.arange(size[1]) + 0.5) * plane.shape[1] / size[1], plane.shape[1] - 1)
    return plane[rows.astype(int)][:, cols.astype(int)]


def _edges(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """Pixels of ``mask`` with a 4-neighbour outside it."""
    inner = np.zeros_like(mask)
    inner[1:-1, 1:-1] = (
        mask[1:-1, 1:-1] & mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
    )
    return mask & ~inner


def _panel(
    plane: npt.NDArray[Any],
    labels: npt.NDArray[Any] | None,
    size: tuple[int, int],
    window: tuple[float, float],
    overlay: Overlay | None,
    alpha: float,
) -> npt.NDArray[np.uint8]:
    from PIL import Image

    lo, hi = window
    grey = np.clip((np.asarray(plane, np.float64) - lo) / max(hi - lo, 1e-9), 0.0, 1.0)
    small = Image.fromarray(np.ascontiguousarray(grey * 255).astype(np.uint8), mode="L")
    big = np.asarray(small.resize((size[1], size[0]), Image.Resampling.BILINEAR), np.float64)
    rgb = np.repeat(big[..., None], 3, axis=2)
    if labels is not None and overlay is not None:
        lab = _nearest(labels, size)
        for value in np.unique(lab):
            if value <= 0:
                continue
            mask = lab == value
            colour = np.array(class_colour(int(value)), np.float64)
            if overlay.style == "fill":
                rgb[mask] = (1 - alpha) * rgb[mask] + alpha * colour
            rgb[_edges(mask)] = colour
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def render_planes(
    volume: npt.NDArray[Any],
    spacing: Sequence[float],
    *,
    overlays: Sequence[Overlay] = (),
    classes: Mapping[int, str] | None = None,
    centre: Sequence[int] | None = None,
    modality: str | None = None,
    options: PreviewOptions | None = None,
) -> Image.Image:
    """Draw the three planes of a canonical (D, H, W) volume, one row per overlay, and a legend.

    Args:
        volume: The image, canonical (D, H, W) (D = 1 for a 2-D image: axial plane only).
        spacing: Voxel size (D, H, W) in mm.
        overlays: Label maps, one row each (none: one row of the bare image).
        classes: ``{value: name}`` for the legend (present values without a name show as such).
        centre: The voxel the planes cross (default: first overlay's centre of mass).
        modality: Chooses the window (``"CT"`` → :data:`CT_WINDOW`).
        options: Sizes, window, opacity.

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
    planes = _planes(vol, where, spacing3)
    extent = max(max(p.shape[0] * r, p.shape[1] * c) for _, p, (r, c) in planes)
    scale = opts.panel_px / extent
    sizes = [
        (max(1, round(p.shape[0] * r * scale)), max(1, round(p.shape[1] * c * scale)))
        for _, p, (r, c) in planes
    ]
    row_h = max(h for h, _ in sizes)
    window = opts.window or window_for(vol, modality)
    names = dict(classes or {})
    for ov in overlays:
        for value in np.unique(ov.label):
            if value > 0:
                names.setdefault(int(value), str(int(value)))
    m = opts.margin
    width = m + sum(w + m for _, w in sizes)
    rows: list[Overlay | None] = list(overlays) or [None]
    legend_h = len(names) * opts.legend_px
    height = m + len(rows) * (opts.title_px + row_h + m) + legend_h + (m if names else 0)
    canvas = Image.new("RGB", (width, height), (0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    y = m
    for overlay in rows:
        draw.text((m, y + 2), overlay.title if overlay else "image", fill=(255, 255, 255))
        x = m
        for (name, plane, _), size in zip(planes, sizes, strict=True):
            label_planes = _planes(overlay.label, where, spacing3) if overlay else None
            lab = next((p for n, p, _ in label_planes if n == name), None) if label_planes else None
            pixels = _panel(plane, lab, size, window, overlay, opts.alpha)
            canvas.paste(Image.fromarray(pixels, mode="RGB"), (x, y + opts.title_px))
            draw.text((x + 2, y + opts.title_px + 2), name, fill=(255, 255, 0))
            x += size[1] + m
        y += opts.title_px + row_h + m
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


def preview_image(
    store: LocalDatastore,
    image_id: str,
    *,
    tag: str | None = None,
    out: str | os.PathLike[str] | None = None,
    options: PreviewOptions | None = None,
) -> Path:
    """Render an image of the store with one of its labels and write the PNG durably.

    Args:
        store: The store.
        image_id: The image.
        tag: The label tag (default ``final`` when present, else the image's first tag; no
            overlay when it has none).
        out: The PNG path (default ``<image_id>[-<tag>]-preview.png`` in the current folder).
        options: Rendering options.

    Returns:
        The PNG's path.

    Raises:
        ImageNotFoundError: Unknown image. LabelNotFoundError: ``tag`` has no label for it.
        LabelGeometryError: The label's grid differs from the image's.
        UnsupportedFormatError: Pillow is missing.
    """
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
    volume = array[min(opts.channel, array.shape[0] - 1)]
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
    picture = render_planes(
        volume,
        data.spacing,
        overlays=overlays,
        classes=classes,
        modality=modality,
        options=opts,
    )
    suffix = f"-{tag}" if tag else ""
    dest = Path(out) if out is not None else Path.cwd() / f"{image_id}{suffix}-preview.png"
    atomic_write_bytes(dest, png_bytes(picture), point="preview")
    return dest
