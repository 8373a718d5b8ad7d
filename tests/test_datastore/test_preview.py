"""Previews: three planes through the label's centre of mass, class colours, legend, PNG output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from medstore.datastore import LocalDatastore
from medstore.datastore.cli.main import main
from medstore.datastore.errors import LabelGeometryError, LabelNotFoundError
from medstore.datastore.preview import (
    CT_WINDOW,
    Overlay,
    PreviewOptions,
    centre_of_mass,
    class_colour,
    preview_image,
    render_planes,
    window_for,
)
from PIL import Image
from support.nifti import make_nifti

OPTS = PreviewOptions(panel_px=48, margin=4, title_px=16, legend_px=16)


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


def _has_colour(pixels: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    return np.all(pixels == np.array(colour, np.uint8), axis=-1)


def test_render_size_follows_the_documented_layout() -> None:
    vol = np.zeros((8, 10, 12), np.float32)
    lab = np.zeros(vol.shape, np.uint8)
    lab[2:5, 3:6, 4:8] = 1
    lab[6, 8, 10] = 2
    img = render_planes(vol, (1.0, 1.0, 1.0), overlays=[Overlay(lab, "t")], options=OPTS)
    # extent 12 mm → 4 px/mm: axial 40x48, coronal 32x48, sagittal 32x40 (h x w)
    # legend: the window line, then one line per class
    assert img.size == (4 + 52 + 52 + 44, 4 + (16 + 40 + 4) + 3 * 16 + 4)
    # anisotropic spacing keeps physical proportions
    img = render_planes(vol, (3.0, 1.0, 1.0), options=OPTS)
    scale = 48 / 24  # the longest extent is D: 8 slices * 3 mm
    height = 4 + 16 + round(24 * scale) + 4 + 16 + 4  # the legend's window line
    assert img.size == (4 + (24 + 4) + (24 + 4) + (20 + 4), height)


def test_class_colours_are_drawn_where_the_label_is() -> None:
    vol = np.full((8, 10, 12), 40.0, np.float32)
    lab = np.zeros(vol.shape, np.uint8)
    lab[2:5, 3:6, 4:8] = 1
    img = render_planes(
        vol, (1.0, 1.0, 1.0), overlays=[Overlay(lab, "t")], classes={1: "liver", 2: "spleen"}
    )
    pixels = _pixels(img)
    red = _has_colour(pixels, class_colour(1))
    assert red.any()
    legend_top = img.size[1] - 8 - 3 * 16  # legend: window, liver, spleen, then a margin
    ys, xs = np.nonzero(red[:legend_top])
    # default options: panel_px 256 for 12 mm → 21.33 px/mm; axial panel starts at x = 8
    scale = 256 / 12
    axial = (xs < 8 + round(12 * scale)) & (ys >= 8 + 16)
    assert axial.any()
    assert xs[axial].min() >= 8 + int(4 * scale) - 1
    assert xs[axial].max() <= 8 + int(8 * scale) + 1
    assert ys[axial].min() >= 8 + 16 + int(3 * scale) - 1
    assert ys[axial].max() <= 8 + 16 + int(6 * scale) + 1
    # spleen is only in the legend (a swatch), never in the panels
    green = _has_colour(pixels, class_colour(2))
    assert green[legend_top:].any() and not green[:legend_top].any()


def test_outline_style_leaves_the_inside_unpainted() -> None:
    vol = np.zeros((6, 12, 12), np.float32)
    lab = np.zeros(vol.shape, np.uint8)
    lab[:, 2:10, 2:10] = 3
    img = render_planes(vol, (1.0, 1.0, 1.0), overlays=[Overlay(lab, "t", "outline")], options=OPTS)
    pixels = _pixels(img)
    colour = _has_colour(pixels, class_colour(3))
    assert colour.any()
    # the centre of the axial panel (inside the square) stays grey
    cy, cx = 4 + 16 + 24, 4 + 24
    assert not colour[cy - 4 : cy + 4, cx - 4 : cx + 4].any()


def test_windows_and_centres() -> None:
    assert window_for(np.array([0.0, 1000.0]), "CT") == CT_WINDOW
    lo, hi = window_for(np.arange(1000.0), "MR")
    assert 0 <= lo < 10 and 990 < hi <= 999
    assert centre_of_mass(None, (8, 10, 12)) == (4, 5, 6)
    lab = np.zeros((8, 10, 12))
    lab[6, 1, 2] = lab[6, 3, 2] = 1
    assert centre_of_mass(lab, lab.shape) == (6, 2, 2)
    with pytest.raises(LabelGeometryError, match="shape"):
        render_planes(np.zeros((4, 4, 4)), (1, 1, 1), overlays=[Overlay(np.zeros((4, 4, 3)), "x")])


@pytest.fixture
def store(tmp_path: Path) -> LocalDatastore:
    data = np.full((20, 16, 12), -1000, np.int16)
    data[3:17, 3:13, 2:10] = 40
    make_nifti(tmp_path / "ct.nii.gz", data, np.diag([-0.8, -0.8, 2.5, 1.0]))
    lab = np.zeros(data.shape, np.uint8)
    lab[5:10, 5:9, 3:7] = 1
    lab[12:15, 8:11, 4:6] = 2
    make_nifti(tmp_path / "lab.nii.gz", lab, np.diag([-0.8, -0.8, 2.5, 1.0]))
    s = LocalDatastore(tmp_path / "store")
    s.add_image("ct", tmp_path / "ct.nii.gz", {"modality": "CT"})
    s.add_image("bare", tmp_path / "ct.nii.gz")
    info = {"label_info": [{"name": "liver", "idx": 1}, {"name": "spleen", "idx": 2}]}
    s.save_label("ct", tmp_path / "lab.nii.gz", "final", info)
    return s


def test_preview_image_writes_a_png(store: LocalDatastore, tmp_path: Path) -> None:
    out = preview_image(store, "ct", out=tmp_path / "p.png")
    assert out == tmp_path / "p.png"
    with Image.open(out) as img:
        assert img.format == "PNG"
        pixels = _pixels(img)
        assert _has_colour(pixels, class_colour(1)).any()
        assert _has_colour(pixels, class_colour(2)).any()


def test_preview_without_label_and_with_a_missing_tag(
    store: LocalDatastore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    out = preview_image(store, "bare")
    assert out == tmp_path / "bare-preview.png"
    with Image.open(out) as img:
        assert not _has_colour(_pixels(img), class_colour(1)).any()
    with pytest.raises(LabelNotFoundError):
        preview_image(store, "ct", tag="alice")


def test_preview_of_a_dicom_series(tmp_path: Path) -> None:
    from support.dicom import make_dicom_series

    volume = np.full((6, 10, 8), 40, np.int16)
    make_dicom_series(tmp_path / "store" / "series", volume)
    s = LocalDatastore(tmp_path / "store")
    label = np.zeros((6, 10, 8), np.uint8)
    label[2:4, 3:7, 2:6] = 1
    s.save_label("series", label, "final")
    out = preview_image(s, "series", out=tmp_path / "s.png")
    with Image.open(out) as img:
        assert _has_colour(_pixels(img), class_colour(1)).any()


def test_cli_preview(
    store: LocalDatastore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli.png"
    code = main(["--store", str(store.root), "preview", "ct", "--out", str(out), "--size", "64"])
    assert code == 0
    assert capsys.readouterr().out.strip() == (
        f"Wrote {out} (label 'final'; window soft-tissue (C 40, W 400))"
    )
    with Image.open(out) as img:
        assert max(img.size) < 300
