"""The journal's record log: torn or corrupt tails ignored, kill -9 safe, no lock or link."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from medstore.datastore.crashpoints import CRASHPOINT_ENV
from medstore.datastore.errors import StoreLockedError, UnsafePathError
from medstore.datastore.nofollow import confine
from medstore.datastore.store.record_log import RecordLog, frame, parse
from medstore.datastore.store.store_lock import StoreLock


def _log(root: Path) -> tuple[RecordLog, StoreLock]:
    return RecordLog(root / ".medstore" / "journal.log"), StoreLock(root / ".lock", timeout=5.0)


def _append_all(log: RecordLog, lock: StoreLock, payloads: list[bytes]) -> None:
    with lock.held():
        for payload in payloads:
            log.append(payload, lock=lock)


def test_records_come_back_in_order_and_incrementally(tmp_path: Path) -> None:
    log, lock = _log(tmp_path)
    _append_all(log, lock, [b"a", b"", b"c" * 5000])
    first = log.read()
    assert first.records == [b"a", b"", b"c" * 5000]
    _append_all(log, lock, [b"d"])
    assert log.read(offset=first.end).records == [b"d"]


def test_a_torn_last_record_is_ignored_then_cut_before_the_next(tmp_path: Path) -> None:
    log, lock = _log(tmp_path)
    _append_all(log, lock, [b"one", b"two"])
    whole = log.path.read_bytes()
    log.path.write_bytes(whole + frame(b"three")[:-2])  # a crash cut the third record short
    assert log.read().records == [b"one", b"two"]
    assert log.read().torn == len(frame(b"three")) - 2
    _append_all(log, lock, [b"four"])
    assert log.read().records == [b"one", b"two", b"four"]
    assert log.read().torn == 0


def test_a_record_whose_checksum_fails_ends_the_log(tmp_path: Path) -> None:
    log, lock = _log(tmp_path)
    _append_all(log, lock, [b"one", b"two", b"three"])
    data = bytearray(log.path.read_bytes())
    second = len(frame(b"one"))
    data[second + 10] ^= 0x01  # one bit of "two"'s payload
    log.path.write_bytes(bytes(data))
    assert log.read().records == [b"one"]  # nothing after a bad record is trusted
    _append_all(log, lock, [b"four"])
    assert log.read().records == [b"one", b"four"]


def test_another_process_appending_in_between_is_never_cut(tmp_path: Path) -> None:
    ours, lock = _log(tmp_path)
    theirs = RecordLog(ours.path)
    _append_all(ours, lock, [b"a"])
    _append_all(theirs, lock, [b"b", b"c"])
    _append_all(ours, lock, [b"d"])  # ours remembered an end before b and c
    assert ours.read().records == [b"a", b"b", b"c", b"d"]


def test_a_reset_by_another_process_is_seen(tmp_path: Path) -> None:
    ours, lock = _log(tmp_path)
    theirs = RecordLog(ours.path)
    _append_all(ours, lock, [b"a" * 100])
    with lock.held():
        theirs.reset(lock=lock)
    _append_all(theirs, lock, [b"x" * 300])  # longer than what ours remembers
    _append_all(ours, lock, [b"y"])
    assert ours.read().records == [b"x" * 300, b"y"]


def test_writing_without_the_lock_is_refused(tmp_path: Path) -> None:
    log, lock = _log(tmp_path)
    with pytest.raises(StoreLockedError, match="not holding the store lock"):
        log.append(b"a", lock=lock)
    with pytest.raises(StoreLockedError, match="not holding the store lock"):
        log.reset(lock=lock)
    assert not log.path.exists()


def test_a_log_planted_as_a_link_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "store"
    (root / ".medstore").mkdir(parents=True)
    confine(root)
    target = tmp_path / "elsewhere.log"
    target.write_bytes(b"")
    log, lock = _log(root)
    log.path.symlink_to(target)
    with lock.held(), pytest.raises(UnsafePathError):
        log.append(b"a", lock=lock)
    assert target.read_bytes() == b""


_WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from medstore.datastore.store.record_log import RecordLog
    from medstore.datastore.store.store_lock import StoreLock
    root = Path(sys.argv[1])
    log, lock = RecordLog(root / "journal.log"), StoreLock(root / ".lock", timeout=5.0)
    k = 0
    while True:
        with lock.held():
            log.append(b"record %d " % k + b"x" * (k % 5000), lock=lock)
        print(k, flush=True)  # acknowledged
        k += 1
    """
)


def _expected(k: int) -> bytes:
    return b"record %d " % k + b"x" * (k % 5000)


def test_kill_9_at_any_moment_keeps_every_acknowledged_record(tmp_path: Path) -> None:
    for attempt in range(3):
        root = tmp_path / f"run{attempt}"
        root.mkdir()
        proc = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(root)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        acknowledged = -1
        for line in proc.stdout:
            acknowledged = int(line)
            if acknowledged >= 40 + 37 * attempt:
                break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        records = RecordLog(root / "journal.log").read().records
        assert len(records) > acknowledged
        assert records == [_expected(k) for k in range(len(records))]


@pytest.mark.parametrize(
    ("point", "kept"), [("journal.mid_record:4", 3), ("journal.before_sync:4", 4)]
)
def test_a_crash_inside_an_append_loses_no_earlier_record(
    tmp_path: Path, point: str, kept: int
) -> None:
    env = {**os.environ, CRASHPOINT_ENV: point}
    proc = subprocess.run(
        [sys.executable, "-c", _WRITER, str(tmp_path)], capture_output=True, text=True, env=env
    )
    assert proc.returncode == -signal.SIGKILL
    assert proc.stdout.split() == [str(k) for k in range(3)]  # three acknowledged
    log, lock = _log(tmp_path)
    log = RecordLog(tmp_path / "journal.log")
    assert log.read().records == [_expected(k) for k in range(kept)]
    _append_all(log, lock, [b"after"])
    assert log.read().records == [*(_expected(k) for k in range(kept)), b"after"]


def test_parse_stops_at_a_frame_with_the_wrong_magic() -> None:
    data = frame(b"a") + b"\x00" * 20 + frame(b"b")
    contents = parse(data)
    assert contents.records == [b"a"]
    assert contents.torn == 20 + len(frame(b"b"))
