"""Named crash points, a test-only hook of every durable write.

When the environment variable ``MEDSTORE_CRASHPOINT`` is ``"<name>:<n>"`` at import, the process
SIGKILLs itself the ``n``-th time it reaches the point called ``name`` (1-based). The variable is
read once, at import; unset, a crash point is one test of a module global against ``None``
(tests arm one in-process with :func:`armed_crashpoint`).

Examples:
    >>> crashpoint("manifest.before_replace")  # nothing armed: nothing happens
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator

__all__ = ["CRASHPOINT_ENV", "CrashPlan", "armed_crashpoint", "crashpoint"]

CRASHPOINT_ENV = "MEDSTORE_CRASHPOINT"


class CrashPlan:
    """Where a test wants the process killed: the ``occurrence``-th time ``point`` is reached.

    Only visits by the thread that made the plan count: a background fold of the journal (of
    this or an earlier store of the same process) neither kills nor shifts the count.

    Args:
        point: The crash point's name, e.g. ``"manifest.before_replace"``.
        occurrence: Which visit kills (1-based); a huge number only counts visits.

    Examples:
        >>> plan = CrashPlan.parse("txn.after_step:3")
        >>> plan.point, plan.occurrence, plan.hits
        ('txn.after_step', 3, 0)
    """

    def __init__(self, point: str, occurrence: int = 1) -> None:
        self.point = point
        self.occurrence = occurrence
        self.hits = 0
        """How many times :attr:`point` was reached so far."""
        self.thread = threading.get_ident()

    @classmethod
    def parse(cls, spec: str) -> CrashPlan:
        """Read ``"<name>:<n>"`` (``":<n>"`` may be left out: the first visit kills)."""
        point, sep, occurrence = spec.rpartition(":")
        return cls(point, int(occurrence or "1")) if sep else cls(spec)

    def reached(self, name: str) -> None:
        """Count a visit of ``name``; SIGKILL this process at the planned visit."""
        if name != self.point or threading.get_ident() != self.thread:
            return
        self.hits += 1
        if self.hits >= self.occurrence:
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)


_env_plan = os.environ.get(CRASHPOINT_ENV)
_plan: CrashPlan | None = CrashPlan.parse(_env_plan) if _env_plan else None
del _env_plan


def crashpoint(name: str) -> None:
    """Kill the process at a named point when a crash plan asks for it (tests only).

    Args:
        name: The point's name, e.g. ``"manifest.before_replace"``.
    """
    if _plan is not None:
        _plan.reached(name)


@contextlib.contextmanager
def armed_crashpoint(point: str, occurrence: int) -> Iterator[CrashPlan]:
    """Arm a crash plan in this process for the block (tests: count visits with a huge n).

    Args:
        point: The crash point's name.
        occurrence: Which visit kills.

    Yields:
        The plan (its ``hits`` count the visits).

    Examples:
        >>> with armed_crashpoint("demo.point", 10**9) as plan:
        ...     crashpoint("demo.point"); crashpoint("other.point")
        >>> plan.hits
        1
    """
    global _plan
    previous, _plan = _plan, CrashPlan(point, occurrence)
    try:
        yield _plan
    finally:
        _plan = previous
