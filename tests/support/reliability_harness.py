"""Helpers for medstore's reliability tests: tiny stores, snapshots, fault injection, kill torture.

Run as a script it is the torture supervisor (``torture``), the crash-point child (``ops``) and the
"fresh process" probe (``fresh-write``); the tests start it with ``sys.executable``.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import hashlib
import json
import os
import random
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HARNESS = Path(__file__).resolve()
MANIFEST = "datastore_v2.json"
_FIRST_MANIFEST = b"{}"  # the manifest as the torture found it (set before writers are forked)

if __package__ in (None, ""):  # run as a script: make the ``support`` package importable
    sys.path.insert(0, str(HARNESS.parents[1]))


# --------------------------------------------------------------------------- tiny stores
def seeded_nifti_bytes(
    seed: int = 0, *, dtype: str = "uint8", shape: tuple[int, ...] = (4, 4, 4)
) -> bytes:
    """A small, valid, gzipped NIfTI-1 file whose voxels (and so bytes) depend on ``seed``."""
    import numpy as np

    from support.nifti import nifti_bytes  # imported here: the script's probes stay lean

    rng = np.random.default_rng(seed)
    data = rng.integers(0, 3, size=shape).astype(dtype)
    return nifti_bytes(data, np.diag([1.5, 1.0, 2.0, 1.0]), compressed=True)


def sha256_bytes(data: bytes) -> str:
    """``"SHA256:<hex>"`` of bytes (the store's checksum form)."""
    return "SHA256:" + hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """``"SHA256:<hex>"`` of a file."""
    return sha256_bytes(Path(path).read_bytes())


def write_store_files(
    root: Path, n_images: int, *, labels: dict[str, list[int]] | None = None
) -> list[str]:
    """Write ``img000``... images (and optional label files per tag) under ``root``; no manifest.

    Args:
        root: The store folder (created).
        n_images: How many images.
        labels: ``{tag: [image indices]}`` label files to drop in ``labels/<tag>/``.

    Returns:
        The image ids.
    """
    root.mkdir(parents=True, exist_ok=True)
    ids = [f"img{i:03d}" for i in range(n_images)]
    image = seeded_nifti_bytes(1, dtype="int16")
    for image_id in ids:
        (root / f"{image_id}.nii.gz").write_bytes(image)
    for tag, indices in (labels or {}).items():
        (root / "labels" / tag).mkdir(parents=True, exist_ok=True)
        for i in indices:
            (root / "labels" / tag / f"{ids[i]}.nii.gz").write_bytes(seeded_nifti_bytes(1000 + i))
    return ids


def write_indexed_store(root: Path, n_images: int, **kwargs: Any) -> list[str]:
    """Like :func:`write_store_files`, then open the store once so the manifest exists."""
    from medstore.datastore import LocalDatastore

    ids = write_store_files(root, n_images, **kwargs)
    LocalDatastore(root).close()
    return ids


# --------------------------------------------------------------------------- snapshots
def tree_listing(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every path under ``root`` (itself included) → (mode, size, mtime_ns); links not followed."""
    out: dict[str, tuple[int, int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [".", *dirnames, *filenames]:
            path = Path(dirpath) / name
            st = os.lstat(path)
            out[os.path.relpath(path, root)] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


def stored_document(root: Path) -> dict[str, Any]:
    """The store's document as readers see it, without recovering anything.

    The manifest itself, or, where a journal holds saves not yet folded into it, the manifest
    with the journal applied (read by a read-only store, which writes and completes nothing).
    """
    if (root / ".medstore" / "journal" / "changes.log").exists():
        from medstore.datastore import LocalDatastore

        return LocalDatastore(root, read_only=True).json()
    return json.loads((root / MANIFEST).read_bytes())


def logical_state(root: Path, *, info_keys: tuple[str, ...] = ()) -> dict[str, Any]:
    """What a user sees: per image, each label's file checksum (and the manifest's) plus info keys.

    Reads the manifest directly (no store object, no recovery); on the journal path, the
    manifest with the journal applied, as a read-only store (which recovers nothing) reads it.
    """
    doc = stored_document(root)
    images_dir = doc.get("images_dir") or "."
    labels_dir = doc.get("labels_dir", "labels")
    state: dict[str, Any] = {}
    for image_id, obj in doc["objects"].items():
        image_path = root / images_dir / f"{image_id}{obj['image']['ext']}"
        labels = {}
        for tag, label in obj["labels"].items():
            path = root / labels_dir / tag / f"{image_id}{label['ext']}"
            labels[tag] = {
                "file": sha256_file(path) if path.is_file() else None,
                "listed": label["info"].get("checksum"),
                "mark": label["info"].get("mark"),
            }
        info = obj["image"]["info"]
        state[image_id] = {
            "image": image_path.exists(),
            "labels": labels,
            "info": {k: info.get(k) for k in info_keys},
        }
    return state


def stray_temp_files(root: Path) -> list[str]:
    """Temp files (``.<name>.*.tmp``) and staged leftovers anywhere under ``root``."""
    found = []
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            if name.endswith(".tmp"):
                found.append(os.path.relpath(Path(dirpath) / name, root))
    pending = root / ".medstore" / "pending"
    if pending.is_dir():
        found += [f".medstore/pending/{p.name}" for p in pending.glob("staged-*")]
    return found


def has_redo_records(root: Path) -> bool:
    """Whether interrupted saves wait in ``.medstore/pending`` (as the store itself tells)."""
    from medstore.datastore.store.transaction import PendingRecords

    return PendingRecords(root, root / ".medstore" / "pending").exist()


# --------------------------------------------------------------------------- fault injection
class FaultInjector:
    """Make the N-th ``write`` / ``fsync`` / ``replace`` of this process fail with an errno.

    ``write`` covers every file object opened with ``os.fdopen`` (the store's temp files) by
    wrapping it, and ``os.pwrite`` (the journal's appends); ``fsync`` patches ``os.fsync`` and the
    journal's ``fdatasync`` (the acknowledgement log's stays: its failures never fail a save),
    ``replace`` ``os.replace``.

    Args:
        monkeypatch: pytest's monkeypatch fixture.
    """

    KINDS = ("write", "fsync", "replace")

    def __init__(self, monkeypatch: Any) -> None:
        self.counts = dict.fromkeys(self.KINDS, 0)
        self.kind: str | None = None
        self.nth = 0
        self.code = errno.EIO
        self.persistent = False
        self.fired = 0
        self.thread = threading.get_ident()
        real_fsync, real_replace, real_fdopen = os.fsync, os.replace, os.fdopen
        from medstore.datastore.store import record_log

        real_log_sync, real_pwrite = record_log._sync, os.pwrite
        injector = self

        def fsync(fd: int) -> None:
            injector.hit("fsync")
            real_fsync(fd)

        def log_sync(fd: int) -> None:
            injector.hit("fsync")
            real_log_sync(fd)

        def pwrite(fd: int, data: Any, offset: int) -> int:
            injector.hit("write")
            return real_pwrite(fd, data, offset)

        def replace(src: Any, dst: Any, **kw: Any) -> None:
            injector.hit("replace")
            real_replace(src, dst, **kw)

        class _Writer:
            """A writable file object whose ``write`` may fail; everything else delegates."""

            def __init__(self, inner: Any) -> None:
                self.inner = inner

            def write(self, data: Any) -> int:
                injector.hit("write")
                return int(self.inner.write(data))

            def __getattr__(self, name: str) -> Any:
                return getattr(self.inner, name)

            def __enter__(self) -> _Writer:
                return self

            def __exit__(self, *exc: object) -> None:
                self.inner.close()

        def fdopen(fd: int, mode: str = "r", *args: Any, **kw: Any) -> Any:
            handle = real_fdopen(fd, mode, *args, **kw)
            return _Writer(handle) if "w" in mode or "a" in mode else handle

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(record_log, "_sync", log_sync)  # the journal's appends
        monkeypatch.setattr(os, "pwrite", pwrite)
        monkeypatch.setattr(os, "replace", replace)
        monkeypatch.setattr(os, "fdopen", fdopen)

    def arm(self, kind: str, nth: int, code: int, *, persistent: bool = False) -> None:
        """Fail the ``nth`` call of ``kind`` from now (and every later one if ``persistent``)."""
        self.counts = dict.fromkeys(self.KINDS, 0)
        self.kind, self.nth, self.code, self.persistent, self.fired = kind, nth, code, persistent, 0
        self.thread = threading.get_ident()

    def disarm(self) -> None:
        """Stop injecting."""
        self.kind = None

    def hit(self, kind: str) -> None:
        """Count a call and raise when it is the chosen one (calls of other threads: ignored)."""
        if threading.get_ident() != self.thread:  # a background fold of the journal
            return
        self.counts[kind] += 1
        if kind != self.kind:
            return
        if self.counts[kind] == self.nth or (self.persistent and self.counts[kind] > self.nth):
            self.fired += 1
            raise OSError(self.code, f"injected {os.strerror(self.code)} on {kind} #{self.nth}")


# --------------------------------------------------------------------------- crash-point child
def run_ops(root: Path, ops: list[dict[str, Any]], ack: Callable[[int], None]) -> None:
    """Run store operations in order, calling ``ack(i)`` after the i-th returns.

    Ops: ``{"op": "save_label", "image", "tag", "src", "mark"}``, ``{"op": "update_image_info",
    "image", "info"}``, ``{"op": "remove_label", "image", "tag"}``, ``{"op": "promote_label",
    "image", "from", "to"}``, ``{"op": "add_image", "image", "src"}``, ``{"op": "remove_image",
    "image"}``, ``{"op": "restore_label", "image", "tag", "version"}``, ``{"op": "refresh"}``,
    ``{"op": "compact"}`` (folds the journal into the manifest; nothing on the direct path).
    """
    from medstore.datastore import LocalDatastore

    store = LocalDatastore(root, lock_timeout=30.0)
    for i, op in enumerate(ops):
        kind = op["op"]
        if kind == "save_label":
            store.save_label(op["image"], op["src"], op["tag"], {"mark": op["mark"]})
        elif kind == "update_image_info":
            store.update_image_info(op["image"], op["info"])
        elif kind == "remove_label":
            store.remove_label(op["image"], op["tag"])
        elif kind == "promote_label":
            store.promote_label(op["image"], op["from"], op["to"], approved_by="tester")
        elif kind == "add_image":
            store.add_image(op["image"], op["src"], {"mark": op.get("mark")})
        elif kind == "remove_image":
            store.remove_image(op["image"])
        elif kind == "restore_label":
            store.restore_label(op["image"], op["tag"], op["version"])
        elif kind == "refresh":
            store.refresh()
        elif kind == "compact":
            store.compact()
        else:
            raise ValueError(f"unknown op {kind!r}")
        ack(i)


# --------------------------------------------------------------------------- torture
@dataclass
class TortureResult:
    """What a torture run did: events ``(writer, "B"|"A", kind, key, value)`` and figures."""

    events: list[tuple[int, str, str, str, str]] = field(default_factory=list)
    kills: int = 0
    exits: int = 0
    starts: int = 0
    duration: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """Plain data for the supervisor's output file."""
        return {
            "events": self.events,
            "kills": self.kills,
            "exits": self.exits,
            "starts": self.starts,
            "duration": self.duration,
        }


def _emit(fd: int, *parts: object) -> None:
    os.write(fd, (" ".join(str(p) for p in parts) + "\n").encode())


def good_writer(root: Path, writer: int, seq: int, fd: int, images: list[str]) -> None:
    """Loop ``save_label`` and ``update_image_info`` through the real store, acking each."""
    from medstore.datastore import LocalDatastore

    scratch = root.parent / f"scratch-w{writer}"
    scratch.mkdir(exist_ok=True)
    store = LocalDatastore(root, lock_timeout=60.0)
    rng = random.Random(writer * 1_000_003 + seq)
    tag = f"w{writer}"
    while True:
        seq += 1
        image = rng.choice(images)
        if seq % 2:
            data = seeded_nifti_bytes(writer * 10_000_000 + seq)
            src = scratch / f"{seq}.nii.gz"
            src.write_bytes(data)
            key, value = f"{image}|{tag}", sha256_bytes(data)
            _emit(fd, "B", "label", key, value, seq)
            store.save_label(image, src, tag, {"writer": writer, "seq": seq})
            _emit(fd, "A", "label", key, value, seq)
            src.unlink()
        else:
            key = f"{image}|{tag}"
            _emit(fd, "B", "info", key, seq, seq)
            store.update_image_info(image, {tag: seq})
            _emit(fd, "A", "info", key, seq, seq)


def broken_writer(root: Path, writer: int, seq: int, fd: int, images: list[str]) -> None:
    """The same loop done wrong: no lock, no temp file, no fsync; the manifest rewritten in place.

    It exists to prove the harness can fail: :func:`verify_torture` must report problems.
    """
    rng = random.Random(writer * 7 + seq)
    tag = f"w{writer}"
    manifest = root / MANIFEST

    def read_manifest() -> dict[str, Any]:
        # A kill mid-write leaves the manifest empty or torn: start over from the first one (and
        # so lose every acknowledged change), rather than stop writing and acknowledging at all.
        try:
            return dict(json.loads(manifest.read_bytes()))
        except ValueError:
            return dict(json.loads(_FIRST_MANIFEST))

    while True:
        seq += 1
        image = rng.choice(images)
        key = f"{image}|{tag}"
        if seq % 2:
            data = seeded_nifti_bytes(writer * 10_000_000 + seq)
            value = sha256_bytes(data)
            _emit(fd, "B", "label", key, value, seq)
            dest = root / "labels" / tag / f"{image}.nii.gz"
            with open(dest, "wb") as out:
                out.write(data)
            doc = read_manifest()
            entry = {"ext": ".nii.gz", "info": {"checksum": value, "name": f"{image}.nii.gz"}}
            doc["objects"][image]["labels"][tag] = entry
        else:
            value = str(seq)
            _emit(fd, "B", "info", key, value, seq)
            doc = read_manifest()
            doc["objects"][image]["image"]["info"][tag] = seq
        with open(manifest, "w") as out:
            out.write(json.dumps(doc, indent=2))
        _emit(fd, "A", "label" if seq % 2 else "info", key, value, seq)


def stale_writer(root: Path, writer: int, seq: int, fd: int, images: list[str]) -> None:
    """MONAI Label 0.8.5's lost update: locked, durable writes of a manifest read only at start.

    Each write is atomic, so the manifest always parses; the harness must still see the losses.
    """
    import filelock
    from medstore.datastore.durable import atomic_write_bytes

    manifest = root / MANIFEST
    doc = json.loads(manifest.read_bytes())
    lock = filelock.FileLock(str(root / ".lock"), timeout=60)
    rng = random.Random(writer * 11 + seq)
    tag = f"w{writer}"
    while True:
        seq += 1
        image = rng.choice(images)
        data = seeded_nifti_bytes(writer * 10_000_000 + seq)
        value = sha256_bytes(data)
        key = f"{image}|{tag}"
        _emit(fd, "B", "label", key, value, seq)
        with lock:
            atomic_write_bytes(root / "labels" / tag / f"{image}.nii.gz", data)
            entry = {"ext": ".nii.gz", "info": {"checksum": value, "name": f"{image}.nii.gz"}}
            doc["objects"][image]["labels"][tag] = entry
            atomic_write_bytes(manifest, json.dumps(doc, indent=2).encode())
        _emit(fd, "A", "label", key, value, seq)


WRITERS: dict[str, Callable[[Path, int, int, int, list[str]], None]] = {
    "good": good_writer,
    "broken": broken_writer,
    "stale": stale_writer,
}


def run_torture(
    root: Path,
    *,
    duration: float,
    writers: int = 4,
    kind: str = "good",
    max_interval: float = 0.05,
    seed: int = 0,
    min_kills: int = 0,
    max_duration: float | None = None,
) -> TortureResult:
    """SIGKILL a random writer every 0..``max_interval`` s and restart it, for ``duration`` s.

    Writers are forked from this (already warm) process, so kills land in their saves. On a
    loaded machine the run goes on past ``duration`` until ``min_kills`` kills have landed, up to
    ``max_duration`` seconds (default: four times ``duration``).
    """
    limit = max_duration if max_duration is not None else 4 * duration
    from medstore.datastore import LocalDatastore

    global _FIRST_MANIFEST  # the forked writers inherit it
    images = LocalDatastore(root, read_only=True).list_images()
    _FIRST_MANIFEST = (root / MANIFEST).read_bytes()
    target = WRITERS[kind]
    rng = random.Random(seed)
    result = TortureResult()
    pids: dict[int, int] = {}
    fds: dict[int, int] = {}
    buffers: dict[int, bytes] = {}
    next_seq: dict[int, int] = dict.fromkeys(range(writers), 0)

    def drain(w: int, *, final: bool = False) -> None:
        fd = fds[w]
        while True:
            ready, _, _ = select.select([fd], [], [], 0)
            if not ready:
                break
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buffers[w] += chunk
        *lines, buffers[w] = buffers[w].split(b"\n")
        for line in lines:
            phase, what, key, value, seq = line.decode().split(" ")
            result.events.append((w, phase, what, key, value))
            next_seq[w] = max(next_seq[w], int(seq))
        if final:
            buffers[w] = b""  # a line cut by the kill was never acknowledged

    def start(w: int) -> None:
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the writer
            code = 0
            try:
                os.close(read_fd)
                target(root, w, next_seq[w] + 1, write_fd, images)
            except BaseException:
                import traceback

                traceback.print_exc()
                code = 3
            os._exit(code)
        os.close(write_fd)
        pids[w], fds[w], buffers[w] = pid, read_fd, b""
        result.starts += 1

    def reap(w: int, *, kill: bool) -> None:
        if kill:
            os.kill(pids[w], signal.SIGKILL)
        os.waitpid(pids[w], 0)
        drain(w, final=True)
        os.close(fds[w])

    for w in range(writers):
        start(w)
    t0 = time.monotonic()
    while (elapsed := time.monotonic() - t0) < duration or (
        result.kills < min_kills and elapsed < limit
    ):
        time.sleep(rng.uniform(0, max_interval))
        for w in range(writers):
            drain(w)
            done, _status = os.waitpid(pids[w], os.WNOHANG)
            if done:  # exited on its own (the broken writer trips over its own manifest)
                pids[w] = done
                drain(w, final=True)
                os.close(fds[w])
                result.exits += 1
                start(w)
        victim = rng.randrange(writers)
        reap(victim, kill=True)
        result.kills += 1
        start(victim)
    for w in range(writers):
        reap(w, kill=True)
    result.duration = time.monotonic() - t0
    return result


def _torture_keys(events: list[Any]) -> dict[tuple[str, str], dict[str, Any]]:
    keys: dict[tuple[str, str], dict[str, Any]] = {}
    for _w, phase, what, key, value in events:
        entry = keys.setdefault((what, key), {"acked": [], "inflight": set()})
        if phase == "B":
            entry["inflight"].add(value)
        else:
            entry["acked"].append(value)
            entry["inflight"] = set()
    return keys


def verify_torture(
    root: Path, events: list[Any], *, check_history: bool = True
) -> tuple[list[str], dict[str, int]]:
    """Check a store after torture against the acknowledgements.

    Checks: the manifest parses; every acknowledged label is listed and its file's checksum is the
    last acknowledged one (or one begun later and cut off by a kill) and matches the manifest; every
    acknowledged info update is visible; nothing listed is missing; a fresh process takes the lock
    and writes at once; optionally every acknowledged label version survives in the label history.

    Returns:
        ``(problems, figures)``; figures count acks and losses.
    """
    import subprocess

    from medstore.datastore.store.manifest import parse_manifest

    problems: list[str] = []
    keys = _torture_keys(events)
    figures = {
        "acked_labels": sum(len(v["acked"]) for (w, _), v in keys.items() if w == "label"),
        "acked_infos": sum(len(v["acked"]) for (w, _), v in keys.items() if w == "info"),
        "losses": 0,
    }
    try:
        parse_manifest((root / MANIFEST).read_bytes(), source=str(root / MANIFEST))
        raw = stored_document(root)  # on the journal path: with the journal applied
    except Exception as err:
        return [f"manifest does not parse: {err}"], {**figures, "losses": -1}
    for (what, key), entry in keys.items():
        image, tag = key.split("|")
        if what == "label" and entry["acked"] and tag not in raw["objects"][image]["labels"]:
            problems.append(f"acknowledged label {key} not listed")
            figures["losses"] += 1
    probe = subprocess.run(
        [sys.executable, str(HARNESS), "fresh-write", str(root)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if probe.returncode != 0:
        problems.append(f"fresh process could not write: {probe.stderr.strip()[-300:]}")
    elif float(probe.stdout.split()[-1]) > 2.0:
        problems.append(f"fresh process waited {probe.stdout.split()[-1]} s for the lock")
    if has_redo_records(root):
        problems.append("redo records left after a fresh write")
    figures["leftover_temp_files"] = len(stray_temp_files(root))
    doc = stored_document(root)
    for (what, key), entry in keys.items():
        if not entry["acked"]:
            continue
        image, tag = key.split("|")
        obj = doc["objects"][image]
        if what == "info":
            have = obj["image"]["info"].get(tag)
            allowed = {str(entry["acked"][-1])} | {str(v) for v in entry["inflight"]}
            if str(have) not in allowed:
                problems.append(f"info {key}={have!r}, acknowledged {entry['acked'][-1]}")
                figures["losses"] += 1
            continue
        label = obj["labels"].get(tag)
        if label is None:
            problems.append(f"acknowledged label {key} lost")
            figures["losses"] += len(entry["acked"])
            continue
        path = root / "labels" / tag / f"{image}{label['ext']}"
        current = sha256_file(path) if path.is_file() else None
        if current != label["info"].get("checksum"):
            problems.append(
                f"label {key}: file {current} but manifest {label['info'].get('checksum')}"
            )
        if current not in {entry["acked"][-1], *entry["inflight"]}:
            problems.append(f"label {key}: acknowledged content replaced by {current}")
            figures["losses"] += 1
        if check_history:
            kept = _history_checksums(root, tag, image)
            lost = [c for c in entry["acked"][:-1] if c not in kept]
            figures["losses"] += len(lost)
            if lost:
                problems.append(f"label {key}: {len(lost)} acknowledged versions not in history")
    for image, obj in doc["objects"].items():
        if not (root / f"{image}{obj['image']['ext']}").exists():
            problems.append(f"listed image {image} missing")
        for tag, label in obj["labels"].items():
            if not (root / "labels" / tag / f"{image}{label['ext']}").is_file():
                problems.append(f"listed label {image}|{tag} missing")
    return problems, figures


def _history_checksums(root: Path, tag: str, image: str) -> set[str]:
    """Checksums of the kept versions whose files really hold that content."""
    folder = root / ".medstore" / "history" / tag / image
    found = set()
    for record_path in folder.glob("v*.json") if folder.is_dir() else []:
        record = json.loads(record_path.read_bytes())
        kept = folder / f"{record_path.stem}{record['ext']}"
        if kept.is_file() and sha256_file(kept) == record["checksum"]:
            found.add(record["checksum"])
    return found


# --------------------------------------------------------------------------- entry points
def _fresh_write(root: Path) -> None:
    from medstore.datastore import LocalDatastore

    t0 = time.monotonic()
    store = LocalDatastore(root, lock_timeout=10.0)
    image = store.list_images()[0]
    src = root.parent / "fresh.nii.gz"
    src.write_bytes(seeded_nifti_bytes(424242))
    store.save_label(image, src, "fresh")
    store.update_image_info(image, {"fresh": True})
    print(f"elapsed {time.monotonic() - t0:.3f}")


def peak_rss_mb() -> float:
    """This process's own peak resident memory (VmHWM), in MiB.

    ``ru_maxrss`` is not used: Linux carries it across ``execve``, so a child started from a big
    pytest worker would report the worker's peak instead of its own.
    """
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _probe_open(root: Path, read_only: bool) -> None:
    """Open a store and print what happened, how long it took and the peak memory (JSON)."""
    from medstore.datastore import LocalDatastore

    t0 = time.monotonic()
    outcome: dict[str, Any] = {"error": None, "message": ""}
    try:
        LocalDatastore(root, read_only=read_only, lock_timeout=5.0)
    except Exception as err:
        outcome = {"error": type(err).__name__, "message": str(err)[:500]}
    outcome["seconds"] = time.monotonic() - t0
    outcome["peak_mb"] = peak_rss_mb()
    print(json.dumps(outcome))


def _probe_files(root: Path, cases_file: Path) -> None:
    """Feed hostile images and archives to a store; print per-case outcome, time, peak memory."""
    import nibabel  # noqa: F401  imports are not the cases' time
    import pydicom  # noqa: F401
    from medstore.datastore import LocalDatastore
    from medstore.datastore.imaging import read_image
    from medstore.datastore.interop.archive_import import import_archive

    store = LocalDatastore(root, lock_timeout=5.0)
    results = []
    for case in json.loads(cases_file.read_text()):
        outcome: dict[str, Any] = {"name": case["name"], "error": None, "added": None}
        t0 = time.monotonic()
        try:
            if case["kind"] == "archive":
                import_archive(store, case["path"])
            else:
                outcome["added"] = store.add_image("", case["path"])
                data = read_image(store.get_image_uri(outcome["added"]))
                outcome["finite"] = bool(__import__("numpy").isfinite(data.array).all())
        except Exception as err:
            outcome.update(error=type(err).__name__, message=str(err)[:300])
        outcome["seconds"] = time.monotonic() - t0
        outcome["peak_mb"] = peak_rss_mb()
        results.append(outcome)
    print(json.dumps(results))


# How the crash-point child is stopped at its planned point, each by a real signal to itself:
# SIGKILL (durable's own plan), SIGINT (Ctrl-C: Python raises KeyboardInterrupt there), SIGTERM
# with its default action (the process dies) and SIGTERM handled by raising SystemExit (as
# servers shutting down gracefully do).
INTERRUPTS = ("sigkill", "sigint", "sigterm", "sigterm-exit")


class _SignalPlan:
    """A crash plan that sends ``signum`` to this process at the planned visit."""

    def __init__(self, point: str, occurrence: int, signum: int) -> None:
        self.point, self.occurrence, self.signum, self.hits = point, occurrence, signum, 0

    def reached(self, name: str) -> None:
        if name != self.point:
            return
        self.hits += 1
        if self.hits == self.occurrence:
            sys.stdout.flush()
            os.kill(os.getpid(), self.signum)


def arm_interrupt(how: str) -> None:
    """Make the armed crash point (``MEDSTORE_CRASHPOINT``) deliver ``how`` instead of SIGKILL."""
    from medstore.datastore import crashpoints

    plan = crashpoints._plan
    if how == "sigkill" or plan is None:
        return
    if how == "sigterm-exit":
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    signum = signal.SIGINT if how == "sigint" else signal.SIGTERM
    crashpoints._plan = _SignalPlan(plan.point, plan.occurrence, signum)  # type: ignore[assignment]


def main(argv: list[str] | None = None) -> int:
    """Script entry point (see the module docstring)."""
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    tort = sub.add_parser("torture")
    tort.add_argument("root", type=Path)
    tort.add_argument("--out", type=Path, required=True)
    tort.add_argument("--duration", type=float, default=20.0)
    tort.add_argument("--min-kills", type=int, default=0, help="go on past --duration until then")
    tort.add_argument("--writers", type=int, default=4)
    tort.add_argument("--kind", choices=sorted(WRITERS), default="good")
    tort.add_argument("--seed", type=int, default=0)
    ops = sub.add_parser("ops")
    ops.add_argument("root", type=Path)
    ops.add_argument("ops_file", type=Path)
    ops.add_argument("--interrupt", choices=sorted(INTERRUPTS), default="sigkill")
    fresh = sub.add_parser("fresh-write")
    fresh.add_argument("root", type=Path)
    probe = sub.add_parser("open")
    probe.add_argument("root", type=Path)
    probe.add_argument("--read-only", action="store_true")
    files = sub.add_parser("files")
    files.add_argument("root", type=Path)
    files.add_argument("cases_file", type=Path)
    args = parser.parse_args(argv)
    if args.cmd == "torture":
        import medstore.datastore  # noqa: F401  warm the parent before forking writers
        import nibabel  # noqa: F401

        import support.nifti  # noqa: F401

        result = run_torture(
            args.root,
            duration=args.duration,
            writers=args.writers,
            kind=args.kind,
            seed=args.seed,
            min_kills=args.min_kills,
        )
        args.out.write_text(json.dumps(result.to_json()))
    elif args.cmd == "ops":

        def ack(i: int) -> None:
            os.write(1, f"ack {i}\n".encode())

        arm_interrupt(args.interrupt)
        run_ops(args.root, json.loads(args.ops_file.read_text()), ack)
    elif args.cmd == "files":
        _probe_files(args.root, args.cases_file)
    elif args.cmd == "open":
        _probe_open(args.root, args.read_only)
    else:
        _fresh_write(args.root)
    return 0


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    """Temporarily set the process umask."""
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


if __name__ == "__main__":
    sys.exit(main())
