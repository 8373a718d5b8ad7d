"""Tests of WEBKNOSSOS NML import/export: fixtures from webknossos 4.3.3 and a handwritten file."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from medstore.datastore.annotations import MetadataEntry, SkeletonAnnotation
from medstore.datastore.errors import AnnotationError
from medstore.datastore.interop.nml import dump_nml, load_nml, parse_nml, save_nml

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
WK_FILE = FIXTURES / "wk_skeleton_two_trees_groups.nml"
FULL_FILE = FIXTURES / "handwritten_full_example.nml"


def _nml(body: str, params: str = "") -> str:
    return f'<?xml version="1.0"?><things><parameters>{params}</parameters>{body}</things>'


def test_webknossos_fixture_is_read_completely() -> None:
    sk = load_nml(WK_FILE)
    assert (sk.dataset_name, sk.organization_id, sk.experiment) == ("ct_chest_demo", "acme", {})
    assert sk.voxel_size is not None
    assert (sk.voxel_size.x, sk.voxel_size.y, sk.voxel_size.z, sk.voxel_size.unit) == (
        0.5, 0.5, 1.0, "nanometer",
    )  # fmt: skip
    artery, airway = sk.trees
    assert (artery.id, artery.name, artery.group_id, artery.color) == (
        3, "left_pulmonary_artery", 2, (1.0, 0.0, 0.0, 1.0),
    )  # fmt: skip
    assert [n.id for n in artery.nodes] == [4, 5, 6, 7]
    assert artery.nodes[0].radius == 2.0 and artery.nodes[2].radius is None
    assert artery.nodes[1].position == (15.0, 25.0, 31.0)
    assert [(e.source, e.target) for e in artery.edges] == [(4, 5), (5, 6), (5, 7)]
    assert artery.metadata == [
        MetadataEntry(key="label", value="artery"),
        MetadataEntry(key="confidence", value=0.9),
        MetadataEntry(key="tags", value=["a", "b"]),
    ]
    assert airway.group_id is None and airway.metadata == []
    assert [b.id for b in sk.branchpoints] == [5]
    assert [(c.node, c.content) for c in sk.comments] == [
        (11, "carina"), (4, "origin"), (7, "branch tip"),
    ]  # fmt: skip
    (arteries,) = sk.groups
    assert (arteries.id, arteries.name, [(g.id, g.name) for g in arteries.children]) == (
        1, "arteries", [(2, "left")],
    )  # fmt: skip
    assert sk.node_count == 7


def test_handwritten_fixture_every_element() -> None:
    sk = load_nml(FULL_FILE)
    assert sk.metadata == {"writer": "handwritten"}
    assert (sk.annotation_id, sk.owner_name) == ("0123456789abcdef01234567", "Jane Doe")
    assert sk.dataset_id == "abc123"
    assert sk.voxel_size is not None and sk.voxel_size.unit == "millimeter"
    assert sk.time == 1700000000000
    assert sk.edit_position is not None and sk.zoom_level is not None
    assert list(sk.parameters) == ["offset", "activeNode"]
    assert sk.task_bounding_box is not None and sk.task_bounding_box.size == (512, 512, 80)
    (roi,) = sk.user_bounding_boxes
    assert (roi.id, roi.name, roi.is_visible, roi.top_left, roi.size) == (
        0, "roi", True, (100, 180, 30), (64, 64, 20),
    )  # fmt: skip
    assert roi.color == (0.2, 0.5, 0.1, 1.0)
    node = sk.trees[0].nodes[0]
    assert (node.rotation, node.in_vp, node.in_mag, node.bit_depth) == ((0.0, 0.0, 0.0), 0, 1, 8)
    assert (node.interpolation, node.time) == (True, 1700000000100)
    assert sk.trees[0].nodes[2].interpolation is None
    assert sk.trees[1].is_visible is False
    assert sk.branchpoints[0].time == 1700000000300


@pytest.mark.parametrize("fixture", [WK_FILE, FULL_FILE], ids=["webknossos", "handwritten"])
@pytest.mark.parametrize("suffix", [".nml", ".zip"])
def test_round_trip_keeps_everything(fixture: Path, suffix: str, tmp_path: Path) -> None:
    original = load_nml(fixture)
    out = save_nml(original, tmp_path / f"copy{suffix}")
    assert zipfile.is_zipfile(out) == (suffix == ".zip")
    again = load_nml(out, identifier=original.identifier)  # else named after the copy
    assert again == original
    assert again.model_dump() == original.model_dump()
    assert dump_nml(again) == dump_nml(original)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("true", True), ("True", True), ("TRUE", True), ("false", False), ("False", False)],
)
def test_interpolation_booleans(raw: str, expected: bool) -> None:
    doc = _nml(
        f'<thing id="1"><nodes><node id="1" x="1" y="2" z="3" interpolation="{raw}"/></nodes>'
        "</thing>"
    )
    assert parse_nml(doc).trees[0].nodes[0].interpolation is expected


def test_volume_segment_info_round_trips(tmp_path: Path) -> None:
    doc = _nml(
        '<volume id="0" name="seg" location="data_0.zip" fallbackLayer="segmentation">'
        '<segments><segment id="3" name="liver" anchorPositionX="1" anchorPositionY="2" '
        'anchorPositionZ="3" color.r="0.1" color.g="0.2" color.b="0.3" color.a="1.0"/>'
        "</segments></volume>",
        '<experiment name="ds"/><scale x="1" y="1" z="1"/>',
    )
    sk = parse_nml(doc)
    (segment,) = sk.volumes[0].segments
    assert (segment.name, segment.anchor_position, segment.color) == (
        "liver", (1, 2, 3), (0.1, 0.2, 0.3, 1.0),
    )  # fmt: skip
    assert load_nml(save_nml(sk, tmp_path / "v.nml"), identifier=sk.identifier) == sk


BOMB = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<things><thing id="1" name="&lol3;"/></things>"""
EXTERNAL = """<?xml version="1.0"?>
<!DOCTYPE things [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<things><thing id="1" name="&xxe;"/></things>"""


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ("this is not xml", "well-formed"),
        (BOMB, "safe"),
        (EXTERNAL, "safe"),
        ("<html/>", "not an NML document"),
        (_nml('<thing id="1"><nodes><node x="1" y="2" z="3"/></nodes></thing>'), "'id'"),
        (_nml('<thing id="1"><nodes><node id="1" x="1" y="2"/></nodes></thing>'), "x, y and z"),
        (_nml('<thing id="1"><nodes><node id="a" x="1" y="2" z="3"/></nodes></thing>'), "bad 'id'"),
        (
            _nml(
                '<thing id="1"><nodes><node id="1" x="1" y="2" z="3"/></nodes></thing>'
                '<thing id="2"><nodes><node id="1" x="1" y="2" z="3"/></nodes></thing>'
            ),
            "duplicate node id 1",
        ),
        (
            _nml(
                '<thing id="1"><nodes><node id="1" x="1" y="2" z="3"/></nodes>'
                '<edges><edge source="1" target="9"/></edges></thing>'
            ),
            "refers to a node missing",
        ),
        (_nml('<thing id="1"/><thing id="1"/>'), "duplicate tree id"),
        (_nml("", '<scale x="0" y="1" z="1"/>'), "voxel_size|greater than 0"),
        (_nml('<thing id="1"><nodes><node id="1" x="nan" y="2" z="3"/></nodes></thing>'), "finite"),
    ],
)
def test_malformed_nml_is_refused(doc: str, reason: str) -> None:
    with pytest.raises(AnnotationError, match=reason):
        parse_nml(doc)


