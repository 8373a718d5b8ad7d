"""Hugging Face ``datasets`` and an installed medstore share one environment without harm.

The folders ``datastore/`` and ``datasets/`` install as ``medstore.datastore`` and
``medstore.datasets``; nothing claims the top-level name ``datasets`` that Hugging Face owns.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from realenv import RealEnv, install_checkout, marks, realenv

pytestmark = marks("hf-datasets")

OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}

HF_WORKS = """
import datasets
ds = datasets.Dataset.from_dict({"case": ["a", "b", "c"], "voxels": [8, 27, 64]})
ds = ds.map(lambda row: {"side": round(row["voxels"] ** (1 / 3))})
ds.save_to_disk("hf_copy")
back = datasets.load_from_disk("hf_copy")
out["hf"] = {"file": datasets.__file__, "side": list(back["side"]), "rows": back.num_rows}
"""

MEDSTORE_WORKS = """
import nibabel as nib, numpy as np
import medstore.datastore, medstore.datasets
from medstore.datastore import LocalDatastore
from medstore.datasets import VolumeDataset
nib.save(nib.Nifti1Image(np.arange(24, dtype=np.int16).reshape(2, 3, 4), np.eye(4)), "ct.nii.gz")
store = LocalDatastore("store")
store.add_image("case_a", "ct.nii.gz", {"patient_id": "P1"})
item = VolumeDataset("store")[0]
out["medstore"] = {"files": [medstore.datastore.__file__, medstore.datasets.__file__],
                   "shape": list(item["image"].shape), "ids": store.list_images()}
"""


def _run_parts(env: RealEnv, *parts: str, cwd: Path) -> dict:
    """Run the parts in one process; each adds its findings to ``out``."""
    code = "\n".join(["import json", "out = {}", *parts, "print(json.dumps(out))"])
    return json.loads(env.run(code, cwd=cwd, env=OFFLINE).stdout.strip().splitlines()[-1])


def _check_hf(env: RealEnv, out: dict) -> None:
    assert out["side"] == [2, 3, 4]
    assert out["rows"] == 3
    assert Path(out["file"]).is_relative_to(env.root), out["file"]


def _check_medstore(env: RealEnv, out: dict) -> None:
    assert out["ids"] == ["case_a"]
    assert out["shape"][0] == 1
    assert sorted(out["shape"][1:]) == [2, 3, 4]
    for file in out["files"]:
        assert Path(file).is_relative_to(env.root), f"{file} is not the installed copy"


def _module_missing(env: RealEnv, module: str, cwd: Path) -> bool:
    probe = f"import importlib.util; print(importlib.util.find_spec({module!r}) is None)"
    return env.run(probe, cwd=cwd).stdout.strip() == "True"


@dataclass(frozen=True)
class Installed:
    """A copy of the ``hf-datasets`` venv with this checkout installed, and the wheel used."""

    env: RealEnv
    wheel: Path


@pytest.fixture(scope="module")
def with_medstore(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """``pip install`` of this checkout (non-editable) into a copy of the ``hf-datasets`` venv."""
    work = tmp_path_factory.mktemp("coexist")
    env = realenv("hf-datasets").clone(work / "venv")
    return Installed(env, install_checkout(env, cwd=work))


def test_hf_datasets_builds_and_reloads_a_dataset(tmp_path: Path) -> None:
    env = realenv("hf-datasets")
    _check_hf(env, _run_parts(env, HF_WORKS, cwd=tmp_path)["hf"])


def test_pip_install_provides_only_the_medstore_namespace(
    with_medstore: Installed, tmp_path: Path
) -> None:
    env = with_medstore.env
    record = env.run(
        "import importlib.metadata as m; print('\\n'.join(map(str, m.files('medstore'))))",
        cwd=tmp_path,
    ).stdout.split()
    tops = {Path(entry).parts[0] for entry in record if not entry.startswith("..")}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"medstore"}, tops
    assert any(entry.startswith("medstore/datasets/") for entry in record)
    assert any(entry.startswith("medstore/datastore/") for entry in record)
    assert any(entry.endswith("bin/medstore") for entry in record)  # the console script
    # Run from outside the clone: the checkout's folders must not be importable by their names.
    assert _module_missing(env, "datastore", tmp_path)
    assert not _module_missing(env, "datasets", tmp_path)  # Hugging Face's, below
    # Both in one process, each doing real work.
    out = _run_parts(env, HF_WORKS, MEDSTORE_WORKS, cwd=tmp_path)
    _check_hf(env, out["hf"])
    _check_medstore(env, out["medstore"])


def test_uninstalling_either_leaves_the_other_working(
    with_medstore: Installed, tmp_path: Path
) -> None:
    env = with_medstore.env.clone(tmp_path / "venv")
    env.pip("uninstall", "--yes", "medstore", cwd=tmp_path)
    # pip leaves the empty namespace folder medstore/ behind; both packages are gone.
    assert _module_missing(env, "medstore.datastore", tmp_path)
    assert _module_missing(env, "medstore.datasets", tmp_path)
    _check_hf(env, _run_parts(env, HF_WORKS, cwd=tmp_path)["hf"])

    env.pip("install", "--quiet", "--no-deps", str(with_medstore.wheel), cwd=tmp_path)
    env.pip("uninstall", "--yes", "datasets", cwd=tmp_path)
    assert _module_missing(env, "datasets", tmp_path)
    _check_medstore(env, _run_parts(env, MEDSTORE_WORKS, cwd=tmp_path)["medstore"])
