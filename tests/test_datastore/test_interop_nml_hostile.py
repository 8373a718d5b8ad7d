"""Malformed, huge and hostile WEBKNOSSOS files fail cleanly (AnnotationError) or load.

Speed and memory figures are benchmarks (bench/bench_nml.py); here a large file only has to
load within a generous timeout.
"""

from __future__ import annotations

import io
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from medstore.datastore.errors import AnnotationError
from medstore.datastore.interop import nml as nml_module
from medstore.datastore.interop.nml import load_nml
from medstore.datastore.interop.nml_values import _checked_node, node_from_attrs
from medstore.datastore.interop.wk_volume import read_volume_layer

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from bench_nml import write_nml

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
VOLUME_ZIP = FIXTURES / "wk_volume_zarr3.zip"


@pytest.mark.timeout(600)
def test_a_large_nml_loads(tmp_path: Path) -> None:
    path = write_nml(tmp_path / "big.nml", 50_000, 10)
    sk = load_nml(path)
    assert sk.node_count == 50_000 and sum(len(t.edges) for t in sk.trees) == 50_000 - 10


def test_an_nml_over_the_size_limit_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_nml(tmp_path / "big.nml", 2_000, 2)
    packed = tmp_path / "big.zip"
    with zipfile.ZipFile(packed, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.write(path, "big.nml")
    monkeypatch.setattr(nml_module, "MAX_NML_BYTES", 10_000)
    for candidate in (path, packed):
        with pytest.raises(AnnotationError, match="larger than 10000 bytes"):
            load_nml(candidate)


def _rezip(tmp_path: Path, replace: dict[str, bytes]) -> Path:
    out = tmp_path / "hostile.zip"
    with zipfile.ZipFile(VOLUME_ZIP) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, replace.get(info.filename, src.read(info)))
    return out


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not a zip at all", "not a zip"),
        (b"", "not a zip"),
    ],
)
def test_broken_volume_data_fails_cleanly(tmp_path: Path, payload: bytes, reason: str) -> None:
    path = _rezip(tmp_path, {"data_0_seg.zip": payload})
    assert load_nml(path).node_count == 2  # the skeleton still loads
    with pytest.raises(AnnotationError, match=reason):
        read_volume_layer(path, "seg")


def test_volume_data_without_properties_or_array_fails_cleanly(tmp_path: Path) -> None:
    empty = io.BytesIO()
    with zipfile.ZipFile(empty, "w") as inner:
        properties = (
            '{"dataLayers": [{"name": "seg", "boundingBox": {"topLeft": [0, 0, 0], "width": 2, '
            '"height": 2, "depth": 2}, "mags": [{"mag": [1, 1, 1], "path": "./seg/1"}]}]}'
        )
        inner.writestr("datasource-properties.json", properties)
    path = _rezip(tmp_path, {"data_0_seg.zip": empty.getvalue()})
    with pytest.raises(AnnotationError, match="unreadable zarr array"):
        read_volume_layer(path, "seg")


def test_a_huge_volume_is_refused_before_decoding(tmp_path: Path) -> None:
    with pytest.raises(AnnotationError, match=r"larger than|would decode"):
        read_volume_layer(VOLUME_ZIP, "seg", max_bytes=100)


def test_missing_layer_and_missing_data_are_named(tmp_path: Path) -> None:
    with pytest.raises(AnnotationError, match=r"volume layers match name='nope'"):
        read_volume_layer(VOLUME_ZIP, "nope")
    with zipfile.ZipFile(VOLUME_ZIP) as src:
        nml = src.read("vol.nml")
    only_nml = tmp_path / "only.zip"
    with zipfile.ZipFile(only_nml, "w") as dst:
        dst.writestr("vol.nml", nml)
    with pytest.raises(AnnotationError, match="missing from the zip"):
        read_volume_layer(only_nml, "seg")


_VALUES = st.sampled_from(
    ["1", "-2", "0", "1.0", "1e3", "3.5", "nan", "inf", "-inf", "1e308", "true", "False", " 1",
     "x", "", "1_0"]
)  # fmt: skip
_NAMES = st.sampled_from(
    ["id", "x", "y", "z", "radius", "rotX", "rotY", "rotZ", "inVp", "inMag", "bitDepth",
     "interpolation", "time", "custom"]
)  # fmt: skip


def _outcome(read: Callable[[dict[str, str]], object], attrs: dict[str, str]) -> object:
    try:
        return read(attrs)
    except AnnotationError as err:
        return ("refused", str(err))


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(_NAMES, _VALUES, max_size=14))
def test_fast_node_reader_agrees_with_the_checked_one(attrs: dict[str, str]) -> None:
    # The one-go conversion must give exactly what the attribute-by-attribute reader gives,
    # the same node or the same AnnotationError, for any mix of present and hostile values.
    attrs = {"id": "1", "x": "1", "y": "2", "z": "3", **attrs}
    assert _outcome(node_from_attrs, attrs) == _outcome(_checked_node, attrs)
