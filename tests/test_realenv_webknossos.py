"""WEBKNOSSOS' own library reads the NML medstore writes, and medstore reads the NML it writes."""

from __future__ import annotations

import json
from pathlib import Path

from medstore.datastore.interop.nml import load_nml, save_nml
from realenv import marks, realenv

pytestmark = marks("webknossos")

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "wk_skeleton_two_trees_groups.nml"
QUIET = {"PYTHONWARNINGS": "ignore"}  # webknossos warns about optional image readers on import

WK_WRITES = """
import webknossos as wk
skeleton = wk.Skeleton(voxel_size=(2.0, 2.0, 3.0), dataset_name="tiny")
tree = skeleton.add_group("vessels").add_tree("artery")
start = tree.add_node(position=(1, 2, 3))
end = tree.add_node(position=(4, 5, 6), radius=2.0)
tree.add_edge(start, end)
skeleton.save("from_wk.nml")
"""

WK_READS = """
import json, sys
import webknossos as wk
skeleton = wk.Skeleton.load(sys.argv[1])
trees = {
    tree.name: {
        "nodes": sorted(tuple(node.position) for node in tree.nodes),
        "edges": tree.number_of_edges(),
        "group": tree.group.name if tree.group != skeleton else None,
    }
    for tree in skeleton.flattened_trees()
}
print(json.dumps({"voxel_size": list(skeleton.voxel_size), "trees": trees}))
"""


def test_medstore_reads_a_skeleton_webknossos_wrote(tmp_path: Path) -> None:
    realenv("webknossos").run(WK_WRITES, cwd=tmp_path, env=QUIET)
    skeleton = load_nml(tmp_path / "from_wk.nml")
    assert skeleton.identifier == "from_wk"  # named after the file, as Annotation.load names it
    assert (skeleton.voxel_size.x, skeleton.voxel_size.y, skeleton.voxel_size.z) == (2.0, 2.0, 3.0)
    [tree] = skeleton.trees
    assert tree.name == "artery"
    assert [node.position for node in tree.nodes] == [(1.0, 2.0, 3.0), (4.0, 5.0, 6.0)]
    assert [node.radius for node in tree.nodes] == [None, 2.0]
    assert [(edge.source, edge.target) for edge in tree.edges] == [
        (tree.nodes[0].id, tree.nodes[1].id)
    ]
    assert [group.name for group in skeleton.groups if group.id == tree.group_id] == ["vessels"]


def test_webknossos_reads_the_nml_medstore_writes(tmp_path: Path) -> None:
    ours = load_nml(FIXTURE)
    save_nml(ours, tmp_path / "ours.nml")
    out = realenv("webknossos").run(
        ["-c", WK_READS, str(tmp_path / "ours.nml")], cwd=tmp_path, env=QUIET
    )
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["voxel_size"] == [0.5, 0.5, 1.0]
    groups = {group.id: group.name for group in _all_groups(ours.groups)}
    expected = {
        tree.name: {
            "nodes": sorted(list(node.position) for node in tree.nodes),
            "edges": len(tree.edges),
            "group": groups.get(tree.group_id) if tree.group_id is not None else None,
        }
        for tree in ours.trees
    }
    assert len(expected) == 2
    assert seen["trees"] == expected


def _all_groups(groups: list) -> list:
    return [g for group in groups for g in [group, *_all_groups(group.children)]]


WK_READS_ALL = """
import json, sys
import webknossos as wk
a = wk.Annotation.load(sys.argv[1])
layers = {}
for name in a.get_volume_layer_names():
    segments = {str(k): [v.name, list(v.anchor_position) if v.anchor_position else None]
                for k, v in a.get_volume_layer_segments(name).items()}
    voxels = None
    if sys.argv[2:] == ["data"]:
        with a.temporary_volume_layer_copy(name) as layer:
            data = layer.get_mag(1).read()[0]
            voxels = {"shape": list(data.shape),
                      "nonzero": [[int(v) for v in p] + [int(data[tuple(p)])]
                                  for p in zip(*data.nonzero())]}
    layers[name] = {"segments": segments, "voxels": voxels}
trees = [[t.name, sorted([list(n.position), n.comment] for n in t.nodes)]
         for t in a.skeleton.flattened_trees()]
print(json.dumps({
    "name": a.dataset_name, "voxel_size": list(a.voxel_size_with_unit.factor),
    "unit": a.voxel_size_with_unit.unit.value,
    "description": a.description, "owner": a.owner_name, "annotation_id": a.annotation_id,
    "time": a.time, "edit_position": list(a.edit_position) if a.edit_position else None,
    "zoom": a.zoom_level, "metadata": a.metadata, "trees": trees, "layers": layers,
    "boxes": [[list(b.topleft), list(b.size), b.name] for b in a.user_bounding_boxes],
}))
"""


