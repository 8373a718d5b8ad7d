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
