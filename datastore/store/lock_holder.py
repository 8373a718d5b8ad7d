"""Who holds a file's ``flock``: the process named in ``/proc/locks`` (Linux), for messages.

Examples:
    >>> import tempfile, pathlib
    >>> lock_holder(pathlib.Path(tempfile.mkdtemp()) / "absent")
    'another process'
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["lock_holder"]

_PROC_LOCKS = Path("/proc/locks")


def _command_line(pid: int) -> str:
    """The first words of a process's command line ('' when it cannot be read)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    words = [
        os.path.basename(w) if i == 0 else w
        for i, w in enumerate(raw.decode("utf-8", "replace").split("\0"))
        if w
    ]
    text = " ".join(" ".join(words).split())
    return text if len(text) <= 80 else text[:77] + "..."


def lock_holder(path: Path) -> str:
    """Describe the process holding a ``flock`` on ``path``.

    Args:
        path: The lock file.

    Returns:
        ``"process 1234 (medstore label ...)"`` where ``/proc/locks`` names it, else
        ``"another process"`` (another machine on a network filesystem, or not Linux).
    """
    try:
        st = path.stat()
        table = _PROC_LOCKS.read_text()
    except OSError:
        return "another process"
    wanted = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in table.splitlines():
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF" (a "->" marks a waiter)
        if len(fields) < 6 or "->" in fields or fields[1] != "FLOCK":
            continue
        if fields[5] == wanted and fields[4].isdigit():
            pid = int(fields[4])
            if pid == os.getpid():
                continue
            command = _command_line(pid)
            return f"process {pid}" + (f" ({command})" if command else "")
    return "another process"
