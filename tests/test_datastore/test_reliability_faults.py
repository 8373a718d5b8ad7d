"""I/O-error injection (issue 6 item 3): EIO/ENOSPC on the Nth write, fsync or replace."""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path

import pytest
from medstore.datastore import LocalDatastore
from support import reliability_harness as h
from support.contract import WritePath

pytestmark = pytest.mark.contract  # runs once per store write path (support.contract)

CODES = {"EIO": errno.EIO, "ENOSPC": errno.ENOSPC}
INFO_KEYS = ("mark",)


def _operations(src: Path) -> dict[str, Callable[[LocalDatastore, int], object]]:
    """Each op changes the visible state in a way that differs per attempt ``i``."""

    def save_replace(store: LocalDatastore, i: int) -> object:
        path = src / f"label{i}.nii.gz"
        path.write_bytes(h.seeded_nifti_bytes(5000 + i))
        return store.save_label("img000", path, "final", {"mark": i})

    def save_new(store: LocalDatastore, i: int) -> object:
        path = src / f"new{i}.nii.gz"
        path.write_bytes(h.seeded_nifti_bytes(6000 + i))
        return store.save_label("img001", path, f"t{i}", {"mark": i})

    def update_info(store: LocalDatastore, i: int) -> object:
        store.update_image_info("img002", {"mark": i})
        return None

    def remove_label(store: LocalDatastore, i: int) -> object:
        store.remove_label("img003", "final")
        return None

    def add_image(store: LocalDatastore, i: int) -> object:
        path = src / f"img{i}.nii.gz"
        path.write_bytes(h.seeded_nifti_bytes(8000 + i, dtype="int16"))
        return store.add_image(f"added{i}", path, {"mark": i})

    return {
        "save_label(replace)": save_replace,
        "save_label(new)": save_new,
        "update_image_info": update_info,
        "remove_label": remove_label,
        "add_image": add_image,
    }


def _visible(root: Path) -> tuple[bytes, dict]:
    return (root / h.MANIFEST).read_bytes(), h.logical_state(root, info_keys=INFO_KEYS)


@pytest.mark.parametrize("kind", ["write", "fsync", "replace"])
@pytest.mark.parametrize("code", sorted(CODES))
def test_io_error_leaves_old_state_and_next_call_succeeds(
    kind: str, code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_path: WritePath
) -> None:
    root = tmp_path / "store"
    h.write_indexed_store(root, 4, labels={"final": [0]})
    src = tmp_path / "src"
    src.mkdir()
    store = LocalDatastore(root)
    injector = h.FaultInjector(monkeypatch)
    injected = 0
    attempt = 0
    for name, op in _operations(src).items():
        nth = 1
        while True:
            attempt += 1
            if name == "remove_label":  # something to remove, saved before the fault is armed
                label = src / f"rm{attempt}.nii.gz"
                label.write_bytes(h.seeded_nifti_bytes(7000 + attempt))
                store.save_label("img003", label, "final", {"mark": attempt})
            before = _visible(root)
            injector.arm(kind, nth, CODES[code])
            try:
                op(store, attempt)
            except OSError as err:
                assert injector.fired == 1, f"{name}: failed without an injected fault: {err}"
                assert err.errno == CODES[code]
            else:
                assert injector.fired == 0, f"{name}: {kind} #{nth} failed but success reported"
                injector.disarm()
                break  # the op needs fewer than nth calls of this kind: all positions covered
            finally:
                injector.disarm()
            injected += 1
            where = f"{name}: {code} on {kind} #{nth}"
            assert _visible(root) == before, f"{where}: the old state is not intact"
            assert h.stray_temp_files(root) == [], f"{where}: partial files left"
            assert not h.has_redo_records(root), where
            # Another instance sees the old state too, and the fault has stopped: next call works.
            assert LocalDatastore(root, read_only=True).json() == store.json()
            op(store, attempt)
            after = _visible(root)
            assert after != before, f"{where}: the retry changed nothing"
            nth += 1
        # a journalled info change is one appended record: no file is replaced
        appends_only = write_path.name == "journal" and name == "update_image_info"
        assert nth > 1 or (appends_only and kind == "replace"), f"{name} never reached a {kind}"
    print(f"\nFAULTS {kind}/{code}: {injected} injected")


@pytest.mark.parametrize("code", sorted(CODES))
def test_persistent_fault_then_recovery(
    code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A disk that keeps failing from the Nth call on fails the save (roll-back and restore
    included); once it works again the next save succeeds and the state is consistent: each
    label file matches its listed checksum, and the failed save is either absent or complete."""
    root = tmp_path / "store"
    h.write_indexed_store(root, 2, labels={"final": [0]})
    store = LocalDatastore(root)
    injector = h.FaultInjector(monkeypatch)
    src = tmp_path / "l.nii.gz"
    injected = 0
    for kind in ("write", "fsync", "replace"):
        nth = 0
        while True:
            nth += 1
            old = h.logical_state(root, info_keys=INFO_KEYS)["img000"]["labels"]["final"]
            new = h.seeded_nifti_bytes(nth + 1000 * len(kind))
            src.write_bytes(new)
            injector.arm(kind, nth, CODES[code], persistent=True)
            try:
                store.save_label("img000", src, "final", {"mark": f"{kind}{nth}"})
            except OSError as err:
                assert err.errno == CODES[code]
            else:
                assert injector.fired == 0, "a failing disk was reported as a successful save"
                break
            finally:
                injector.disarm()
            injected += 1
            src.write_bytes(h.seeded_nifti_bytes(100 + nth))
            store.save_label("img001", src, "final", {"mark": "ok"})
            state = h.logical_state(root, info_keys=INFO_KEYS)
            for obj in state.values():
                for label in obj["labels"].values():
                    assert label["listed"] in (None, label["file"]), f"{kind} #{nth}: mixed"
            final = state["img000"]["labels"]["final"]
            assert final == old or final["file"] == h.sha256_bytes(new), f"{kind} #{nth}"
            assert state["img001"]["labels"]["final"]["file"] == h.sha256_bytes(
                h.seeded_nifti_bytes(100 + nth)
            )
            assert not h.has_redo_records(root)
    print(f"\nFAULTS persistent {code}: {injected} injected")
