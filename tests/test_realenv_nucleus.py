"""Scale Nucleus' own client accepts every payload medstore writes and emits it unchanged."""

from __future__ import annotations

import json
from pathlib import Path

from medstore.datastore.interop.nucleus import from_nucleus, to_nucleus
from realenv import marks, realenv

pytestmark = marks("scale-nucleus")

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "nucleus_payloads.json"

NUCLEUS_ROUND_TRIP = """
import json, sys
from nucleus import SceneCategoryAnnotation
from nucleus.annotation import Annotation
out = {}
for key, payload in json.load(open(sys.argv[1])).items():
    cls = SceneCategoryAnnotation if key == "scene_category" else Annotation
    annotation = cls.from_json(payload)
    out[key] = {"class": type(annotation).__name__, "payload": annotation.to_payload()}
print(json.dumps(out))
"""

CLASSES = {
    "box": "BoxAnnotation",
    "line": "LineAnnotation",
    "polygon": "PolygonAnnotation",
    "keypoints": "KeypointsAnnotation",
    "cuboid": "CuboidAnnotation",
    "category": "CategoryAnnotation",
    "multicategory": "MultiCategoryAnnotation",
    "scene_category": "SceneCategoryAnnotation",
    "segmentation": "SegmentationAnnotation",
}


def test_nucleus_parses_and_reemits_our_payloads(tmp_path: Path) -> None:
    fixture = json.loads(FIXTURE.read_text())
    ours = {key: to_nucleus(from_nucleus(payload)) for key, payload in fixture.items()}
    (tmp_path / "ours.json").write_text(json.dumps(ours))
    out = realenv("scale-nucleus").run(["-c", NUCLEUS_ROUND_TRIP, "ours.json"], cwd=tmp_path)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert {key: value["class"] for key, value in seen.items()} == CLASSES
    for key, value in seen.items():
        assert value["payload"] == ours[key], key
        assert value["payload"] == fixture[key], key


LIBRARY_WRITES = """
import json, sys
from nucleus import (BoxAnnotation, CategoryAnnotation, CuboidAnnotation, KeypointsAnnotation,
                     LineAnnotation, MultiCategoryAnnotation, Point, Point3D, PolygonAnnotation,
                     Segment, SegmentationAnnotation)
from nucleus.annotation import Keypoint
text = "n\\u00f6dule \\u2603\\nline two"
made = {
    "box": BoxAnnotation(label=text, x=0.1, y=1e6 + 0.3, width=0.2, height=2**53 + 1,
                         reference_id="img", metadata={"big": 2**53 + 1, "list": []}),
    "line": LineAnnotation(label="l", vertices=[Point(0.1, 0.2), Point(1e6 + 0.3, 7)],
                           reference_id="img", annotation_id="line-1"),
    "polygon": PolygonAnnotation(label="p", vertices=[Point(0, 0), Point(0.1, 0), Point(0, 0.7)],
                                 reference_id="img", embedding_vector=[0.1, 0.2]),
    "keypoints": KeypointsAnnotation(label="k", names=["a", "b"], skeleton=None,
                                     keypoints=[Keypoint(1.5, 2), Keypoint(visible=False)],
                                     reference_id="img"),
    "cuboid": CuboidAnnotation(label="c", position=Point3D(0.1, 0.2, 0.3),
                               dimensions=Point3D(1, 2, 1e6 + 0.3), yaw=0.1, reference_id="s",
                               metadata={"k": None}, track_reference_id="t"),
    "category": CategoryAnnotation(label="benign", reference_id="img", taxonomy_name=text),
    "multicategory": MultiCategoryAnnotation(labels=["a", "\\u00e9"], reference_id="img"),
    "mask": SegmentationAnnotation(mask_url="s3://b/m.png", annotations=[], reference_id="img"),
    "mask2": SegmentationAnnotation(mask_url="s3://b/m.png", reference_id="img",
                                    annotations=[Segment("liver", 1, {"x": 0.1})]),
}
print(json.dumps({key: ann.to_payload() for key, ann in made.items()}))
"""

LIBRARY_READS = """
import json, sys
from nucleus.annotation import Annotation
out = {}
for key, payload in json.load(open(sys.argv[1])).items():
    annotation = Annotation.from_json(payload)
    out[key] = annotation.to_payload()
print(json.dumps(out))
"""


def test_library_payloads_with_hostile_values_round_trip_exactly(tmp_path: Path) -> None:
    """scale-nucleus writes, medstore reads and writes back, scale-nucleus reads the same."""
    env = realenv("scale-nucleus")
    written = json.loads(
        env.run(["-c", LIBRARY_WRITES], cwd=tmp_path).stdout.strip().splitlines()[-1]
    )
    ours = {key: to_nucleus(from_nucleus(payload)) for key, payload in written.items()}
    for key, payload in written.items():
        assert ours[key] == payload, key
        assert json.dumps(ours[key]) == json.dumps(payload), key  # same numbers, same types
    (tmp_path / "ours.json").write_text(json.dumps(ours))
    reread = json.loads(
        env.run(["-c", LIBRARY_READS, "ours.json"], cwd=tmp_path).stdout.strip().splitlines()[-1]
    )
    assert reread == written


def test_native_entities_export_to_payloads_the_library_accepts(tmp_path: Path) -> None:
    from medstore.datastore.annotations import (
        BoxAnnotation,
        CategoryAnnotation,
        CuboidAnnotation,
        KeypointsAnnotation,
        LineAnnotation,
        MultiCategoryAnnotation,
        PolygonAnnotation,
        Segment,
        VolumeSegmentation,
    )

    native = {
        "box": BoxAnnotation.from_points([(0.1, 0.2), (1e6 + 0.3, 7)], identifier="b",
                                         reference_id="img"),
        "line": LineAnnotation(identifier="l", points=[(0, 0), (3, 4)], reference_id="img"),
        "polygon": PolygonAnnotation(identifier="p", points=[(0, 0), (1, 0), (0, 1)],
                                     reference_id="img"),
        "keypoints": KeypointsAnnotation(identifier="k", keypoints=[{"x": 1, "y": 2}],
                                         names=["a"], reference_id="img"),
        "cuboid": CuboidAnnotation(identifier="c", position=(1, 2, 3), dimensions=(1, 1, 1),
                                   reference_id="s", metadata={"k": "v"}, task_id="t"),
        "category": CategoryAnnotation(identifier="finding", value="benign", reference_id="i"),
        "multicategory": MultiCategoryAnnotation(identifier="q", values=["a"], reference_id="i"),
        "mask": VolumeSegmentation(segments=[Segment(name="liver", idx=1)], mask_url="s3://m",
                                   reference_id="img"),
    }  # fmt: skip
    ours = {key: to_nucleus(ann) for key, ann in native.items()}
    (tmp_path / "ours.json").write_text(json.dumps(ours))
    out = realenv("scale-nucleus").run(["-c", LIBRARY_READS, "ours.json"], cwd=tmp_path)
    reread = json.loads(out.stdout.strip().splitlines()[-1])
    assert reread == ours
    assert reread["category"]["taxonomy_name"] == "finding"
