"""MONAI Label 0.8.5's own server (its FastAPI app, through its TestClient) on a medstore store.

Run with the python of a venv holding ``monailabel==0.8.5`` and medstore (installed as MONAI
Label's server environment wants it: ``--no-deps`` beside pydicom 2.4.4, plus orjson, msgspec,
defusedxml and tqdm)::

    "$ML_PYTHON" bench/ml_server.py --work DIR --other-python .venv/bin/python

``DIR`` (new) gets a studies folder and an app whose ``main.py`` subclasses ``MONAILabelApp``
with ``init_datastore = medstore.datastore.interop.monailabel.init_datastore``. The script
sends the datastore requests of MONAI Label's own ``tests/unit/endpoints/test_datastore.py``,
then bad input, a lock held by another process, a ``medstore label`` from another process, and
200 interleaved label saves (100 through the server, 100 by ``save_label`` in another process).
It prints one JSON line per request (``name``, ``status``, ``ok``) and a last line with the
summary: ``{"requests": N, "failed": [...], "saves": 200, "lost_files": 0, "missing_entries": 0}``.
``--other-python`` runs the other processes (default: this interpreter).
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

SHAPE = (8, 8, 4)
CASES = 20
SAVES_EACH = 100
TAGS_EACH = SAVES_EACH // CASES

APP_MAIN = """
from monailabel.interfaces.app import MONAILabelApp

from medstore.datastore.interop.monailabel import init_datastore


class MedstoreApp(MONAILabelApp):
    init_datastore = init_datastore
"""

OTHER_SAVES = """
import sys
from medstore.datastore import LocalDatastore
root, label, cases, tags = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
store = LocalDatastore(root, refresh=False)
for t in range(tags):
    for c in range(cases):
        store.save_label(f"c{c:02d}", label, f"proc{t}", {"by": "process"})
print("done", flush=True)
"""

LABEL_CLI = """
import sys
from medstore.datastore.cli import main
raise SystemExit(main(["--store", sys.argv[1], "label", "spleen_3", sys.argv[2], "--tag", "cli"]))
"""

HOLD_LOCK = """
import sys, time
from filelock import FileLock
with FileLock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def nifti_bytes(value: int, dtype: str) -> bytes:
    """A small gzipped NIfTI filled with ``value`` (identity affine)."""
    import gzip

    import nibabel as nib
    import numpy as np

    img = nib.Nifti1Image(np.full(SHAPE, value, dtype=dtype), np.eye(4))
    return gzip.compress(img.to_bytes(), mtime=0)


def make_studies(studies: Path) -> None:
    """``spleen_3`` with a ``final`` label (as MONAI Label's test data) and cases c00..c19."""
    (studies / "labels" / "final").mkdir(parents=True)
    (studies / "spleen_3.nii.gz").write_bytes(nifti_bytes(7, "int16"))
    (studies / "labels" / "final" / "spleen_3.nii.gz").write_bytes(nifti_bytes(1, "uint8"))
    for c in range(CASES):
        (studies / f"c{c:02d}.nii.gz").write_bytes(nifti_bytes(c, "int16"))


def make_client(work: Path, studies: Path) -> Any:
    """MONAI Label's app, configured as its own endpoint tests do, behind a TestClient."""
    app_dir = work / "app"
    (app_dir / "logs").mkdir(parents=True)
    (app_dir / "main.py").write_text(APP_MAIN)
    from monailabel.config import settings

    settings.MONAI_LABEL_APP_DIR = str(app_dir)
    settings.MONAI_LABEL_STUDIES = str(studies)
    settings.MONAI_LABEL_DATASTORE_AUTO_RELOAD = False
    settings.MONAI_LABEL_APP_CONF = {"server_mode": "true", "auto_update_scoring": "false"}
    settings.MONAI_LABEL_SESSION_PATH = str(work / "sessions")
    from fastapi.testclient import TestClient
    from monailabel.app import app
    from monailabel.interfaces.utils.app import clear_cache

    clear_cache()
    return TestClient(app, raise_server_exceptions=False)


