"""Issue 12, other filesystems and MONAI Label's manifest habits: nothing acknowledged is lost.

The special filesystems are real ones built by :mod:`support.filesystems` (loop-mounted ext4 with
1-second timestamps, exFAT); where mounting is refused the test skips and says why
(``MEDSTORE_REQUIRE_MOUNTS=1`` turns those skips into failures).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from medstore.datastore import LocalDatastore
from medstore.datastore.errors import InvalidIdError, ManifestCorruptError
from medstore.datastore.store.fs_probe import NameRules, probe_names, timestamp_granularity_ns
from medstore.datastore.upkeep import doctor
from support.filesystems import REQUIRE_MOUNTS_ENV, mounted
from support.nifti import make_nifti

pytestmark = pytest.mark.contract  # runs once per store write path (support.contract)

_AFFINE = np.diag([1.0, 1.0, 1.0, 1.0])


@pytest.fixture
def ext4_1s_root(tmp_path: Path) -> Iterator[Path]:
    """A store folder on ext4 with 1-second timestamps."""
    with mounted("ext4_1s", tmp_path) as root:
        yield root


@pytest.fixture
def exfat_root(tmp_path: Path) -> Iterator[Path]:
    """A store folder on exFAT."""
    with mounted("exfat", tmp_path) as root:
        yield root


def _image(path: Path, value: int) -> Path:
    return make_nifti(path, np.full((4, 4, 4), value, dtype=np.int16), _AFFINE)


def _label(value: int) -> np.ndarray:
    return np.full((4, 4, 4), value, dtype=np.uint8)


def _child(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# MONAI Label's way of saving the manifest: truncate in place, then write (here with a pause
# after the first ``cut`` of the bytes, so that readers meet the empty or truncated file),
# optionally holding the store lock.
_MONAI_REWRITER = """
    import sys, time, filelock
    manifest, lock_path, hold_lock = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
    rounds, pause = int(sys.argv[4]), float(sys.argv[5])
    raw = open(manifest, "rb").read()
    cut = int(len(raw) * float(sys.argv[6])) if len(sys.argv) > 6 else 0
    print("ready", flush=True)
    for _ in range(rounds):
        lock = filelock.FileLock(lock_path) if hold_lock else None
        if lock: lock.acquire()
        with open(manifest, "wb") as f:
            f.write(raw[:cut])
            f.flush()
            if pause >= 1:
                print("truncated", flush=True)
            time.sleep(pause)
            f.write(raw[cut:])
        if lock: lock.release()
        time.sleep(0.05 if pause < 1 else 3.0)
"""


def test_unmountable_filesystem_skips_or_fails_when_mounts_are_required(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no mkfs.* nor mount tools
    monkeypatch.delenv(REQUIRE_MOUNTS_ENV, raising=False)
    (tmp_path / "a").mkdir()
    skipped = pytest.raises(pytest.skip.Exception, match=r"mkfs\.ext4 is not installed|needs root")
    with skipped, mounted("ext4_1s", tmp_path / "a"):
        pass
    monkeypatch.setenv(REQUIRE_MOUNTS_ENV, "1")
    (tmp_path / "b").mkdir()
    failed = pytest.raises(pytest.fail.Exception, match=f"{REQUIRE_MOUNTS_ENV}=1 turns this skip")
    with failed, mounted("ext4_1s", tmp_path / "b"):
        pass


# ---------------------------------------------------------------- case 2: 1-second timestamps
@pytest.mark.parametrize("kind", ["ext4_1s", "tmpfs"])
def test_case2_alternating_writers_keep_every_write(kind: str, tmp_path: Path) -> None:
    """Before (ext4 -I 128): B's two same-sized writes vanished when A wrote next."""
    src = _image(tmp_path / "src" / "a.nii.gz", 1)
    with mounted(kind, tmp_path) as root:
        first = LocalDatastore(root)
        first.add_image("a", src)
        first.update_image_info("a", {"p": "000", "q": "000", "r": "000", "s": "000"})
        second = LocalDatastore(root)
        for i in range(1, 31):
            value = f"{i:03d}"
            first.update_image_info("a", {"p": value})
            second.update_image_info("a", {"q": value})
            second.update_image_info("a", {"r": value})
            first.update_image_info("a", {"s": value})
            info = LocalDatastore(root, refresh=False, read_only=True).get_image_info("a")
            got = {k: info[k] for k in "pqrs"}
            assert got == dict.fromkeys("pqrs", value), f"round {i}"
        first.close()
        second.close()


