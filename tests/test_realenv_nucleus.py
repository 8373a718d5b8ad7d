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
