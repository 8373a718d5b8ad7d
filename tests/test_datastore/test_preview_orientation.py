"""Issue 17: previews say which way is which, which window, and which channel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from medstore.datastore import LocalDatastore
from medstore.datastore.errors import InvalidValueError
from medstore.datastore.preview import (
    PreviewOptions,
    Window,
    parse_window,
    render_planes,
    write_preview,
)
from PIL import Image, ImageDraw
from support.nifti import make_nifti

OPTS = PreviewOptions(panel_px=96, margin=4, title_px=16, legend_px=16)


def _white(image: Image.Image) -> np.ndarray:
    """Where the picture is light grey to white (text is anti-aliased)."""
    return np.asarray(image.convert("L")) > 127


def _glyph(letter: str, at: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """Where ``letter`` drawn at ``at`` on a black canvas is white."""
    canvas = Image.new("RGB", size, (0, 0, 0))
    ImageDraw.Draw(canvas).text(at, letter, fill=(255, 255, 255))
    return _white(canvas)


def test_each_panel_edge_carries_its_direction_letter() -> None:
    # a black volume (the window maps everything to black): only text is white
    vol = np.full((12, 12, 12), -1000.0, np.float32)  # air
    img = render_planes(vol, (1.0, 1.0, 1.0), options=OPTS, modality="CT")
    white = _white(img)
    side = 96  # every panel is 96 x 96 (12 mm at 8 px/mm)
    top = 4 + 16
    for index, letters in enumerate(
        (("A", "P", "R", "L"), ("S", "I", "R", "L"), ("S", "I", "A", "P"))
    ):
        x = 4 + index * (side + 4)
        where = (
            (x + side // 2 - 3, top + 1),
            (x + side // 2 - 3, top + side - 12),
            (x + 2, top + side // 2 - 6),
            (x + side - 9, top + side // 2 - 6),
        )
        for letter, at in zip(letters, where, strict=True):
            glyph = _glyph(letter, at, img.size)
            box = np.zeros_like(white)
            box[at[1] : at[1] + 11, at[0] : at[0] + 7] = True
            assert glyph.any()
            assert np.array_equal(white & box, glyph & box), (index, letter)


def test_a_left_marker_appears_on_the_side_marked_l() -> None:
    # canonical W runs right→left: a bright block at high W is the patient's left
    vol = np.full((12, 12, 12), -1000.0, np.float32)
    vol[:, 1:3, 9:12] = 1000.0
    img = np.asarray(render_planes(vol, (1.0, 1.0, 1.0), options=OPTS, modality="CT"))
    axial = img[4 + 16 : 4 + 16 + 96, 4 : 4 + 96].mean(axis=-1)  # 8 px per mm
    assert axial[16, 84] > 200  # the patient's left is on the right, beside the "L"
    assert axial[16, 12] < 50


def test_the_legend_states_the_window_and_ct_presets_change_it() -> None:
    assert parse_window("lung") == Window(-600.0, 1500.0, "lung")
    assert parse_window("Soft_Tissue").name == "soft-tissue"
    assert parse_window("40,400").bounds == (-160.0, 240.0)
    for bad in ("wide", "40", "40,0", "a,b"):
        with pytest.raises(InvalidValueError, match="--window"):
            parse_window(bad)
    vol = np.full((8, 8, 8), 40.0, np.float32)  # soft tissue, 40 HU

    def centre_grey(window: str | None) -> float:
        opts = PreviewOptions(
            panel_px=32,
            margin=4,
            title_px=16,
            legend_px=16,
            window=parse_window(window) if window else None,
        )
        pixels = np.asarray(render_planes(vol, (1.0, 1.0, 1.0), options=opts, modality="CT"))
        return float(pixels[4 + 16 + 16, 4 + 16, 0])

    assert centre_grey(None) == centre_grey("soft-tissue") == centre_grey("40,400")
    assert abs(centre_grey(None) - 255 * 0.5) <= 2
    assert centre_grey("lung") > centre_grey(None) + 80  # 40 HU is near white in a lung window
    assert centre_grey("brain") == pytest.approx(255 * 0.5, abs=2)


@pytest.fixture
def store(tmp_path: Path) -> LocalDatastore:
    ct = np.full((10, 12, 14), -1000, np.int16)
    ct[2:8, 3:9, 3:11] = 40
    make_nifti(tmp_path / "ct.nii.gz", ct, np.diag([-1.0, -1.0, 2.0, 1.0]))
    mr = np.stack([np.linspace(0, 900, 10 * 12 * 14).reshape(10, 12, 14)] * 2, axis=-1)
    mr[..., 1] = 5.0
    mr[2:6, 2:6, 2:6, 1] = 500.0
    make_nifti(tmp_path / "mr.nii.gz", mr.astype(np.float32), np.diag([1.0, 1.0, 1.0, 1.0]))
    s = LocalDatastore(tmp_path / "store")
    s.add_image("ct", tmp_path / "ct.nii.gz", {"modality": "CT"})
    s.add_image("mr", tmp_path / "mr.nii.gz", {"modality": "MR"})
    return s


def test_written_previews_say_window_and_channel(store: LocalDatastore, tmp_path: Path) -> None:
    ct = write_preview(store, "ct", out=tmp_path / "ct.png")
    assert ct.describe() == "no label; window soft-tissue (C 40, W 400)"
    lung = write_preview(
        store, "ct", out=tmp_path / "lung.png", options=PreviewOptions(window=parse_window("lung"))
    )
    assert "window lung (C -600, W 1500)" in lung.describe()
    mr = write_preview(store, "mr", out=tmp_path / "mr0.png")
    assert mr.window.name == "percentiles"
    assert mr.describe().endswith("channel 0 of 2 (0-based)")
    second = write_preview(store, "mr", out=tmp_path / "mr1.png", options=PreviewOptions(channel=1))
    assert second.channel == 1 and "channel 1 of 2" in second.describe()
    with Image.open(tmp_path / "mr0.png") as a, Image.open(tmp_path / "mr1.png") as b:
        assert not np.array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(InvalidValueError, match="has 2 channel"):
        write_preview(store, "mr", out=tmp_path / "x.png", options=PreviewOptions(channel=2))


def test_cli_window_and_channel_options(store: LocalDatastore, tmp_path: Path) -> None:
    from support.console import run_medstore

    done = run_medstore(
        "--store", store.root, "preview", "ct", "--window", "bone", "--out", tmp_path / "b.png"
    )
    assert done.returncode == 0, done.stderr
    assert "window bone (C 400, W 1800)" in done.stdout
    done = run_medstore("--store", store.root, "preview", "mr", "--channel", "1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "Wrote mr-preview.png (no label; window percentiles 0.5-99.5 (5 to 500); "
        "channel 1 of 2 (0-based))"
    )
    done = run_medstore("--store", store.root, "preview", "ct", "--window", "wide")
    assert done.returncode == 1 and "soft-tissue, lung, bone, brain" in done.stderr