def test_case2_in_place_same_size_rewrite_is_not_overwritten(ext4_1s_root: Path) -> None:
    """MONAI Label rewrites in place (same inode, size and second): the next write keeps it."""
    import os

    src = _image(ext4_1s_root.parent.parent / "src" / "a.nii.gz", 1)
    store = LocalDatastore(ext4_1s_root)
    store.add_image("a", src)
    for i in range(10):
        store.update_image_info("a", {"ours": f"{i:03d}", "theirs": "aaa"})
        store.compact()  # on the journal path: what MONAI Label sees (a no-op when direct)
        manifest = store.layout.manifest
        before = os.stat(manifest)
        raw = manifest.read_bytes()
        # MONAI Label's value is new each round: writing back the value medstore just replaced
        # (zzz, aaa, zzz...) is what a stale copy does, and medstore puts its own back then
        # (issue 13, store/stale_repair.py)
        theirs = f"z{i:02d}"
        with open(manifest, "r+b") as f:  # in place, same size; mtime put back like `touch -r`
            f.write(raw.replace(b'"theirs": "aaa"', f'"theirs": "{theirs}"'.encode()))
        os.utime(manifest, ns=(before.st_atime_ns, before.st_mtime_ns))
        store.update_image_info("a", {"ours": f"{i + 1:03d}"})
        assert store.get_image_info("a")["theirs"] == theirs, f"round {i}"
    store.close()


# ---------------------------------------------------------------- case 4: flock unavailable
_NO_FLOCK_WRITER = """
    import errno, fcntl, sys
    def no_flock(fd, op):
        raise OSError(errno.ENOSYS, "Function not implemented")
    fcntl.flock = no_flock
    from medstore.datastore import LocalDatastore
    try:
        store = LocalDatastore(sys.argv[1], refresh=False, lock_timeout=1)
        store.update_image_info("a", {"written": "while MONAI Label held the lock"})
    except Exception as err:
        print(f"refused {type(err).__name__}: {err}|oserror={isinstance(err, OSError)}")
    else:
        print("written")
"""


def test_case4_no_flock_refuses_to_write_instead_of_soft_locking(tmp_path: Path) -> None:
    """Before: a soft lock was taken beside MONAI Label's flock and the write went through."""
    import fcntl

    store = LocalDatastore(tmp_path / "store")
    store.add_image("a", _image(tmp_path / "src" / "a.nii.gz", 1))
    store.close()
    lock_path = store.layout.lock
    with open(lock_path, "a") as held:  # MONAI Label holds the store lock (flock)
        fcntl.flock(held, fcntl.LOCK_EX)
        child = _child(_NO_FLOCK_WRITER, str(tmp_path / "store"))
        out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    assert out.startswith("refused StoreLockUnsupportedError"), out
    assert "flock" in out and "filesystem" in out and "oserror=True" in out
    assert lock_path.exists()
    info = LocalDatastore(tmp_path / "store", read_only=True).get_image_info("a")
    assert "written" not in info


