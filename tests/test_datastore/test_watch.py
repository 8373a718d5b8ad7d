"""The auto-reload watcher: growing files, renames, new tags, drops, polling."""

from __future__ import annotations

import functools
import gzip
import logging
import os
import shutil
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from medstore.datastore.imaging.completeness import why_incomplete
from medstore.datastore.store.local import LocalDatastore
from medstore.datastore.watch import RefreshReport, StoreWatcher, WatchOptions, run_foreground
from pydicom.data import get_testdata_file
from support.nifti import nifti_bytes
from support.stores import MakeStore

SOAK = os.environ.get("MEDSTORE_SOAK") == "1"
FAST = WatchOptions(debounce=0.1, stability_window=0.3, poll_interval=0.3, rescan_interval=60.0)
EXTENSIONS = ("*.nii.gz", "*.nii", "*.dcm")


def zeros_nifti_bytes(shape: tuple[int, ...], *, compressed: bool = False) -> bytes:
    """A valid single-file NIfTI-1 (int16 zeros) as bytes."""
    zeros = np.zeros(shape, dtype=np.int16)
    return nifti_bytes(zeros, np.diag([1.0, 1.0, 2.0, 1.0]), compressed=compressed)


def dicom_bytes() -> bytes:
    path = get_testdata_file("CT_small.dcm")
    assert path is not None
    return Path(path).read_bytes()


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


class Recorder:
    """Collects the watcher's reports with the time each arrived."""

    def __init__(self) -> None:
        self.reports: list[tuple[float, RefreshReport]] = []
        self.lock = threading.Lock()

    def __call__(self, report: RefreshReport) -> None:
        with self.lock:
            self.reports.append((time.monotonic(), report))

    def added(self, image_id: str) -> list[float]:
        with self.lock:
            return [t for t, r in self.reports if image_id in r.added_images]


@pytest.fixture
def make_store(make_store: MakeStore) -> MakeStore:
    """The shared factory: empty stores that list ``EXTENSIONS``, with the default lock timeout."""
    return functools.partial(make_store, extensions=EXTENSIONS, lock_timeout=30.0)


@pytest.fixture
def make_watcher() -> Iterator[Callable[..., tuple[StoreWatcher, Recorder]]]:
    watchers: list[StoreWatcher] = []

    def make(
        store: LocalDatastore, *, options: WatchOptions = FAST, mode: str = "native"
    ) -> tuple[StoreWatcher, Recorder]:
        recorder = Recorder()
        watcher = StoreWatcher(store, mode=mode, options=options, on_change=recorder)  # type: ignore[arg-type]
        watcher.start()
        watchers.append(watcher)
        return watcher, recorder

    yield make
    for watcher in watchers:
        watcher.stop()


