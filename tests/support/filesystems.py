"""Real special filesystems, built inside a test on loop devices (root only).

:func:`mounted` mounts a fresh filesystem in a work folder and unmounts it afterwards (lazily when
a plain unmount fails, so a test that left a process or file open never wedges the next one):

- ``"ext4_1s"``: ext4 made with 128-byte inodes, whose timestamps have whole-second resolution;
- ``"tmpfs"``: a 1 MiB tmpfs (nanosecond timestamps, runs out of space quickly);
- ``"exfat"``: exFAT through the kernel driver when ``mount -t exfat`` works, else Debian's
  ``exfat-fuse`` on a loop device (case-insensitive names, no hard links, no ``chmod``, refused
  characters such as ``: * ? " < > |``).

Where mounting is refused (not root, no loop devices, no FUSE, tools missing) the test is skipped
with the reason; with ``MEDSTORE_REQUIRE_MOUNTS=1`` (set by ``.ci/run``) it fails instead.

Examples:
    >>> import shutil
    >>> mkfs_tool("ext4") == shutil.which("mkfs.ext4")
    True
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["REQUIRE_MOUNTS_ENV", "mkfs_tool", "mounted"]

REQUIRE_MOUNTS_ENV = "MEDSTORE_REQUIRE_MOUNTS"
_IMAGE_BYTES = 64 * 1024 * 1024


def mkfs_tool(kind: str) -> str | None:
    """The ``mkfs.<kind>`` program on ``PATH``, or ``None``."""
    return shutil.which(f"mkfs.{kind}")


def _unavailable(reason: str) -> None:
    """Skip the test, or fail it where mounts are required."""
    if os.environ.get(REQUIRE_MOUNTS_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_MOUNTS_ENV}=1 turns this skip into a failure)")
    pytest.skip(reason)


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=60)


def _unmount(mountpoint: Path) -> None:
    if _run(["umount", str(mountpoint)]).returncode != 0:
        _run(["umount", "-l", str(mountpoint)])


def _sparse_image(path: Path) -> None:
    with open(path, "wb") as f:
        f.truncate(_IMAGE_BYTES)


def _mkfs(kind: str, args: list[str], image: Path) -> None:
    tool = mkfs_tool(kind)
    if tool is None:
        _unavailable(f"mkfs.{kind} is not installed (Debian: e2fsprogs / exfatprogs)")
    assert tool is not None
    done = _run([tool, *args, str(image)])
    if done.returncode != 0:
        _unavailable(f"mkfs.{kind} failed: {done.stderr.strip()}")


@contextlib.contextmanager
def mounted(kind: str, workdir: Path) -> Iterator[Path]:
    """Build and mount one special filesystem; yield its (writable, empty) root folder.

    Args:
        kind: ``"ext4_1s"``, ``"tmpfs"`` or ``"exfat"``.
        workdir: A folder for the image file and the mount point.

    Yields:
        A folder on the mounted filesystem.
    """
    if os.geteuid() != 0:
        _unavailable(f"mounting a {kind} filesystem needs root")
    mountpoint = workdir / f"mnt-{kind}"
    mountpoint.mkdir()
    image = workdir / f"{kind}.img"
    loop_device: str | None = None
    if kind == "tmpfs":
        done = _run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mountpoint)])
    elif kind == "ext4_1s":
        _sparse_image(image)
        _mkfs("ext4", ["-q", "-F", "-I", "128"], image)
        done = _run(["mount", "-o", "loop", str(image), str(mountpoint)])
    elif kind == "exfat":
        _sparse_image(image)
        _mkfs("exfat", [], image)
        done = _run(["mount", "-t", "exfat", "-o", "loop", str(image), str(mountpoint)])
        if done.returncode != 0:
            fuse = shutil.which("mount.exfat-fuse")
            if fuse is None:
                _unavailable("no exfat kernel driver and mount.exfat-fuse is not installed")
            assert fuse is not None
            attach = _run(["losetup", "-f", "--show", str(image)])
            if attach.returncode != 0:
                _unavailable(f"no loop device for exFAT: {attach.stderr.strip()}")
            loop_device = attach.stdout.strip()
            done = _run([fuse, loop_device, str(mountpoint)])
    else:
        raise ValueError(f"unknown filesystem kind {kind!r}")
    if done.returncode != 0:
        if loop_device:
            _run(["losetup", "-d", loop_device])
        _unavailable(f"mounting {kind} was refused: {done.stderr.strip()}")
    try:
        root = mountpoint / "store"
        root.mkdir()
        yield root
    finally:
        _unmount(mountpoint)
        if loop_device:
            _run(["losetup", "-d", loop_device])
