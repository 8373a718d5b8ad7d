"""The fast paths a large store opens through accept exactly what the full checks accept.

A store opens by checking every id, tag and entry of its manifest (issue 18: 10^6 images), so
those checks have a fast path for the common case; here each one is compared with the full,
rule-by-rule check on generated names and entries, so a fast path can never let through what
the full check refuses.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from medstore.datastore import ids
from medstore.datastore.errors import InvalidIdError, ManifestCorruptError
from medstore.datastore.store import manifest_schema

# Names built from the characters the rules care about, plus any text at all.
_TRICKY = st.sampled_from(
    [".", "..", "/", "\\", "\x00", "\x1f", "\x7f", "\x85", " ", "é", "\ud800", "😀", "a", "CON"]
)
_NAMES = st.one_of(
    st.text(max_size=80),
    st.lists(_TRICKY, max_size=60).map("".join),
    st.builds(
        lambda dev, tail: dev + tail,
        st.sampled_from(["CON", "con", " nul ", "COM1", "LPT¹", "CONOUT$", "AUX"]),
        st.sampled_from(["", ".nii.gz", ".x", " ", "1"]),
    ),
    st.text(alphabet="ab😀é", min_size=45, max_size=70),
    st.text(alphabet="😀", min_size=45, max_size=60),  # 4 bytes each: near the 200-byte limit
)


def _full_check(value: object) -> bool:
    try:
        ids._refuse_or_accept(value, "image id")
    except InvalidIdError:
        return False
    return True


@settings(max_examples=600, deadline=None)
@given(_NAMES)
def test_name_fast_path_accepts_only_what_every_rule_accepts(name: str) -> None:
    try:
        accepted = ids.validate_id(name) == name
    except InvalidIdError:
        accepted = False
    assert accepted == _full_check(name)


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("..", "relative path component"),
        (".hidden", "must not start with '.'"),
        ("a/b", "path separators"),
        ("a\x85b", "control characters"),
        ("é" * 101, "longer than 200 bytes"),
        ("nul.nii", "reserved device name"),
        ("", "must not be empty"),
    ],
)
def test_refused_names_are_still_named_by_their_rule(name: str, why: str) -> None:
    with pytest.raises(InvalidIdError, match=why):
        ids.validate_id(name)


_EXTS = st.one_of(
    st.sampled_from([".nii.gz", "", ".seg.nrrd", "../x", "a/b", "a\\b", "\x00", "..", 1, None]),
    st.text(max_size=10),
)
_ENTRIES = st.one_of(
    st.builds(
        lambda ext, info, has_ext, has_info: {
            **({"ext": ext} if has_ext else {}),
            **({"info": info} if has_info else {}),
        },
        _EXTS,
        st.sampled_from([{}, {"ts": 1}, [], "x", None]),
        st.booleans(),
        st.booleans(),
    ),
    st.sampled_from([None, [], "entry", 3]),
)


def _entry_accepted(entry: Any) -> bool:
    try:
        manifest_schema.validate_entry(entry, where="e", source="m")
    except ManifestCorruptError:
        return False
    return True


@settings(max_examples=400, deadline=None)
@given(_ENTRIES)
def test_entry_fast_path_accepts_only_complete_valid_entries(entry: Any) -> None:
    if manifest_schema._plain_entry(entry):
        before = dict(entry)
        assert _entry_accepted(entry)
        assert entry == before  # nothing was left to fill in


@pytest.mark.parametrize(
    ("obj", "why"),
    [
        ({"image": {"ext": "../x", "info": {}}}, "invalid ext"),
        ({"image": {"ext": ".nii", "info": []}}, "info must be an object"),
        ({"image": {"ext": ".nii"}, "labels": {"final": {"ext": "/x", "info": {}}}}, "invalid"),
        ({"image": {"ext": ".nii"}, "labels": {".t": {}}}, "must not start with"),
    ],
)
def test_bad_objects_are_refused_with_the_full_message(obj: dict[str, Any], why: str) -> None:
    with pytest.raises(ManifestCorruptError, match=why):
        manifest_schema.validate_object(obj, image_id="a", source="m")


def test_entries_missing_defaults_still_get_them() -> None:
    obj = manifest_schema.validate_object({"image": {}}, image_id="a", source="m")
    assert obj == {"image": {"ext": "", "info": {}}, "labels": {}}