# ---------------------------------------------------------------- case 6: truncated by MONAI Label
@pytest.mark.parametrize("cut", ["0", "0.5"])
def test_case6_reader_waits_out_monai_labels_in_place_rewrite(tmp_path: Path, cut: str) -> None:
    """Before: ``ManifestCorruptError: ... is empty`` (or not valid JSON) during the rewrite."""
    root = tmp_path / "store"
    store = LocalDatastore(root)
    store.add_image("a", _image(tmp_path / "src" / "a.nii.gz", 1))
    store.close()
    rounds = 40
    child = _child(
        _MONAI_REWRITER,
        str(store.layout.manifest),
        str(store.layout.lock),
        "0",
        str(rounds),
        "0.15",
        cut,
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    opened = 0
    try:
        while child.poll() is None:
            reader = LocalDatastore(root, refresh=False, read_only=True)
            assert reader.list_images() == ["a"]
            opened += 1
            time.sleep(0.03)
    finally:
        child.kill()
        child.wait()
    assert opened > 10


def test_case6_old_empty_manifest_is_still_corrupt(tmp_path: Path) -> None:
    root = tmp_path / "store"
    LocalDatastore(root).close()
    manifest = root / "datastore_v2.json"
    manifest.write_bytes(b"")
    old = time.time() - 60
    import os

    os.utime(manifest, (old, old))
    with pytest.raises(ManifestCorruptError, match="is empty"):
        LocalDatastore(root, refresh=False, read_only=True)


# ---------------------------------------------------------------- case 7: doctor --rebuild
def test_case7_doctor_rebuild_rechecks_under_the_lock(tmp_path: Path) -> None:
    """Before: a manifest MONAI Label was rewriting was replaced; every image lost its info."""
    root = tmp_path / "store"
    store = LocalDatastore(root)
    for i in range(3):
        store.add_image(f"img{i}", _image(tmp_path / "src" / f"{i}.nii.gz", i))
        store.update_image_info(f"img{i}", {"patient_id": f"P{i}"})
    store.add_tags("img0", ["keep"])
    store.close()
    # Each rewrite leaves the manifest empty for longer than a reader waits (1.5 s), lock held.
    child = _child(
        _MONAI_REWRITER, str(store.layout.manifest), str(store.layout.lock), "1", "2", "1.5"
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    try:
        for run in range(2):
            assert child.stdout.readline().strip() == "truncated"
            report = doctor(root, rebuild=True)
            assert not report.rebuilt_manifest, f"run {run}"
    finally:
        child.kill()
        child.wait()
    after = LocalDatastore(root, refresh=False, read_only=True)
    assert after.get_image_info("img1")["patient_id"] == "P1"
    assert "keep" in after.get_image_info("img0").get("tags", [])


def test_case7_rebuild_keeps_the_info_it_can_recover(tmp_path: Path) -> None:
    """Before: a rebuild from files only; every ``patient_id`` and tag was gone."""
    root = tmp_path / "store"
    store = LocalDatastore(root)
    for i in range(3):
        store.add_image(f"img{i}", _image(tmp_path / "src" / f"{i}.nii.gz", i))
        store.update_image_info(f"img{i}", {"patient_id": f"P{i}"})
    store.save_label("img1", _label(1), "final", {"by": "ann"})
    store.close()
    manifest = store.layout.manifest
    doc = json.loads(manifest.read_bytes())
    doc["objects"]["img2"]["image"]["info"] = "not an object"  # one object broken
    manifest.write_text(json.dumps(doc, indent=2))
    with pytest.raises(ManifestCorruptError):
        LocalDatastore(root, refresh=False, read_only=True)
    report = doctor(root, rebuild=True)
    assert report.rebuilt_manifest and report.corrupt_copy
    after = LocalDatastore(root, refresh=False, read_only=True)
    assert sorted(after.list_images()) == ["img0", "img1", "img2"]
    assert after.get_image_info("img0")["patient_id"] == "P0"
    assert after.get_label_info("img1", "final")["by"] == "ann"


def test_case7_a_damaged_label_does_not_take_its_image_info_with_it(tmp_path: Path) -> None:
    """Before: one damaged label dropped the whole object: patient id and other labels gone."""
    root = tmp_path / "store"
    store = LocalDatastore(root)
    store.add_image("img0", _image(tmp_path / "src" / "0.nii.gz", 0), {"patient_id": "P0"})
    store.save_label("img0", _label(1), "final", {"by": "ann"})
    store.save_label("img0", _label(2), "reviewer", {"by": "rev"})
    store.close()
    doc = json.loads(store.layout.manifest.read_bytes())
    doc["objects"]["img0"]["labels"]["reviewer"]["info"] = ["not", "an", "object"]
    store.layout.manifest.write_text(json.dumps(doc))
    assert doctor(root, rebuild=True).rebuilt_manifest
    after = LocalDatastore(root, refresh=False, read_only=True)
    assert after.get_image_info("img0")["patient_id"] == "P0"
    assert after.get_label_info("img0", "final")["by"] == "ann"
    assert sorted(after.get_labels_by_image_id("img0")) == ["final", "reviewer"]


def test_case7_rebuild_recovers_lost_entries_from_trash_and_history(tmp_path: Path) -> None:
    """Before: entries cut off by a truncation came back with nothing but their file names."""
    from medstore.datastore.store.info_recovery import RECOVERED_KEY

    root = tmp_path / "store"
    store = LocalDatastore(root)
    store.add_image("img0", _image(tmp_path / "src" / "0.nii.gz", 0), {"patient_id": "P0"})
    store.add_image("img1", _image(tmp_path / "src" / "1.nii.gz", 1), {"patient_id": "P1"})
    info = [{"name": "liver", "idx": 1}]
    store.save_label("img1", _label(1), "final", {"by": "ann", "label_info": info})
    store.save_label("img1", _label(2), "final", {"by": "ann", "label_info": info})
    store.remove_image("img1")  # removed and restored: its entry is in the trash
    store.restore_image("img1")
    store.close()
    raw = store.layout.manifest.read_bytes()
    store.layout.manifest.write_bytes(raw[: raw.index(b'"img1"')])  # img1 cut off
    assert doctor(root, rebuild=True).rebuilt_manifest
    after = LocalDatastore(root, refresh=False, read_only=True)
    assert after.get_image_info("img0")["patient_id"] == "P0"
    image = after.get_image_info("img1")
    assert image["patient_id"] == "P1" and image[RECOVERED_KEY].startswith("trash ")
    label = after.get_label_info("img1", "final")
    assert label["by"] == "ann" and label["label_info"] == info
    assert RECOVERED_KEY in label


# ---------------------------------------------------------------- case 1: case-insensitive names
def test_case1_case_folding_filesystem_refuses_colliding_id(
    exfat_root: Path, tmp_path: Path
) -> None:
    """Before: both ids listed, Case1's image and label bytes gone."""
    store = LocalDatastore(exfat_root)
    store.add_image("Case1", _image(tmp_path / "src" / "a.nii.gz", 1))
    store.save_label("Case1", _label(1), "final")
    with pytest.raises(InvalidIdError, match=r"'case1' collides with existing 'Case1'"):
        store.add_image("case1", _image(tmp_path / "src" / "b.nii.gz", 2))
    assert store.list_images() == ["Case1"]
    assert not list(exfat_root.glob("*.tmp"))
    store.close()


def test_case1_derived_ids_and_ids_within_one_batch_are_checked_too(
    exfat_root: Path, tmp_path: Path
) -> None:
    """Ids derived from file names, and two new ids of one ``add_images`` call, collide too."""
    store = LocalDatastore(exfat_root)
    store.add_images([_image(tmp_path / "src" / "Case1.nii.gz", 1)])
    with pytest.raises(InvalidIdError, match=r"'case1' collides with existing 'Case1'"):
        store.add_images([_image(tmp_path / "src2" / "case1.nii.gz", 2)])
    pair = [_image(tmp_path / "a" / "Scan.nii.gz", 3), _image(tmp_path / "b" / "scan.nii.gz", 4)]
    with pytest.raises(InvalidIdError, match=r"'scan' collides with existing 'Scan'"):
        store.add_images(pair)
    assert store.list_images() == ["Case1"]
    store.close()


def test_case1_refused_characters_and_no_chmod_on_exfat(exfat_root: Path, tmp_path: Path) -> None:
    """An id exFAT cannot store is refused up front; ``file_mode`` where chmod is a no-op works."""
    store = LocalDatastore(exfat_root, file_mode=0o640)
    with pytest.raises(InvalidIdError, match=r"'a:b' holds ':'"):
        store.add_image("a:b", _image(tmp_path / "src" / "a.nii.gz", 1))
    store.add_image("ok", _image(tmp_path / "src" / "b.nii.gz", 2))
    store.save_label("ok", _label(1), "final")
    store.save_label("ok", _label(2), "final")
    assert store.list_images() == ["ok"]
    with pytest.raises(InvalidIdError, match=r"'Final' collides with existing 'final'"):
        store.save_label("ok", _label(1), "Final")
    with pytest.raises(InvalidIdError, match=r"'FINAL' collides with existing 'final'"):
        store.promote_label("ok", "final", "FINAL")
    assert sorted(store.get_labels_by_image_id("ok")) == ["final"]
    store.close()


@pytest.mark.parametrize(
    ("kind", "tick_ns", "rules"),
    [
        ("tmpfs", 1, NameRules()),
        ("ext4_1s", 1_000_000_000, NameRules()),
        ("exfat", 1_000_000_000, NameRules(folds_case=True, refused=':*?"<>|')),
    ],
)
def test_probes_tell_each_filesystem_apart(
    kind: str, tick_ns: int, rules: NameRules, tmp_path: Path
) -> None:
    with mounted(kind, tmp_path) as root:
        assert timestamp_granularity_ns(root) == tick_ns
        assert probe_names(root) == rules
        assert list(root.iterdir()) == []


_NO_CHMOD_WRITER = """
    import errno, os, sys
    def no_chmod(path, mode, **kw):
        raise PermissionError(errno.EPERM, "Operation not permitted", str(path))
    os.chmod = no_chmod  # what the kernel exFAT/FAT drivers answer (no such driver here)
    from medstore.datastore import LocalDatastore
    store = LocalDatastore(sys.argv[1], file_mode=0o640)
    store.add_image("a", sys.argv[2])
    store.update_image_info("a", {"kept": True})
    print(store.list_images(), store.get_image_info("a")["kept"])
"""


def test_case1_a_filesystem_that_cannot_chmod_still_takes_writes(tmp_path: Path) -> None:
    """Before: ``PermissionError`` from chmod of the temp file; nothing could be saved."""
    src = _image(tmp_path / "src" / "a.nii.gz", 1)
    child = _child(_NO_CHMOD_WRITER, str(tmp_path / "store"), str(src))
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    assert out.strip() == "['a'] True"


def _renamed_to_other_case(root: Path) -> None:
    """A user renames ``Case1``'s image and label files to ``case1`` (exFAT keeps the new case)."""
    for folder in (root, root / "labels" / "final"):
        os.rename(folder / "Case1.nii.gz", folder / "case1.nii.gz")


def test_case1_refresh_reports_a_file_renamed_to_a_colliding_id(
    exfat_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: both ids listed (one file), and Case1's label with its info dropped."""
    store = LocalDatastore(exfat_root)
    store.add_image("Case1", _image(tmp_path / "src" / "a.nii.gz", 1), {"patient_id": "P1"})
    store.save_label("Case1", _label(1), "final", {"by": "ann"})
    _renamed_to_other_case(exfat_root)
    with caplog.at_level(logging.WARNING):
        state = store.refresh()
    assert store.list_images() == ["Case1"]
    assert store.get_image_info("Case1")["patient_id"] == "P1"
    assert store.get_label_info("Case1", "final")["by"] == "ann"
    assert "case1.nii.gz" in state.skipped
    assert "'case1' collides with existing 'Case1'" in caplog.text
    store.close()


def test_case1_the_watcher_reports_a_colliding_file_instead_of_indexing_it(
    exfat_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: the watcher's refresh listed ``case1`` beside ``Case1``."""
    store = LocalDatastore(exfat_root, auto_reload=True)
    store.add_image("Case1", _image(tmp_path / "src" / "a.nii.gz", 1), {"patient_id": "P1"})
    store.save_label("Case1", _label(1), "final", {"by": "ann"})
    assert store.watcher is not None and store.watcher.wait_idle(30)
    with caplog.at_level(logging.WARNING):
        _renamed_to_other_case(exfat_root)
        shutil.copyfile(_image(tmp_path / "src" / "later.nii.gz", 2), exfat_root / "later.nii.gz")
        deadline = time.monotonic() + 60
        while "later" not in store.list_images() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert store.watcher.wait_idle(30)
    assert store.list_images() == ["Case1", "later"]
    assert store.get_label_info("Case1", "final")["by"] == "ann"
    assert "'case1' collides with existing 'Case1'" in caplog.text
    store.close()


def test_case1_the_name_check_is_o1_per_new_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: each new id was compared with every tracked id (n(n-1)/2 folds for n ids)."""
    from medstore.datastore.store import name_index

    monkeypatch.setattr(name_index, "probe_names", lambda _: NameRules(folds_case=True))
    store = LocalDatastore(tmp_path / "store")
    src = _image(tmp_path / "src" / "a.nii.gz", 1)
    folds = 0
    fold = NameRules.key

    def counted(rules: NameRules, name: str) -> str:
        nonlocal folds
        folds += 1
        return fold(rules, name)

    monkeypatch.setattr(NameRules, "key", counted)
    n = 120
    store.add_images([(f"img{i}", src) for i in range(n)])
    for i in range(n, n + 20):
        store.add_image(f"img{i}", src)
    assert folds <= 5 * (n + 20), folds  # before: 9,500+ for these 140 ids
    with pytest.raises(InvalidIdError, match=r"'IMG7' collides with existing 'img7'"):
        store.add_image("IMG7", src)
    store.close()


# ---------------------------------------------------------------- case 3: no hard links
def _fill(folder: Path, leave: int) -> Path:
    """Fill the filesystem of ``folder`` until about ``leave`` bytes are free."""
    import os

    filler = folder.parent / "filler"
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize
    with open(filler, "wb") as f:
        f.truncate(0)
        chunk = b"\0" * (1 << 20)
        remaining = max(free - leave, 0)
        while remaining > 0:
            try:
                remaining -= f.write(chunk[: min(len(chunk), remaining)])
            except OSError:
                break
    return filler


@pytest.mark.parametrize("free_kb", [96, 144, 168, 192, 216, 264])
def test_case3_no_hard_links_low_space_save_rolls_back(
    exfat_root: Path, tmp_path: Path, free_kb: int
) -> None:
    """Before: save_label raised, the label file was gone, and the next writer applied it.

    The label file is replaced, then the manifest write hits ENOSPC; the roll-back cannot
    hard-link the kept copy back on exFAT.
    """
    rng = np.random.default_rng(free_kb)
    shape = (40, 40, 40)
    image = make_nifti(tmp_path / "src" / "a.nii.gz", np.zeros(shape, np.int16), _AFFINE)
    store = LocalDatastore(exfat_root)
    store.add_image("a", image)
    # A large manifest: it runs out of space after the label file was already replaced.
    store.update_image_info("a", {"notes": "x" * 150_000})
    old = rng.integers(0, 255, shape, dtype=np.uint8)
    store.save_label("a", old, "final")
    label_file = Path(store.get_label_uri("a", "final"))
    old_bytes = label_file.read_bytes()
    filler = _fill(exfat_root, free_kb * 1024)
    try:
        try:
            store.save_label("a", rng.integers(0, 255, shape, dtype=np.uint8), "final")
        except OSError:
            saved = False
            assert label_file.read_bytes() == old_bytes, "the label file is missing or changed"
        else:
            saved = True
        store.close()
    finally:
        filler.unlink()
    after = LocalDatastore(exfat_root)
    uri = Path(after.get_label_uri("a", "final"))
    assert uri.exists(), "manifest lists a label file that is missing"
    if not saved:
        assert uri.read_bytes() == old_bytes, "the next writer applied a save reported failed"
    after.close()
