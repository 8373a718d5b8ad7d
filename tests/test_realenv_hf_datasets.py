"""Hugging Face ``datasets`` and an installed medstore share one environment without harm.

The folders ``datastore/`` and ``datasets/`` install as ``medstore.datastore`` and
``medstore.datasets``; nothing claims the top-level name ``datasets`` that Hugging Face owns.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from realenv import BUILD_TIMEOUT_S, RealEnv, install_checkout, realenv

pytestmark = [pytest.mark.realenv, pytest.mark.timeout(BUILD_TIMEOUT_S)]

OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}

HF_WORKS = """
import json, os, datasets
ds = datasets.Dataset.from_dict({"case": ["a", "b", "c"], "voxels": [8, 27, 64]})
ds = ds.map(lambda row: {"side": round(row["voxels"] ** (1 / 3))})
ds.save_to_disk("hf_copy")
back = datasets.load_from_disk("hf_copy")
print(json.dumps({"file": datasets.__file__, "side": list(back["side"]), "rows": back.num_rows}))
"""

MEDSTORE_WORKS = """
import json
import nibabel as nib, numpy as np
import medstore.datastore, medstore.datasets
from medstore.datastore import LocalDatastore
from medstore.datasets import VolumeDataset
nib.save(nib.Nifti1Image(np.arange(24, dtype=np.int16).reshape(2, 3, 4), np.eye(4)), "ct.nii.gz")
store = LocalDatastore("store")
store.add_image("case_a", "ct.nii.gz", {"patient_id": "P1"})
item = VolumeDataset("store")[0]
print(json.dumps({"files": [medstore.datastore.__file__, medstore.datasets.__file__],
                  "shape": list(item["image"].shape), "ids": store.list_images()}))
"""


def _json(env: RealEnv, code: str, cwd: Path) -> dict:
    return json.loads(env.run(code, cwd=cwd, env=OFFLINE).stdout.strip().splitlines()[-1])


def _assert_hf_works(env: RealEnv, cwd: Path) -> None:
    out = _json(env, HF_WORKS, cwd)
    assert out["side"] == [2, 3, 4]
    assert out["rows"] == 3
    assert Path(out["file"]).is_relative_to(env.root), out["file"]


def _assert_medstore_works(env: RealEnv, cwd: Path) -> None:
    out = _json(env, MEDSTORE_WORKS, cwd)
    assert out["ids"] == ["case_a"]
    assert out["shape"][0] == 1
    assert sorted(out["shape"][1:]) == [2, 3, 4]
    for file in out["files"]:
        assert Path(file).is_relative_to(env.root), f"{file} is not the installed copy"


def _module_missing(env: RealEnv, module: str, cwd: Path) -> bool:
    probe = f"import importlib.util; print(importlib.util.find_spec({module!r}) is None)"
    return env.run(probe, cwd=cwd).stdout.strip() == "True"


@pytest.fixture(scope="module")
def with_medstore(tmp_path_factory: pytest.TempPathFactory) -> RealEnv:
    """A copy of the ``hf-datasets`` venv with this checkout ``pip install``-ed (non-editable)."""
    work = tmp_path_factory.mktemp("coexist")
    env = realenv("hf-datasets").clone(work / "venv")
    install_checkout(env, cwd=work)
    return env


def test_hf_datasets_builds_and_reloads_a_dataset(tmp_path: Path) -> None:
    _assert_hf_works(realenv("hf-datasets"), tmp_path)


def test_pip_install_provides_only_the_medstore_namespace(
    with_medstore: RealEnv, tmp_path: Path
) -> None:
    record = with_medstore.run(
        "import importlib.metadata as m; print('\\n'.join(map(str, m.files('medstore'))))",
        cwd=tmp_path,
    ).stdout.split()
    tops = {Path(entry).parts[0] for entry in record if not entry.startswith("..")}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"medstore"}, tops
    assert any(entry.startswith("medstore/datasets/") for entry in record)
    assert any(entry.startswith("medstore/datastore/") for entry in record)
    # Run from outside the clone: the checkout's folders must not be importable by their names.
    assert _module_missing(with_medstore, "datastore", tmp_path)
    assert not _module_missing(with_medstore, "datasets", tmp_path)  # Hugging Face's, below
    _assert_hf_works(with_medstore, tmp_path)
    _assert_medstore_works(with_medstore, tmp_path)
    both = with_medstore.run(
        "import datasets, medstore.datasets as md; print(datasets.Dataset.__module__, md.__name__)",
        cwd=tmp_path,
    )
    assert both.stdout.split() == ["datasets.arrow_dataset", "medstore.datasets"]


def test_uninstalling_either_leaves_the_other_working(
    with_medstore: RealEnv, tmp_path: Path
) -> None:
    env = with_medstore.clone(tmp_path / "venv")
    env.pip("uninstall", "--yes", "medstore", cwd=tmp_path)
    # pip leaves the empty namespace folder medstore/ behind; both packages are gone.
    assert _module_missing(env, "medstore.datastore", tmp_path)
    assert _module_missing(env, "medstore.datasets", tmp_path)
    _assert_hf_works(env, tmp_path)

    install_checkout(env, cwd=tmp_path / "again", no_deps=True)
    env.pip("uninstall", "--yes", "datasets", cwd=tmp_path)
    assert _module_missing(env, "datasets", tmp_path)
    _assert_medstore_works(env, tmp_path)