def test_zip_with_other_members_gives_its_skeleton(tmp_path: Path) -> None:
    path = tmp_path / "annotation.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("annotation.nml", WK_FILE.read_bytes())
        archive.writestr("data_0_Volume.zip", b"PK\x05\x06" + b"\x00" * 18)
    assert load_nml(path) == load_nml(WK_FILE, identifier="annotation")


def test_bad_zips_are_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as archive:
        archive.writestr("readme.txt", "hi")
    with pytest.raises(AnnotationError, match=r"holds 0 \.nml files"):
        load_nml(empty)
    broken = tmp_path / "broken.nml"
    broken.write_bytes(b"<things><thing")
    with pytest.raises(AnnotationError, match="well-formed"):
        load_nml(broken)


def test_only_skeletons_export(tmp_path: Path) -> None:
    from medstore.datastore.annotations import LabelAnnotation

    with pytest.raises(AnnotationError, match="only skeleton annotations"):
        save_nml(LabelAnnotation(identifier="x"), tmp_path / "x.nml")  # type: ignore[arg-type]
    assert not (tmp_path / "x.nml").exists()
    empty = SkeletonAnnotation(voxel_size={"x": 1, "y": 1, "z": 1})
    assert load_nml(save_nml(empty, tmp_path / "e.nml")).voxel_size == empty.voxel_size
