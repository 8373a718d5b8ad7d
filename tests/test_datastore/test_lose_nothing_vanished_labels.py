"""Issue 12 case 11: a vanished label's info comes back only to its own file.

A label whose file vanished keeps its entry in the trash; when a label file of that name is
found again, the entry (``label_info``, who drew it, the checksum) comes back only when the
recorded SHA-256 matches the file found. Another file copied under that name is a new label: it
starts with no info and its own checksum, and the vanished entry stays in the trash. Before, the
other file took the old entry, and with it a checksum that was not its own.
"""

from __future__ import annotations

import numpy as np
import pytest
from medstore.datastore.store.staging import file_checksum
from support.nifti import make_nifti
from support.stores import MakeStore, simple_case

pytestmark = pytest.mark.contract  # runs once per store write path (support.contract)


def test_another_file_under_a_vanished_label_s_name_gets_none_of_its_info(
    make_store: MakeStore,
) -> None:
    store = make_store({"a": simple_case(21, (4, 4, 4))})
    store.save_label("a", np.ones((4, 4, 4), np.uint8), "final")
    store.update_label_info("a", "final", {"by": "ann"})
    label = store.root / "labels" / "final" / "a.nii.gz"
    own = label.read_bytes()
    label.unlink()
    store.refresh()
    make_nifti(label, np.full((4, 4, 4), 3, np.uint8))  # another label copied in
    store.refresh()
    info = store.get_label_info("a", "final")
    assert "by" not in info
    assert info.get("checksum") in (None, file_checksum(label))
    records = list((store.root / ".medstore" / "trash" / "a").glob("*/label-final.json"))
    assert len(records) == 1  # the vanished entry stays restorable
    label.unlink()  # the other file goes (its entry is kept in turn) and the own one comes back
    store.refresh()
    label.write_bytes(own)
    store.refresh()
    assert store.get_label_info("a", "final")["by"] == "ann"
