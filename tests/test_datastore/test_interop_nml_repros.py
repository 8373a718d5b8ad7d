"""The WEBKNOSSOS reproductions of the annotation issue, one test each (each seen failing first).

The same files go through webknossos 4.3.3 itself in tests/test_realenv_webknossos.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from medstore.datastore.annotations import (
    SkeletonAnnotation,
    SkeletonNode,
    Tree,
    VoxelSize,
)
from medstore.datastore.errors import AnnotationError
from medstore.datastore.interop.nml import dump_nml, load_nml, parse_nml, save_nml

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
VOLUME_ZIP = FIXTURES / "wk_volume_zarr3.zip"


def _nml(body: str, params: str = '<experiment name="ds"/><scale x="1" y="1" z="1"/>') -> str:
    return f'<?xml version="1.0"?><things><parameters>{params}</parameters>{body}</things>'


def _one_tree() -> list[Tree]:
    return [Tree(id=1, name="t", nodes=[SkeletonNode(id=1, position=(1, 2, 3))])]


def test_zip_with_volume_data_loads_skeleton_boxes_and_segments() -> None:
    sk = load_nml(VOLUME_ZIP)
    assert [t.name for t in sk.trees] == ["axon"] and sk.node_count == 2
    assert [b.name for b in sk.user_bounding_boxes] == ["roi"]
    (layer,) = sk.volumes
    assert (layer.name, layer.format, layer.largest_segment_id) == ("seg", "zarr3", 2)
    assert [(s.id, s.name, s.anchor_position) for s in layer.segments] == [
        (1, "marker", (1, 2, 3)), (2, "block", None),
    ]  # fmt: skip


def test_a_skeleton_without_voxel_size_is_not_written_unloadable(tmp_path: Path) -> None:
    sk = SkeletonAnnotation(trees=_one_tree())
    with pytest.raises(AnnotationError, match="voxel_size"):
        save_nml(sk, tmp_path / "x.nml")
    sized = SkeletonAnnotation(trees=_one_tree(), voxel_size=VoxelSize(x=1, y=1, z=2))
    text = dump_nml(sized)
    assert '<experiment name="skeleton"' in text and "<scale " in text


def test_integer_metadata_stays_integer() -> None:
    big = 2**53 + 1
    doc = _nml(
        '<thing id="1"><nodes/><edges/><metadata>'
        f'<metadataEntry key="n" numberValue="5"/><metadataEntry key="big" numberValue="{big}"/>'
        '<metadataEntry key="f" numberValue="0.1"/></metadata></thing>'
    )
    sk = parse_nml(doc)
    values = [m.value for m in sk.trees[0].metadata]
    assert values == [5, big, 0.1] and isinstance(values[0], int)
    text = dump_nml(sk)
    assert 'numberValue="5"' in text and f'numberValue="{big}"' in text
    assert parse_nml(text) == sk


def test_segment_anchors_are_integers_and_layer_fields_are_kept() -> None:
    doc = _nml(
        '<volume id="0" name="seg" location="data_0_seg.zip" format="zarr3" '
        'largestSegmentId="7"><segments><segment id="3" name="s" created="1700000000000" '
        'anchorPositionX="3581" anchorPositionY="2" anchorPositionZ="1"/></segments></volume>'
    )
    sk = parse_nml(doc)
    (layer,) = sk.volumes
    (segment,) = layer.segments
    assert segment.anchor_position == (3581, 2, 1) and segment.created == 1700000000000
    text = dump_nml(sk)
    assert 'anchorPositionX="3581"' in text and 'format="zarr3"' in text
    assert 'largestSegmentId="7"' in text and 'created="1700000000000"' in text
    assert parse_nml(text) == sk


def test_annotation_metadata_is_written() -> None:
    sk = SkeletonAnnotation(
        trees=_one_tree(), voxel_size=VoxelSize(x=1, y=1, z=1), metadata={"study": "lung ✓"}
    )
    text = dump_nml(sk)
    assert '<meta name="study" content="lung ✓"' in text
    assert parse_nml(text).metadata == {"study": "lung ✓"}
    with pytest.raises(AnnotationError, match="metadata"):
        SkeletonAnnotation(metadata={"n": 5})


def test_annotation_level_fields_are_typed() -> None:
    doc = _nml(
        "",
        '<experiment name="ds" organization="org" description="d" datasetId="abc"/>'
        '<scale x="0.5" y="0.5" z="1" unit="millimeter"/><time ms="1700000000000"/>'
        '<editPosition x="1" y="2" z="3"/><editRotation xRot="0" yRot="90" zRot="0"/>'
        '<zoomLevel zoom="1.5"/>',
    ).replace(
        "<things>", '<things><meta name="username" content="Jane"/>'
        '<meta name="annotationId" content="a1b2"/><meta name="k" content="v"/>'
    )  # fmt: skip
    sk = parse_nml(doc)
    assert (sk.dataset_name, sk.organization_id, sk.description, sk.dataset_id) == (
        "ds", "org", "d", "abc",
    )  # fmt: skip
    assert (sk.time, sk.edit_position, sk.edit_rotation, sk.zoom_level) == (
        1700000000000, (1.0, 2.0, 3.0), (0.0, 90.0, 0.0), 1.5,
    )  # fmt: skip
    assert (sk.owner_name, sk.annotation_id, sk.metadata) == ("Jane", "a1b2", {"k": "v"})
    assert parse_nml(dump_nml(sk)) == sk


def test_voxel_size_unit_is_checked() -> None:
    with pytest.raises(AnnotationError, match="unit"):
        VoxelSize(x=1, y=1, z=1, unit="furlong")
    assert VoxelSize(x=1, y=1, z=1, unit="mm").unit == "millimeter"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ('<thing id="1"><nodes><node id="1" x="0" y="0" z="0"/></nodes></thing>'
         '<comments><comment node="9" content="x"/></comments>', "comment"),
        ('<thing id="1"><nodes><node id="1" x="0" y="0" z="0"/></nodes></thing>'
         '<branchpoints><branchpoint id="9"/></branchpoints>', "branchpoint"),
        ('<thing id="1" groupId="4"><nodes/></thing>', "group"),
    ],
)  # fmt: skip
def test_references_to_missing_nodes_and_groups_are_refused(body: str, reason: str) -> None:
    with pytest.raises(AnnotationError, match=reason):
        parse_nml(_nml(body))


def test_volume_voxels_are_read(tmp_path: Path) -> None:
    from medstore.datastore.interop.wk_volume import read_volume_layer

    data = read_volume_layer(VOLUME_ZIP, "seg")
    assert data.shape == (6, 7, 8) and data.dtype == np.uint32
    assert data[1, 2, 3] == 1 and int((data == 2).sum()) == 2 * 2 * 3


def test_fractional_node_positions_are_refused_on_write() -> None:
    tree = Tree(id=1, nodes=[SkeletonNode(id=1, position=(0.1, 2, 3))])
    sk = SkeletonAnnotation(trees=[tree], voxel_size=VoxelSize(x=1, y=1, z=1))
    with pytest.raises(AnnotationError, match=r"position.*whole"):
        dump_nml(sk)


def test_volume_layer_becomes_a_label_and_back_on_a_non_ras_image(tmp_path: Path) -> None:
    from medstore.datastore.annotations.grid import ImageGrid
    from medstore.datastore.imaging import read_image
    from medstore.datastore.interop.wk_labels import (
        label_to_volume_zip,
        label_zip_bytes_from_array,
        volume_layer_to_label,
    )
    from medstore.datastore.interop.wk_volume import read_volume_layer
    from medstore.datastore.store.local import LocalDatastore
    from support.nifti import make_nifti

    image = np.zeros((6, 7, 8), np.int16)
    image[1, 2, 3] = 977  # the marker, in the file's own voxel order (L, A, I axes)
    affine = np.array([[-0.9, 0, 0, 30.0], [0, 1.1, 0, -40.0], [0, 0, -2.0, 60.0], [0, 0, 0, 1]])
    src = make_nifti(tmp_path / "lai.nii.gz", image, affine)
    store = LocalDatastore(tmp_path / "store", lock_timeout=5.0)
    store.add_image("ct", src)
    labels = np.zeros((6, 7, 8), np.uint8)
    labels[1, 2, 3] = 5
    wk_zip = tmp_path / "wk.zip"
    wk_zip.write_bytes(label_zip_bytes_from_array(labels, store, "ct", layer_name="tumour"))
    ann_id = volume_layer_to_label(store, "ct", wk_zip, label_tag="wk")
    stored = read_image(store.get_label_uri("ct", "wk")).array[0]
    x, y, z = (int(v) for v in ImageGrid.of_image(store, "ct").native_to_pixel([(1, 2, 3)])[0])
    assert stored[z, y, x] == 5 and read_image(src).array[0, z, y, x] == 977
    assert store.annotations.get("ct", ann_id).class_map == {5: "segment 5"}
    out = label_to_volume_zip(store, "ct", "wk", tmp_path / "back.zip", layer_name="tumour")
    assert (read_volume_layer(out, "tumour") == labels).all()


def test_load_nml_names_the_annotation_after_the_file(tmp_path: Path) -> None:
    # webknossos' Annotation.load names the annotation after the .nml file's stem, or after the
    # stem of the one .nml inside a zip; an explicit identifier still wins.
    sk = SkeletonAnnotation(identifier="x", voxel_size=VoxelSize(x=1, y=1, z=1), trees=_one_tree())
    nml = save_nml(sk, tmp_path / "cortex_run2.nml")
    assert load_nml(nml).identifier == "cortex_run2"
    assert load_nml(save_nml(sk, tmp_path / "packed.zip")).identifier == "packed"
    assert load_nml(VOLUME_ZIP).name == "vol"  # the zip holds vol.nml
    assert load_nml(nml, identifier="mine").identifier == "mine"
