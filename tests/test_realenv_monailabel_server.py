"""MONAI Label 0.8.5's server running on a medstore store, and its datastore's signatures.

One venv clone for the module, set up as MONAI Label's server environment wants it: medstore
installed ``--no-deps`` beside pydicom 2.4.4, plus orjson, msgspec, defusedxml and tqdm.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from realenv import ML_SERVER_EXTRAS, RealEnv, install_checkout, marks, realenv

pytestmark = marks("monailabel")

BENCH = Path(__file__).resolve().parents[1] / "bench"

# Every parameter of MONAI Label's methods must be accepted where MONAI Label passes it: same
# name, same position, same default (a required parameter may become optional); anything
# medstore adds must be optional.
SIGNATURES = """
import inspect, json
from monailabel.datastore.local import LocalDatastore as MonaiLabelStore
from monailabel.interfaces.datastore import Datastore
from medstore.datastore import LocalDatastore
from medstore.datastore.interop.monailabel import MonaiLabelDatastore

def problems(theirs, ours):
    found = []
    mine = list(inspect.signature(ours).parameters.values())
    for i, p in enumerate(inspect.signature(theirs).parameters.values()):
        q = mine[i] if i < len(mine) else None
        if q is None or q.name != p.name or q.kind is not p.POSITIONAL_OR_KEYWORD:
            found.append(f"{p.name}: not accepted at position {i}")
        elif p.default is not p.empty and q.default != p.default:
            found.append(f"{p.name}: default {q.default!r}, MONAI Label {p.default!r}")
    theirs_n = len(inspect.signature(theirs).parameters)
    for q in mine[theirs_n:]:
        if q.default is q.empty and q.kind not in (q.VAR_POSITIONAL, q.VAR_KEYWORD):
            found.append(f"{q.name}: required, MONAI Label has no such parameter")
    return found

def compare(theirs_cls, ours_cls, names):
    return {n: problems(getattr(theirs_cls, n), getattr(ours_cls, n, None) or (lambda: None))
            for n in sorted(names)}

public = [n for n, v in vars(MonaiLabelStore).items() if not n.startswith("_") and callable(v)]
abstract = sorted(Datastore.__abstractmethods__)
print(json.dumps({
    "local": compare(MonaiLabelStore, LocalDatastore, [*public, "__init__"]),
    "server": compare(Datastore, MonaiLabelDatastore, abstract),
    "public": sorted(public),
}))
"""

# MONAI Label's own tests/unit/endpoints/test_datastore.py requests, in its order.
MONAI_LABEL_REQUESTS = [
    "list",
    "add image (upload)",
    "save label, custom tag",
    "remove label",
    "remove image",
    "download image",
    "download label",
    "image info",
    "label info",
    "update image info",
    "update label info",
    "download dataset",
]


@pytest.fixture(scope="module")
def server_env(tmp_path_factory: pytest.TempPathFactory) -> RealEnv:
    work = tmp_path_factory.mktemp("ml-server-env")
    env = realenv("monailabel").clone(work / "venv")
    install_checkout(env, cwd=work, no_deps=True)
    env.pip("install", "--quiet", *env.constraint_args, *ML_SERVER_EXTRAS, cwd=work)
    return env


def test_every_monai_label_parameter_is_accepted(server_env: RealEnv, tmp_path: Path) -> None:
    out = server_env.run(SIGNATURES, cwd=tmp_path).stdout.strip().splitlines()[-1]
    found = json.loads(out)
    assert {"get_image", "get_label", "datalist", "get_dataset_archive"} <= set(found["public"])
    local = {name: p for name, p in found["local"].items() if p}
    # The one documented difference: medstore's default patterns cover more formats.
    assert local == {"__init__": [f"extensions: default {_medstore_default()!r}, "
                                  "MONAI Label ('*.nii.gz', '*.nii')"]}  # fmt: skip
    assert {name: p for name, p in found["server"].items() if p} == {}
    assert len(found["server"]) == 26  # every abstract method of MONAI Label's Datastore


def _medstore_default() -> tuple[str, ...]:
    from medstore.datastore import DEFAULT_EXTENSIONS

    return DEFAULT_EXTENSIONS


def test_monai_labels_server_runs_on_a_medstore_store(server_env: RealEnv, tmp_path: Path) -> None:
    """MONAI Label's endpoint requests, bad input, other processes, 200 interleaved saves."""
    script = str(BENCH / "ml_server.py")
    args = [script, "--work", str(tmp_path / "work"), "--other-python", sys.executable]
    lines = server_env.run(args, cwd=tmp_path).stdout.strip().splitlines()
    results = [json.loads(line) for line in lines if line.startswith('{"name"')]
    summary = json.loads(lines[-1])
    by_name = {r["name"]: r for r in results}
    assert [r["name"] for r in results][: len(MONAI_LABEL_REQUESTS)] == MONAI_LABEL_REQUESTS
    assert [r for r in results if not r["ok"]] == []
    assert by_name["download unknown image"]["status"] == 404
    assert by_name["bad label tag"]["status"] == 400
    assert by_name["save while locked"]["status"] == 503
    assert all(r["status"] < 500 or r["name"] == "save while locked" for r in results)
    assert by_name["medstore label from another process, seen"]["ok"]
    assert summary["failed"] == [] and summary["saves"] == 200
    assert (summary["lost_files"], summary["missing_entries"], summary["tags_not_served"]) == (
        0,
        0,
        0,
    )
