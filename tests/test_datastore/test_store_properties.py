"""Property tests: id derivation and validation, manifest round trips, the store vs a dict model."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from medstore.datastore import (
    ImageNotFoundError,
    InvalidIdError,
    LabelNotFoundError,
    LocalDatastore,
)
from medstore.datastore.errors import ManifestCorruptError
from medstore.datastore.ids import (
    MAX_NAME_BYTES,
    derive_id,
    pattern_suffix,
    validate_id,
    validate_tag,
)
from medstore.datastore.store.manifest import parse_manifest, serialize_manifest
from support import reliability_harness as h

PATTERNS = ("*.nii.gz", "*.nii", "*.gz", "*.seg.nrrd", "*.nrrd", "*.dcm")
ROOT = Path("/data/store")

# ------------------------------------------------------------------ ids
LETTERS: list[Literal["L"]] = ["L"]
words = st.text(
    alphabet=st.characters(categories=LETTERS, include_characters=" -_"), min_size=1, max_size=40
).filter(lambda s: s[0].isalpha())
DEVICE_STEMS = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}


@given(st.text(max_size=300))
def test_validate_id_accepts_only_safe_names(name: str) -> None:
    try:
        assert validate_id(name) == name
    except InvalidIdError:
        return
    assert name and name not in {".", ".."} and not name.startswith(".")
    assert not any(c in name for c in "/\\\x00")
    assert not any(ord(c) < 32 or ord(c) == 127 for c in name)
    assert len(name.encode("utf-8", "surrogatepass")) <= MAX_NAME_BYTES
    joined = os.path.normpath(os.path.join(ROOT, name + ".nii.gz"))
    assert os.path.dirname(joined) == str(ROOT), "an accepted id escaped its folder"


@given(words)
def test_spaces_and_letters_of_any_script_are_allowed(name: str) -> None:
    if name.split(".")[0].strip().upper() in DEVICE_STEMS:
        return
    assert validate_id(name) == name
    assert validate_tag(name) == name


@given(
    st.text(max_size=20), st.sampled_from(["/", "\\", "\x00", "\n", "\x7f"]), st.text(max_size=20)
)
def test_separators_and_controls_are_always_rejected(left: str, bad: str, right: str) -> None:
    for check in (validate_id, validate_tag):
        try:
            check(left + bad + right)
        except InvalidIdError:
            continue
        raise AssertionError(f"{left + bad + right!r} accepted")


@given(st.text(min_size=1, max_size=30))
def test_names_starting_with_a_dot_are_hidden_and_rejected(rest: str) -> None:
    assert derive_id("." + rest + ".nii.gz", PATTERNS) is None
    try:
        validate_id("." + rest)
    except InvalidIdError:
        return
    raise AssertionError("a leading dot was accepted")


@given(words, st.sampled_from(PATTERNS), st.lists(st.sampled_from(PATTERNS), min_size=1))
def test_derive_id_removes_the_longest_matching_suffix_once(
    stem: str, pattern: str, patterns: list[str]
) -> None:
    patterns = [*patterns, pattern]
    filename = stem + pattern_suffix(pattern)
    derived = derive_id(filename, patterns)
    assert derived is not None
    image_id, ext = derived
    assert image_id + ext == filename
    matching = [pattern_suffix(p) for p in patterns if filename.endswith(pattern_suffix(p))]
    assert len(ext) == max(len(s) for s in matching)


def test_derive_id_examples() -> None:
    assert derive_id("case.seg.nrrd", PATTERNS) == ("case", ".seg.nrrd")
    assert derive_id("case.nii.gz", PATTERNS) == ("case", ".nii.gz")
    assert derive_id("a.nii.gz.nii.gz", PATTERNS) == ("a.nii.gz", ".nii.gz")
    assert derive_id("._case.nii.gz", PATTERNS) is None
    assert derive_id(".nii.gz", PATTERNS) is None
    assert derive_id("notes.txt", PATTERNS) is None


# ------------------------------------------------------------------ manifests
json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_value = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
names = words.filter(lambda s: s.split(".")[0].strip().upper() not in DEVICE_STEMS)
entries = st.fixed_dictionaries(
    {
        "ext": st.sampled_from([".nii.gz", ".nii", ""]),
        "info": st.dictionaries(st.text(max_size=10), json_value, max_size=5),
    }
)
manifests = st.fixed_dictionaries(
    {
        "name": st.text(max_size=20),
        "description": st.text(max_size=40),
        "images_dir": st.sampled_from([".", "", "images", "data/img"]),
        "labels_dir": st.sampled_from(["labels", "segs"]),
        "objects": st.dictionaries(
            names,
            st.fixed_dictionaries(
                {"image": entries, "labels": st.dictionaries(names, entries, max_size=3)}
            ),
            max_size=5,
        ),
    }
)


@pytest.mark.slow
@given(manifests)
def test_manifest_round_trip(doc: dict[str, Any]) -> None:
    raw = serialize_manifest(doc)
    assert parse_manifest(raw, source="m") == doc
    assert serialize_manifest(parse_manifest(raw, source="m")) == raw


@given(manifests)
def test_manifest_bytes_match_monai_label_for_ascii(doc: dict[str, Any]) -> None:
    text = json.dumps(doc, indent=2)
    raw_text = json.dumps(doc, ensure_ascii=False)
    if (
        not raw_text.isascii()
        or "\x7f" in raw_text
        or any(isinstance(v, float) for v in _leaves(doc))
    ):
        return  # json escapes non-ASCII and DEL; float spellings differ between encoders
    assert serialize_manifest(doc) == text.encode()


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]


@pytest.mark.slow
@given(manifests, st.data())
def test_every_truncation_is_refused(doc: dict[str, Any], data: st.DataObject) -> None:
    raw = serialize_manifest(doc)
    cut = data.draw(st.integers(0, len(raw) - 1))
    try:
        parse_manifest(raw[:cut], source="cut.json")
    except ManifestCorruptError as err:
        assert "cut.json" in str(err)
        return
    raise AssertionError("a truncated manifest was accepted")


@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_garbage_raises_only_manifest_corrupt(raw: bytes) -> None:
    try:
        doc = parse_manifest(raw, source="g.json")
    except ManifestCorruptError:
        return
    assert isinstance(doc, dict) and isinstance(doc["objects"], dict)


# ------------------------------------------------------------------ the store vs a dict model
IDS = st.sampled_from(["a", "b", "c", "case 1"])
TAGS = st.sampled_from(["final", "t1", "reader é"])
SEEDS = st.integers(0, 4)


class StoreVsModel(RuleBasedStateMachine):
    """Random mutator sequences on two instances of one store, checked against plain dicts."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="medstore-model-"))
        self.root = self.tmp / "store"
        self.store = LocalDatastore(self.root)
        self.other = LocalDatastore(self.root)
        self.images: dict[str, dict[str, Any]] = {}  # id -> {"info": {...}, "labels": {tag: sum}}
        self.kept: dict[tuple[str, str], list[str]] = {}
        self.n = 0

    def _file(self, seed: int, *, image: bool) -> Path:
        self.n += 1
        path = self.tmp / f"f{self.n}.nii.gz"
        path.write_bytes(
            h.seeded_nifti_bytes(seed + (100 if image else 0), dtype="int16" if image else "uint8")
        )
        return path

    def _pick(self, second: bool) -> LocalDatastore:
        return self.other if second else self.store

    @rule(image_id=IDS, seed=SEEDS, second=st.booleans())
    def add_image(self, image_id: str, seed: int, second: bool) -> None:
        self._pick(second).add_image(image_id, self._file(seed, image=True), {"seed": seed})
        old = self.images.get(image_id, {"labels": {}})
        # Re-adding replaces the image's info (as MONAI Label does) but keeps its labels.
        self.images[image_id] = {"labels": old["labels"], "info": {"seed": seed}}

    @rule(image_id=IDS, tag=TAGS, seed=SEEDS, second=st.booleans())
    def save_label(self, image_id: str, tag: str, seed: int, second: bool) -> None:
        src = self._file(seed, image=False)
        if image_id not in self.images:
            try:
                self._pick(second).save_label(image_id, src, tag)
            except ImageNotFoundError:
                return
            raise AssertionError("saved a label on a missing image")
        self._pick(second).save_label(image_id, src, tag, {"seed": seed})
        labels = self.images[image_id]["labels"]
        if tag in labels:
            self.kept.setdefault((image_id, tag), []).append(labels[tag])
        labels[tag] = h.sha256_file(src)

    @rule(image_id=IDS, tag=TAGS, second=st.booleans())
    def remove_label(self, image_id: str, tag: str, second: bool) -> None:
        labels = self.images.get(image_id, {}).get("labels", {})
        if tag not in labels:
            try:
                self._pick(second).remove_label(image_id, tag)
            except LabelNotFoundError:
                return
            raise AssertionError("removed a label that does not exist")
        self._pick(second).remove_label(image_id, tag)
        self.kept.setdefault((image_id, tag), []).append(labels.pop(tag))

    @rule(image_id=IDS, second=st.booleans())
    def remove_image(self, image_id: str, second: bool) -> None:
        if image_id not in self.images:
            try:
                self._pick(second).remove_image(image_id)
            except ImageNotFoundError:
                return
            raise AssertionError("removed an image that does not exist")
        self._pick(second).remove_image(image_id)
        for tag, checksum in self.images.pop(image_id)["labels"].items():
            self.kept.setdefault((image_id, tag), []).append(checksum)

    @precondition(lambda self: self.images)
    @rule(
        data=st.data(),
        key=st.sampled_from(["k", "seed", "tags"]),
        value=json_leaf,
        second=st.booleans(),
    )
    def update_info(self, data: st.DataObject, key: str, value: Any, second: bool) -> None:
        image_id = data.draw(st.sampled_from(sorted(self.images)))
        self._pick(second).update_image_info(image_id, {key: value})
        self.images[image_id]["info"][key] = value

    @rule()
    def reopen(self) -> None:
        self.store = LocalDatastore(self.root)

    @invariant()
    def matches_model(self) -> None:
        fresh = LocalDatastore(self.root, read_only=True)
        for store in (self.store, self.other, fresh):
            assert sorted(store.list_images()) == sorted(self.images)
            for image_id, expected in self.images.items():
                info = store.get_image_info(image_id)
                assert {k: info.get(k, "<missing>") for k in expected["info"]} == expected["info"]
                assert not {"k", "seed", "tags"} - set(expected["info"]) & set(info)
                assert set(store.get_labels_by_image_id(image_id)) == set(expected["labels"])
                for tag, checksum in expected["labels"].items():
                    assert h.sha256_bytes(store.get_label(image_id, tag).getvalue()) == checksum
        for (image_id, tag), checksums in self.kept.items():
            if image_id in self.images:
                history = {
                    r["checksum"] for r in fresh.label_history(image_id, tag, earlier_images=True)
                }
                assert set(checksums) <= history, "a replaced or removed label left no history"

    def teardown(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


StoreVsModel.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_store_against_dict_model = StoreVsModel.TestCase
