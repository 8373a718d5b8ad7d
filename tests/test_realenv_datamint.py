"""Datamint's own entity classes (datamint 2.45) accept the annotation dicts medstore writes."""

from __future__ import annotations

import json
from pathlib import Path

from medstore.datastore.interop.datamint import from_datamint, to_datamint
from realenv import marks, realenv

pytestmark = marks("datamint")

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "datamint_payloads.json"

DATAMINT_VALIDATES = """
import json, sys
import datamint.entities.annotations as entities
out = {}
for key, case in json.load(open(sys.argv[1])).items():
    annotation = getattr(entities, case["class"]).model_validate(case["entity"])
    out[key] = {"class": type(annotation).__name__,
                "dump": json.loads(annotation.model_dump_json(exclude_none=True))}
print(json.dumps(out))
"""


def test_datamint_validates_and_redumps_our_annotations(tmp_path: Path) -> None:
    fixture = json.loads(FIXTURE.read_text())
    ours = {
        key: {"class": case["class"], "entity": to_datamint(from_datamint(case["model_dump_json"]))}
        for key, case in fixture.items()
    }
    (tmp_path / "ours.json").write_text(json.dumps(ours))
    # From tmp_path: datamint writes its log folder (.log/) into the working folder.
    out = realenv("datamint").run(["-c", DATAMINT_VALIDATES, "ours.json"], cwd=tmp_path)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert {key: value["class"] for key, value in seen.items()} == {
        key: case["class"] for key, case in fixture.items()
    }
    assert len(seen) == 8
    for key, value in seen.items():
        assert value["dump"] == json.loads(json.dumps(ours[key]["entity"])), key
        assert value["dump"] == fixture[key]["model_dump_json"], key