class Recorder:
    """Prints and keeps one result per request."""

    def __init__(self) -> None:
        self.results: list[dict[str, Any]] = []

    def check(self, name: str, response: Any, expected: int, ok: bool = True) -> Any:
        result = {"name": name, "status": response.status_code, "ok": bool(ok)}
        result["ok"] = result["ok"] and response.status_code == expected
        if response.status_code >= 400:
            result["detail"] = response.text[:200]
        print(json.dumps(result), flush=True)
        self.results.append(result)
        return response


def monai_label_requests(client: Any, rec: Recorder, studies: Path, label: bytes) -> None:
    """The requests of MONAI Label's tests/unit/endpoints/test_datastore.py, in its order."""
    image_id = "spleen_991234"
    image_file = f"{image_id}.nii.gz"
    r = client.get("/datastore/")
    rec.check("list", r, 200, r.json().get("total", 0) > 0)
    files = {"file": (image_file, (studies / "spleen_3.nii.gz").read_bytes())}
    r = client.put("/datastore/", files=files)
    rec.check("add image (upload)", r, 200, image_id in client.get("/datastore/?output=all").text)
    r = client.put(
        f"/datastore/label?image={image_id}&tag=test", files={"label": (image_file, label)}
    )
    tags = client.get("/datastore/").json()["label_tags"]
    rec.check("save label, custom tag", r, 200, bool(tags.get("test")))
    r = client.delete(f"/datastore/label?id={image_id}&tag=test")
    rec.check("remove label", r, 200, "test" not in client.get("/datastore/").json()["label_tags"])
    total = client.get("/datastore/").json()["total"]
    r = client.delete(f"/datastore/?id={image_id}")
    rec.check("remove image", r, 200, client.get("/datastore/").json()["total"] == total - 1)
    r = client.get("/datastore/image?image=spleen_3")
    rec.check("download image", r, 200, r.content == (studies / "spleen_3.nii.gz").read_bytes())
    r = client.get("/datastore/label?label=spleen_3&tag=final")
    final = studies / "labels" / "final" / "spleen_3.nii.gz"
    rec.check("download label", r, 200, r.content == final.read_bytes())
    r = client.get("/datastore/image/info?image=spleen_3")
    rec.check("image info", r, 200, r.json().get("name") == "spleen_3.nii.gz")
    r = client.get("/datastore/label/info?label=spleen_3&tag=final")
    rec.check("label info", r, 200, r.json().get("name") == "spleen_3.nii.gz")
    r = client.put("/datastore/image/info?image=spleen_3", data={"info": '{"reviewed": true}'})
    info = client.get("/datastore/image/info?image=spleen_3").json()
    rec.check("update image info", r, 200, info.get("reviewed") is True)
    r = client.put("/datastore/label/info?label=spleen_3&tag=final")
    rec.check("update label info", r, 200)
    r = client.get("/datastore/dataset")
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        names = set(zf.namelist())
    rec.check("download dataset", r, 200, {"image/spleen_3.nii.gz", "metadata.json"} <= names)


def bad_input(client: Any, rec: Recorder, studies: Path, label: bytes) -> None:
    """Unknown ids, bad ids and tags: clear 4xx answers, nothing written outside the store."""
    rec.check("download unknown image", client.get("/datastore/image?image=nope"), 404)
    rec.check("download unknown label", client.get("/datastore/label?label=nope&tag=final"), 404)
    r = client.get("/datastore/image/info?image=nope")
    rec.check("info of unknown image ({} as MONAI Label)", r, 200, r.json() == {})
    rec.check("update unknown image", client.put("/datastore/image/info?image=nope"), 404)
    rec.check("remove unknown label", client.delete("/datastore/label?id=spleen_3&tag=nope"), 404)
    rec.check("remove unknown image", client.delete("/datastore/?id=nope"), 404)
    rec.check("bad image id", client.get("/datastore/image?image=../escape"), 400)
    files = {"label": ("evil.nii.gz", label)}
    r = client.put("/datastore/label?image=spleen_3&tag=../../evil", files=files)
    escaped = list(studies.parent.glob("**/evil*"))
    rec.check("bad label tag", r, 400, not escaped)
    r = client.put("/datastore/label?image=spleen_3&tag=other", files={"label": ("x.nii.gz", b"x")})
    rec.check("unreadable label upload", r, 400)


