"""When a store's saves go to its journal, and when the journal is folded into the manifest."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = ["JournalOptions"]


@dataclass(frozen=True)
class JournalOptions:
    """When saves go to the journal, and when it is folded into the manifest.

    Args:
        mode: ``"auto"`` (the journal once the store holds ``min_images`` images), ``"journal"``
            (always) or ``"direct"`` (every save rewrites the manifest, as MONAI Label does).
        min_images: Store size from which ``"auto"`` journals.
        compact_after_s: Fold the journal in once its oldest record is this old (seconds): the
            longest MONAI Label waits to see a medstore save.
        max_records: Fold it in once it holds this many records.
        max_bytes: Fold it in once the log is this large.

    Examples:
        >>> JournalOptions.from_env({"MEDSTORE_WRITE_PATH": "direct"}).mode
        'direct'
    """

    mode: Literal["auto", "journal", "direct"] = "auto"
    min_images: int = 5_000
    compact_after_s: float = 30.0
    max_records: int = 10_000
    max_bytes: int = 64 << 20

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> JournalOptions:
        """Options from ``MEDSTORE_WRITE_PATH`` and ``MEDSTORE_COMPACT_AFTER_S``.

        Raises:
            ValueError: An unknown write path or a bound that is not a positive number.
        """
        env = os.environ if env is None else env
        mode = env.get("MEDSTORE_WRITE_PATH", "auto") or "auto"
        if mode not in ("auto", "journal", "direct"):
            raise ValueError(f"MEDSTORE_WRITE_PATH={mode!r}: expected auto, journal or direct")
        bound = float(env.get("MEDSTORE_COMPACT_AFTER_S", cls.compact_after_s))
        if not bound > 0:
            raise ValueError(f"MEDSTORE_COMPACT_AFTER_S={bound!r}: expected seconds > 0")
        return cls(mode=mode, compact_after_s=bound)  # type: ignore[arg-type]

    def uses_journal(self, *, images: int) -> bool:
        """Whether a save to a store of ``images`` images goes to the journal."""
        return self.mode == "journal" or (self.mode == "auto" and images >= self.min_images)