def test_webknossos_loads_what_medstore_writes_to_an_equal_annotation(tmp_path: Path) -> None:
    import numpy as np
    from medstore.datastore.annotations import (
        BoundingBox,
        Comment,
        SkeletonAnnotation,
        SkeletonNode,
        Tree,
        VoxelSize,
    )
    from medstore.datastore.interop.wk_volume import annotation_zip_bytes

    hostile = "lung ✓ \"quoted\" <tag> & 'x'"
    sk = SkeletonAnnotation(
        identifier="ann", dataset_name="ct_1", description=hostile, owner_name="Jane Doe",
        annotation_id="a1b2c3", time=2**41 + 1, edit_position=(1.5, 2.0, 1e6 + 0.3),
        zoom_level=0.1, metadata={"study": hostile, "empty": ""},
        voxel_size=VoxelSize(x=0.8, y=0.1, z=2.5, unit="mm"),
        trees=[Tree(id=1, name=hostile, nodes=[
            SkeletonNode(id=1, position=(0, 2, 3)), SkeletonNode(id=2, position=(4, 5, 6))])],
        comments=[Comment(node=2, content=hostile)],
        user_bounding_boxes=[BoundingBox(id=0, name="roi", top_left=(1, 2, 3), size=(4, 5, 6))],
    )  # fmt: skip
    labels = np.zeros((6, 7, 8), np.uint16)
    labels[1, 2, 3] = 3
    labels[5, 6, 7] = 65535
    path = tmp_path / "ours.zip"
    path.write_bytes(annotation_zip_bytes(sk, {"seg": labels}))
    out = realenv("webknossos").run(
        ["-c", WK_READS_ALL, str(path), "data"], cwd=tmp_path, env=QUIET
    )
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert (seen["name"], seen["voxel_size"], seen["unit"]) == (
        "ct_1",
        [0.8, 0.1, 2.5],
        "millimeter",
    )
    assert (seen["description"], seen["owner"], seen["annotation_id"]) == (
        hostile, "Jane Doe", "a1b2c3",
    )  # fmt: skip
    assert (seen["time"], seen["edit_position"], seen["zoom"]) == (
        2**41 + 1, [1.5, 2.0, 1e6 + 0.3], 0.1,
    )  # fmt: skip
    assert seen["metadata"] == {"study": hostile, "empty": ""}
    assert seen["trees"] == [[hostile, [[[0, 2, 3], None], [[4, 5, 6], hostile]]]]
    assert seen["boxes"] == [[[1, 2, 3], [4, 5, 6], "roi"]]
    layer = seen["layers"]["seg"]
    assert layer["segments"] == {"3": [None, None], "65535": [None, None]}
    nonzero = sorted(layer["voxels"]["nonzero"])
    assert nonzero == [[1, 2, 3, 3], [5, 6, 7, 65535]]
    # ...and medstore reads its own zip back to the same annotation and voxels.
    from medstore.datastore.interop.nml import load_nml
    from medstore.datastore.interop.wk_volume import read_volume_layer

    again = load_nml(path)
    mine = {"volumes", "id", "identifier"}  # the identifier is the caller's, not the file's
    assert again.model_dump(exclude=mine) == sk.model_dump(exclude=mine)
    assert (read_volume_layer(path, "seg") == labels).all()


def test_medstore_reads_the_volume_zip_webknossos_wrote(tmp_path: Path) -> None:
    """The committed fixture was written by webknossos; its voxels are what the library reads."""
    from medstore.datastore.interop.wk_volume import read_volume_layer

    fixture = Path(__file__).resolve().parent / "fixtures" / "wk_volume_zarr3.zip"
    out = realenv("webknossos").run(
        ["-c", WK_READS_ALL, str(fixture), "data"], cwd=tmp_path, env=QUIET
    )
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    ours = read_volume_layer(fixture, "seg")
    theirs = sorted(seen["layers"]["seg"]["voxels"]["nonzero"])
    assert sorted([*map(int, p), int(ours[p])] for p in zip(*ours.nonzero(), strict=True)) == theirs
    segments = load_nml(fixture).get_volume_layer_segments("seg")
    assert {str(k): [v.name, list(v.anchor_position) if v.anchor_position else None]
            for k, v in segments.items()} == seen["layers"]["seg"]["segments"]  # fmt: skip
