"""Label history and image trash: nothing a user saved is ever destroyed by a later save.

Previous versions of a label live in ``.medstore/history/<tag>/<image_id>/`` as ``vNNNN<ext>`` with
a ``vNNNN.json`` record (version, image_version, saved_at, checksum, info, ext, reason; records
kept before image versions existed have no ``image_version``). Removed images live in
``.medstore/trash/<image_id>/<stamp>/`` with their manifest entry.

Examples:
    >>> from pathlib import Path
    >>> LabelHistory(StoreLayout(Path("/nonexistent"))).records("final", "case")
    []
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .. import nofollow
from ..timestamps import iso_utc
from .json_values import dump_json, load_json
from .layout import StoreLayout

__all__ = ["FORMAT_VERSION", "LabelHistory"]

FORMAT_VERSION = 1
_RECORD = re.compile(r"^v(\d{4,})\.json$")


class LabelHistory:
    """Read access to kept label versions and the paths of the next one.

    Every read is walked from the store root without following links (:mod:`..nofollow`): a
    history folder planted as a link is refused with ``UnsafePathError``, never read.

    Args:
        layout: The store's paths.
    """

    def __init__(self, layout: StoreLayout) -> None:
        self.layout = layout

    def _versions(self, tag: str, image_id: str) -> list[int]:
        folder = self.layout.history_dir(tag, image_id)
        try:
            names = [m.group(1) for n in nofollow.listdir(folder) if (m := _RECORD.match(n))]
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(int(n) for n in names)

    def records(self, tag: str, image_id: str) -> list[dict[str, Any]]:
        """The kept (previous) versions, oldest first.

        Args:
            tag: Label tag.
            image_id: Image id.

        Returns:
            Records with ``version``, ``image_version``, ``saved_at``, ``checksum``, ``info``,
            ``ext``, ``reason``, and ``path`` (the kept file).
        """
        folder = self.layout.history_dir(tag, image_id)
        out = []
        for version in self._versions(tag, image_id):
            record = load_json(nofollow.read_bytes(folder / f"v{version:04d}.json"))
            record["path"] = str(folder / f"v{version:04d}{record.get('ext', '')}")
            out.append(record)
        return out

    def next_paths(self, tag: str, image_id: str, ext: str) -> tuple[int, Path, Path]:
        """Version number, file path and record path for the next kept version.

        Args:
            tag: Label tag.
            image_id: Image id.
            ext: The kept file's extension.

        Returns:
            ``(version, file_path, record_path)``.
        """
        versions = self._versions(tag, image_id)
        version = (versions[-1] + 1) if versions else 1
        folder = self.layout.history_dir(tag, image_id)
        return version, folder / f"v{version:04d}{ext}", folder / f"v{version:04d}.json"

    def version_file(self, tag: str, image_id: str, version: int) -> tuple[Path, dict[str, Any]]:
        """The file and record of one kept version.

        Raises:
            FileNotFoundError: No such version.
        """
        folder = self.layout.history_dir(tag, image_id)
        record = load_json(nofollow.read_bytes(folder / f"v{version:04d}.json"))
        return folder / f"v{version:04d}{record.get('ext', '')}", record

    @staticmethod
    def make_record(
        version: int, entry: dict[str, Any], reason: str, *, image_version: str | None
    ) -> bytes:
        """Serialise the record of a version being kept.

        Args:
            version: Its number.
            entry: Its manifest entry (``ext`` and ``info``).
            reason: ``"replaced"``, ``"removed"`` or ``"restored"``.
            image_version: The version id of the image it was kept from (``None``: an image
                without one).

        Returns:
            JSON bytes.
        """
        info = entry.get("info", {})
        record = {
            "format_version": FORMAT_VERSION,
            "version": version,
            "image_version": image_version,
            "saved_at": info.get("saved_at") or _ts_iso(info.get("ts")),
            "kept_at": iso_utc(),
            "checksum": info.get("checksum"),
            "ext": entry.get("ext", ""),
            "info": info,
            "reason": reason,
        }
        return dump_json(record, indent=True)


def _ts_iso(ts: Any) -> str | None:
    return iso_utc(ts) if isinstance(ts, int | float) else None