def write_slowly(
    path: Path,
    data: bytes,
    *,
    chunks: int,
    pause: float,
    stall_at: int = -1,
    stall: float = 0.0,
    during: Callable[[], None] | None = None,
) -> None:
    """Write ``data`` in ``chunks`` pieces, ``pause`` s apart, stalling once after ``stall_at``."""
    step = -(-len(data) // chunks)
    with path.open("wb") as f:
        for i in range(chunks):
            f.write(data[i * step : (i + 1) * step])
            f.flush()
            os.fsync(f.fileno())
            if during is not None:
                during()
            time.sleep(stall if i == stall_at else pause)


# ---------------------------------------------------------------------- growing files
@pytest.mark.parametrize(
    ("name", "payload"),
    [
        ("grow.nii", lambda: zeros_nifti_bytes((128, 128, 160))),  # ~5 MB
        ("grow.nii.gz", lambda: zeros_nifti_bytes((64, 64, 64), compressed=True)),
        ("grow.dcm", dicom_bytes),
    ],
    ids=["nii", "nii.gz", "dicom"],
)
def test_growing_file_is_indexed_once_and_only_when_complete(
    make_store: Callable[..., LocalDatastore],
    make_watcher: Callable[..., tuple[StoreWatcher, Recorder]],
    name: str,
    payload: Callable[[], bytes],
) -> None:
    store = make_store()
    watcher, recorder = make_watcher(store)
    data = payload()
    seen_early: list[bool] = []
    # ~2 s of writing, with one stall of 3 stability windows halfway: size and mtime are
    # stable then, so only the content check keeps the half-written file out.
    write_slowly(
        store.root / name,
        data,
        chunks=8,
        pause=0.12,
        stall_at=3,
        stall=1.0,
        during=lambda: seen_early.append(store.has_image("grow")),
    )
    done = time.monotonic()
    assert not any(seen_early)
    assert wait_for(lambda: store.has_image("grow"))
    assert watcher.wait_idle(5.0)
    time.sleep(FAST.debounce * 3)
    assert len(recorder.added("grow")) == 1
    assert recorder.added("grow")[0] >= done
    assert Path(store.get_image_uri("grow")).stat().st_size == len(data)


@pytest.mark.skipif(not SOAK, reason="soak only (MEDSTORE_SOAK=1)")
def test_soak_200mb_file_written_over_seconds_is_indexed_once(
    make_store: Callable[..., LocalDatastore],
    make_watcher: Callable[..., tuple[StoreWatcher, Recorder]],
) -> None:
    store = make_store()
    watcher, recorder = make_watcher(store)
    data = zeros_nifti_bytes((512, 512, 400))  # 200 MB
    write_slowly(
        store.root / "big.nii",
        data,
        chunks=40,
        pause=0.1,
        stall_at=20,
        stall=1.0,
        during=lambda: None if not store.has_image("big") else pytest.fail("early"),
    )
    assert wait_for(lambda: store.has_image("big"), 60.0)
    assert watcher.wait_idle(30.0)
    assert len(recorder.added("big")) == 1


def test_file_that_stays_truncated_is_never_indexed_and_does_not_block_idle(
    make_store: Callable[..., LocalDatastore],
    make_watcher: Callable[..., tuple[StoreWatcher, Recorder]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = make_store()
    watcher, _ = make_watcher(store)
    with caplog.at_level(logging.WARNING, logger="medstore.datastore.watch.watcher"):
        (store.root / "cut.nii").write_bytes(zeros_nifti_bytes((32, 32, 32))[:5000])
        time.sleep(0.05)
        assert watcher.wait_idle(5.0, settle=FAST.stability_window * 2)
    assert not store.has_image("cut")
    assert "NIfTI data is short" in caplog.text
    (store.root / "cut.nii").write_bytes(zeros_nifti_bytes((32, 32, 32)))  # the copy is redone
    assert wait_for(lambda: store.has_image("cut"))


# ---------------------------------------------------------------------- renames, tags, drops
def test_file_renamed_into_the_folder_is_indexed_once(
    tmp_path: Path,
    make_store: Callable[..., LocalDatastore],
    make_watcher: Callable[..., tuple[StoreWatcher, Recorder]],
) -> None:
    store = make_store()
    watcher, recorder = make_watcher(store)
    outside = tmp_path / "staging.nii.gz"
    outside.write_bytes(zeros_nifti_bytes((16, 16, 8), compressed=True))
    os.rename(outside, store.root / "moved.nii.gz")
    assert wait_for(lambda: store.has_image("moved"))
    assert watcher.wait_idle(5.0)
    time.sleep(FAST.debounce * 3)
    assert len(recorder.added("moved")) == 1


def test_tag_folder_created_after_start_is_watched(
    make_store: Callable[..., LocalDatastore],
    make_watcher: Callable[..., tuple[StoreWatcher, Recorder]],
) -> None:
    store = make_store()
    (store.root / "case.nii.gz").write_bytes(zeros_nifti_bytes((16, 16, 8), compressed=True))
    store.refresh()
    watcher, recorder = make_watcher(store)
    tag_dir = store.layout.labels / "reviewer"
    tag_dir.mkdir()
    time.sleep(0.2)  # the new folder's watch must catch the file, not the creation scan
    (tag_dir / "case.nii.gz").write_bytes(zeros_nifti_bytes((16, 16, 8), compressed=True))
    assert wait_for(lambda: "reviewer" in store.get_labels_by_image_id("case"))
    assert watcher.wait_idle(5.0)
    assert any(("reviewer", "case") in r.added_labels for _, r in recorder.reports)


def test_removed_files_are_dropped(
    make_store: Callable[..., LocalDatastore],
    make_watcher: Callable[..., tuple[StoreWatcher, Recorder]],
) -> None:
    store = make_store()
    (store.root / "gone.nii").write_bytes(zeros_nifti_bytes((8, 8, 8)))
    store.refresh()
    _, recorder = make_watcher(store)
    (store.root / "gone.nii").unlink()
    assert wait_for(lambda: not store.has_image("gone"))
    assert wait_for(lambda: any("gone" in r.removed_images for _, r in recorder.reports))


@pytest.mark.parametrize("count", [5000 if SOAK else 1000])
def test_many_files_dropped_at_once_are_all_indexed(
    tmp_path: Path,
    make_store: Callable[..., LocalDatastore],
    make_watcher: Callable[..., tuple[StoreWatcher, Recorder]],
    count: int,
) -> None:
    store = make_store()
    watcher, _ = make_watcher(store)
    data = zeros_nifti_bytes((4, 4, 4))
    for i in range(count):
        (store.root / f"drop_{i:05d}.nii").write_bytes(data)
    assert wait_for(lambda: len(store.list_images()) == count, 30.0 if count <= 1000 else 120.0)
    assert watcher.wait_idle(10.0)
    assert watcher.refreshes < 20  # debounced and batched, not one refresh per file


def test_polling_observer_finds_a_drop_within_two_intervals(
    make_store: Callable[..., LocalDatastore],
    make_watcher: Callable[..., tuple[StoreWatcher, Recorder]],
) -> None:
    options = WatchOptions(
        debounce=0.05, stability_window=0.2, poll_interval=0.5, rescan_interval=60.0
    )
    store = make_store()
    _, recorder = make_watcher(store, options=options, mode="poll")
    time.sleep(0.1)
    dropped = time.monotonic()
    (store.root / "polled.nii").write_bytes(zeros_nifti_bytes((8, 8, 8)))
    assert wait_for(lambda: bool(recorder.added("polled")))
    # detection (two intervals) + stability window + one candidate look + debounce, with slack
    budget = 2 * options.poll_interval + 2 * options.stability_window + options.debounce + 0.5
    assert recorder.added("polled")[0] - dropped < budget


def test_store_own_saves_cause_no_refresh_and_no_backlog(
    make_store: Callable[..., LocalDatastore],
    make_watcher: Callable[..., tuple[StoreWatcher, Recorder]],
) -> None:
    store = make_store()
    image = zeros_nifti_bytes((8, 8, 8), compressed=True)
    for i in range(200):
        (store.root / f"img_{i:03d}.nii.gz").write_bytes(image)
    store.refresh()
    watcher, recorder = make_watcher(store)
    label = np.zeros((8, 8, 8), dtype=np.uint8)
    for i in range(50):
        label[0, 0, 0] = i % 3
        store.save_label(f"img_{i % 25:03d}", label, "final")
    assert watcher.wait_idle(2.0, settle=0.3)
    assert watcher.refreshes == 0  # every event was the manifest's own doing
    assert recorder.reports == []
    assert store.status()["label_tags"]["final"] == 25


def test_auto_reload_store_uses_watch_options_and_stops_on_close(
    make_store: Callable[..., LocalDatastore],
) -> None:
    store = make_store(auto_reload=True, watch="poll", watch_options=FAST)
    (store.root / "auto.nii").write_bytes(zeros_nifti_bytes((8, 8, 8)))
    assert wait_for(lambda: store.has_image("auto"))
    store.close()
    (store.root / "later.nii").write_bytes(zeros_nifti_bytes((8, 8, 8)))
    time.sleep(FAST.poll_interval * 2 + FAST.stability_window + FAST.debounce)
    assert not store.has_image("later")


# ---------------------------------------------------------------------- robustness
def test_worker_survives_errors_and_logs_them(
    make_store: Callable[..., LocalDatastore],
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = make_store()
    calls: list[RefreshReport] = []

    def flaky(report: RefreshReport) -> None:
        calls.append(report)
        if len(calls) == 1:
            raise RuntimeError("callback exploded")

    with (
        caplog.at_level(logging.ERROR, logger="medstore.datastore.watch.watcher"),
        StoreWatcher(store, options=FAST, on_change=flaky) as watcher,
    ):
        (store.root / "one.nii").write_bytes(zeros_nifti_bytes((8, 8, 8)))
        assert wait_for(lambda: len(calls) == 1)
        (store.root / "two.nii").write_bytes(zeros_nifti_bytes((8, 8, 8)))
        assert wait_for(lambda: store.has_image("two"))
        assert watcher.running
    assert "callback exploded" in caplog.text


def test_read_only_store_is_not_watched(
    make_store: Callable[..., LocalDatastore], caplog: pytest.LogCaptureFixture
) -> None:
    root = make_store().root
    store = LocalDatastore(root, read_only=True)
    with caplog.at_level(logging.WARNING, logger="medstore.datastore.watch.watcher"):
        watcher = StoreWatcher(store, options=FAST)
        watcher.start()
    assert not watcher.running
    assert "read-only" in caplog.text
    assert watcher.wait_idle(0.1)


def test_run_foreground_reports_until_stopped(
    make_store: Callable[..., LocalDatastore],
) -> None:
    store = make_store()
    stop = threading.Event()
    recorder = Recorder()
    thread = threading.Thread(
        target=run_foreground,
        args=(store,),
        kwargs={"on_change": recorder, "options": FAST, "stop": stop},
    )
    thread.start()
    try:
        time.sleep(0.2)
        shutil.copyfile(get_testdata_file("CT_small.dcm"), store.root / "ct.dcm")  # type: ignore[arg-type]
        assert wait_for(lambda: bool(recorder.added("ct")))
    finally:
        stop.set()
        thread.join(5.0)
    assert not thread.is_alive()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"debounce": 0}, "debounce"), ({"stability_window": -1}, "stability_window")],
)
def test_watch_options_must_be_positive(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        WatchOptions(**kwargs)


def test_unknown_watch_mode_is_refused(make_store: Callable[..., LocalDatastore]) -> None:
    with pytest.raises(ValueError, match="watch mode"):
        StoreWatcher(make_store(), mode="inotify")  # type: ignore[arg-type]


# ---------------------------------------------------------------------- completeness checks
@pytest.mark.parametrize("compressed", [False, True])
def test_nifti_completeness_follows_the_header(tmp_path: Path, compressed: bool) -> None:
    data = zeros_nifti_bytes((16, 16, 16), compressed=compressed)
    path = tmp_path / ("x.nii.gz" if compressed else "x.nii")
    path.write_bytes(data)
    assert why_incomplete(path) is None
    for cut in sorted({10, min(348, len(data) - 1), len(data) // 2, len(data) - 1}):
        path.write_bytes(data[:cut])
        assert why_incomplete(path) is not None, cut


def test_gzip_member_boundary_cut_is_caught_by_the_nifti_size(tmp_path: Path) -> None:
    raw = zeros_nifti_bytes((16, 16, 16))
    path = tmp_path / "multi.nii.gz"
    path.write_bytes(gzip.compress(raw[:2000]))  # a complete gzip member, half a volume
    assert why_incomplete(path) == f"NIfTI data is short: 2000 of {len(raw)} bytes"


def test_dicom_completeness_rejects_cuts_inside_the_pixel_data(tmp_path: Path) -> None:
    data = dicom_bytes()
    path = tmp_path / "ct.dcm"
    path.write_bytes(data)
    assert why_incomplete(path) is None
    for cut in range(0, len(data) - 1, 997):
        path.write_bytes(data[:cut])
        assert why_incomplete(path) is not None, cut


@pytest.mark.parametrize("name", ["ct.dcm", "ct.raw"])
def test_dicom_without_preamble_is_checked_like_one_with(tmp_path: Path, name: str) -> None:
    data = dicom_bytes()
    assert data[128:132] == b"DICM" and data[132:138] == b"\x02\x00\x00\x00UL"
    bare = data[144 + struct.unpack("<I", data[140:144])[0] :]  # no preamble, no file meta
    path = tmp_path / name
    path.write_bytes(bare)
    assert why_incomplete(path) is None  # the readers accept such a file, so must the watcher
    for cut in range(997, len(bare) - 1, 997):
        path.write_bytes(bare[:cut])
        assert why_incomplete(path) is not None, cut


def test_dicom_length_beyond_the_end_reads_as_cut_short(tmp_path: Path) -> None:
    data = dicom_bytes()
    pos = data.index(b"\xe0\x7f\x10\x00OW")  # pixel data now declares 3 GB
    path = tmp_path / "ct.dcm"
    path.write_bytes(data[: pos + 8] + struct.pack("<I", 3_000_000_000) + data[pos + 12 :])
    assert why_incomplete(path) == "a DICOM element is cut short"


def test_dicom_series_folder_needs_every_file_complete(tmp_path: Path) -> None:
    series = tmp_path / "series"
    series.mkdir()
    data = dicom_bytes()
    (series / "1.dcm").write_bytes(data)
    (series / "2.dcm").write_bytes(data)
    assert why_incomplete(series) is None
    (series / "2.dcm").write_bytes(data[: len(data) // 2])
    assert (why_incomplete(series) or "").startswith("2.dcm: ")


def test_unknown_formats_pass(tmp_path: Path) -> None:
    path = tmp_path / "x.nrrd"
    path.write_bytes(b"NRRD0004\n")
    assert why_incomplete(path) is None