def lock_held(client: Any, rec: Recorder, studies: Path, python: str, label: bytes) -> None:
    """MONAI Label's lock held by another process past the server's lock timeout: 503."""
    holder = subprocess.Popen(
        [python, "-c", HOLD_LOCK, str(studies / ".lock"), "30"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        files = {"label": ("spleen_3.nii.gz", label)}
        r = client.put("/datastore/label?image=spleen_3&tag=locked", files=files)
        rec.check("save while locked", r, 503, r.headers.get("retry-after", "").isdigit())
    finally:
        holder.kill()
        holder.wait()


def label_from_other_process(client: Any, rec: Recorder, studies: Path, python: str) -> None:
    """``medstore label`` in another process; the running server sees the new label."""
    source = studies.parent / "cli_label.nii.gz"
    source.write_bytes(nifti_bytes(2, "uint8"))
    done = subprocess.run(
        [python, "-c", LABEL_CLI, str(studies), str(source)], capture_output=True, text=True
    )
    r = client.get("/datastore/label/info?label=spleen_3&tag=cli")
    seen = done.returncode == 0 and r.json().get("name") == "spleen_3.nii.gz"
    rec.check("medstore label from another process, seen", r, 200, seen)


def interleaved_saves(client: Any, studies: Path, python: str, label: bytes) -> dict[str, int]:
    """100 saves through the server while another process does 100 ``save_label``."""
    source = studies.parent / "proc_label.nii.gz"
    source.write_bytes(label)
    other = subprocess.Popen(
        [python, "-c", OTHER_SAVES, str(studies), str(source), str(CASES), str(TAGS_EACH)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    errors: list[str] = []

    def serve() -> None:
        for t in range(TAGS_EACH):
            for c in range(CASES):
                url = f"/datastore/label?image=c{c:02d}&tag=srv{t}"
                r = client.put(url, files={"label": (f"c{c:02d}.nii.gz", label)})
                if r.status_code != 200:
                    errors.append(f"{url}: {r.status_code} {r.text[:100]}")

    thread = threading.Thread(target=serve)
    thread.start()
    _out, err = other.communicate(timeout=600)
    thread.join()
    if other.returncode != 0 or errors:
        raise SystemExit(f"saves failed: {errors[:3]} {err[-500:]}")
    expected = [(f"c{c:02d}", f"{kind}{t}") for kind in ("srv", "proc") for t in range(TAGS_EACH)
                for c in range(CASES)]  # fmt: skip
    lost = sum(not (studies / "labels" / tag / f"{i}.nii.gz").is_file() for i, tag in expected)
    doc = json.loads((studies / "datastore_v2.json").read_text())
    missing = sum(tag not in doc["objects"][i]["labels"] for i, tag in expected)
    served = client.get("/datastore/").json()["label_tags"]
    unseen = sum(served.get(tag, 0) != CASES for tag in {tag for _, tag in expected})
    return {"saves": len(expected), "lost_files": lost, "missing_entries": missing,
            "tags_not_served": unseen}  # fmt: skip


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, type=Path, help="a new scratch folder")
    parser.add_argument("--other-python", default=sys.executable, help="for other processes")
    args = parser.parse_args(argv)
    studies = args.work / "studies"
    make_studies(studies)
    client = make_client(args.work, studies)
    rec = Recorder()
    label = nifti_bytes(1, "uint8")
    monai_label_requests(client, rec, studies, label)
    bad_input(client, rec, studies, label)
    lock_held(client, rec, studies, args.other_python, label)
    label_from_other_process(client, rec, studies, args.other_python)
    summary: dict[str, Any] = {}
    seconds = timed(
        lambda: summary.update(interleaved_saves(client, studies, args.other_python, label))
    )
    summary["saves_seconds"] = round(seconds, 2)
    failed = [r["name"] for r in rec.results if not r["ok"]]
    print(json.dumps({"requests": len(rec.results), "failed": failed, **summary}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
