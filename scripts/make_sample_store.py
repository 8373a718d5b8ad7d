"""Generate ``sample_store/``: ten reproducible synthetic CT phantoms with labels and a manifest.

Every byte is determined by :data:`SEED` and the case table: voxels come from a seeded PCG64
generator using integer noise and polynomial geometry only (no transcendental functions, whose
last bits vary between CPUs), the gzip stream is built by hand with mtime 0 and OS byte 255, and
the manifest carries a fixed ``ts``. Running the script twice gives identical files.

Each phantom is an abdomen-like elliptic cylinder in Hounsfield units: air (-1000) outside,
a subcutaneous fat layer (-100), soft tissue (40), ribs and a vertebra with a 700 HU cortical
rim, a gas bubble, and labelled organs: liver (1), spleen (2) and, in most cases, a hypodense
tumour (3) inside the liver. Volumes are 64x64x32 int16 with anisotropic spacing (about
0.8 x 0.8 x 2.5 mm), non-identity affines and several orientations (RAS, LPS, LAS, a coronal
LSA acquisition and a slightly oblique one). ``phantom_02`` is ``phantom_01`` stored in LPS
instead of RAS: the same voxels, flipped, with the matching affine.

Labels (uint8, same grid and affine as the image): ``final`` on 8 images, a second annotator
``alice`` on 4 (each class dilated or eroded by one voxel in-plane), model output ``original``
on 3 (noisy boundaries, a false-positive blob, an under-segmented tumour).

Usage:
    python scripts/make_sample_store.py --out sample_store --force

Example:
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "store"
    >>> sorted(build_sample_store(out))[:2]
    ['phantom_01', 'phantom_02']
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import struct
import sys
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, ornt_transform

__all__ = [
    "CASES",
    "CLASSES",
    "FIXED_TS",
    "SEED",
    "CaseSpec",
    "build_sample_store",
    "deterministic_gzip",
    "main",
]

SEED = 20260101
FIXED_TS = 1767225600  # 2026-01-01T00:00:00Z
SHAPE = (64, 64, 32)
CLASSES = {"liver": 1, "spleen": 2, "tumor": 3}
MANIFEST = "datastore_v2.json"
EXT = ".nii.gz"
# An exact rational rotation (Pythagorean triple 21-220-221, about 5.4 degrees): no trig needed.
_COS, _SIN = 220 / 221, 21 / 221


@dataclass(frozen=True)
class CaseSpec:
    """One phantom volume and what the sample store holds about it.

    Attributes:
        image_id: Store id; the file is ``<image_id>.nii.gz``.
        patient_id: ``info["patient_id"]``.
        axcodes: Stored voxel-axis orientation (nibabel codes, e.g. ``"LPS"``).
        spacing: Voxel size in mm along the stored axes.
        anatomy: Seed of the anatomy and noise; cases sharing it share their voxels in RAS.
        tumor: Whether the phantom has a liver tumour (class 3).
        oblique: Rotate the affine by about 5.4 degrees about the superior axis.
        split: ``"train"``, ``"val"`` or ``""``: adds the legacy ``split:*`` tag.
        labels: Label tags present for this image.
    """

    image_id: str
    patient_id: str
    axcodes: str
    spacing: tuple[float, float, float]
    anatomy: int
    tumor: bool = True
    oblique: bool = False
    split: str = ""
    labels: tuple[str, ...] = ("final",)


CASES: tuple[CaseSpec, ...] = (
    CaseSpec("phantom_01", "P01", "RAS", (0.8, 0.8, 2.5), 1, split="train",
             labels=("final", "alice")),
    CaseSpec("phantom_02", "P01", "LPS", (0.8, 0.8, 2.5), 1, split="train",
             labels=("final", "original")),
    CaseSpec("phantom_03", "P02", "LAS", (0.78, 0.78, 2.5), 3, split="train",
             labels=("final", "alice")),
    CaseSpec("phantom_04", "P02", "LPS", (0.82, 0.82, 3.0), 4, tumor=False, split="train"),
    CaseSpec("phantom_05", "P03", "RAS", (0.8, 0.8, 2.5), 5, oblique=True, split="train",
             labels=("final", "alice")),
    CaseSpec("phantom_06", "P03", "LSA", (0.8, 0.8, 2.5), 6, split="val",
             labels=("final", "original")),
    CaseSpec("phantom_07", "P04", "LPS", (0.76, 0.76, 2.5), 7, split="val",
             labels=("final", "alice")),
    CaseSpec("phantom_08", "P04", "RAS", (0.8, 0.8, 2.0), 8, tumor=False, split="val"),
    CaseSpec("phantom_09", "P05", "LAS", (0.8, 0.8, 2.5), 9, labels=("original",)),
    CaseSpec("phantom_10", "P06", "RAS", (0.9, 0.9, 3.0), 10, labels=()),
)  # fmt: skip


@dataclass(frozen=True)
class _Volume:
    """A phantom on its stored grid."""

    image: np.ndarray
    truth: np.ndarray
    affine: np.ndarray
    in_plane: tuple[int, ...]


def deterministic_gzip(raw: bytes) -> bytes:
    """Gzip ``raw`` with a fixed header (no name, mtime 0, OS 255) at level 9.

    ``gzip.compress`` writes the platform's OS byte, so the same data would differ between
    Linux and macOS; this header does not.

    Args:
        raw: Uncompressed bytes.

    Returns:
        A complete single-member gzip stream.

    Example:
        >>> import gzip
        >>> gzip.decompress(deterministic_gzip(b"abc"))
        b'abc'
    """
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15, 9)
    body = deflate.compress(raw) + deflate.flush()
    header = b"\x1f\x8b\x08\x00" + struct.pack("<I", 0) + b"\x02\xff"
    trailer = struct.pack("<II", zlib.crc32(raw) & 0xFFFFFFFF, len(raw) & 0xFFFFFFFF)
    return header + body + trailer


def _ras_grid(spec: CaseSpec) -> tuple[tuple[int, ...], tuple[float, ...], np.ndarray]:
    """Shape, spacing and stored->RAS axis map of the case on an RAS-ordered grid."""
    ornt = axcodes2ornt(tuple(spec.axcodes))
    shape = [0, 0, 0]
    spacing = [0.0, 0.0, 0.0]
    for stored_axis, (world_axis, _flip) in enumerate(ornt):
        shape[int(world_axis)] = SHAPE[stored_axis]
        spacing[int(world_axis)] = spec.spacing[stored_axis]
    return tuple(shape), tuple(spacing), ornt


def _noise(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Roughly Gaussian integer noise (sd ~ 10 HU): a sum of four uniform integers."""
    return rng.integers(-8, 9, size=(4, *shape), dtype=np.int16).sum(axis=0, dtype=np.int16)


def _phantom(
    rng: np.random.Generator, shape: tuple[int, ...], spacing: tuple[float, ...], tumor: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (HU image, class map, origin offset) on an RAS grid; coordinates in mm."""
    shift = rng.integers(-6, 7, size=3) * 0.5
    x, y, z = (
        ((np.arange(n, dtype=np.float64) - (n - 1) / 2) * s - d).reshape(
            [n if a == axis else 1 for a in range(3)]
        )
        for axis, (n, s, d) in enumerate(zip(shape, spacing, shift, strict=True))
    )
    taper = 1.0 - (z / 150.0) ** 2
    bx, by = (22.0 + rng.integers(-2, 2)) * taper, (15.5 + rng.integers(-1, 2)) * taper
    body = (x / bx) ** 2 + (y / by) ** 2 <= 1.0
    inner = (x / (bx - 2.5)) ** 2 + (y / (by - 2.5)) ** 2 <= 1.0
    shell = (x / (bx - 3.5)) ** 2 + (y / (by - 3.5)) ** 2
    ribs = (shell <= 1.0) & (shell >= 0.86) & (y < by * 0.4) & (np.mod(z + 40.0, 12.0) < 4.0)
    vy = -(by - 7.0)
    vr2 = x**2 + (y - vy) ** 2
    disc = np.mod(z + 40.0, 27.0) < 6.0
    vertebra, marrow = (vr2 <= 3.4**2) & ~disc, (vr2 <= 2.3**2) & ~disc

    # RAS+: +x is the patient's right, where the liver is; the spleen sits on the left.
    liver_c = (bx * 0.4 + rng.integers(-2, 3) * 0.5, by * 0.12, rng.integers(-8, 9) * 1.0)
    liver_r = (bx * 0.42, by * 0.58, 26.0 + rng.integers(-4, 5))
    liver = _ellipsoid(x, y, z, liver_c, liver_r) & inner
    spleen_c = (-bx * 0.56, -by * 0.28, rng.integers(-4, 12) * 1.0)
    spleen = _ellipsoid(x, y, z, spleen_c, (4.5, 3.5, 11.0 + rng.integers(0, 4))) & inner
    lesion = np.zeros_like(liver)
    if tumor:
        radius = 4.0 + rng.integers(0, 3) * 0.5
        centre = (liver_c[0] + rng.integers(-3, 4), liver_c[1], liver_c[2] + rng.integers(-6, 7))
        lesion = _ellipsoid(x, y, z, centre, (radius, radius, radius)) & liver
    gas = _ellipsoid(x, y, z, (-bx * 0.3, by * 0.45, 12.0), (2.5, 2.0, 4.0)) & inner & ~liver

    image = np.full(np.broadcast_shapes(x.shape, y.shape, z.shape), -1000, dtype=np.int16)
    for mask, hu in (
        (body, -100), (inner, 40), (ribs, 700), (vertebra, 700), (marrow, 250),
        (liver & ~vertebra, 60), (spleen & ~vertebra, 48), (lesion, 15), (gas, -900),
    ):  # fmt: skip
        image[mask] = hu
    image = np.clip(image + _noise(rng, image.shape), -1024, 3071).astype(np.int16)

    truth = np.zeros(image.shape, dtype=np.uint8)
    truth[liver & ~vertebra] = CLASSES["liver"]
    truth[spleen & ~vertebra] = CLASSES["spleen"]
    truth[lesion] = CLASSES["tumor"]
    return image, truth, shift


def _ellipsoid(
    x: np.ndarray,
    y: np.ndarray,
    z: np.ndarray,
    centre: tuple[float, float, float],
    radii: tuple[float, float, float],
) -> np.ndarray:
    return np.asarray(
        ((x - centre[0]) / radii[0]) ** 2
        + ((y - centre[1]) / radii[1]) ** 2
        + ((z - centre[2]) / radii[2]) ** 2
        <= 1.0
    )


def _volume(spec: CaseSpec) -> _Volume:
    """Build the case on an RAS grid, then store it in its own orientation."""
    shape, spacing, ornt = _ras_grid(spec)
    rng = np.random.default_rng([SEED, spec.anatomy])
    image, truth, _shift = _phantom(rng, shape, spacing, spec.tumor)
    centre = rng.integers(-40, 41, size=3) * 0.5 + np.array([0.0, -20.0, -120.0])
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = centre - (np.array(shape) - 1) / 2 * np.array(spacing)
    if spec.oblique:
        rot = np.eye(4)
        rot[:2, :2] = [[_COS, -_SIN], [_SIN, _COS]]
        rot[:3, 3] = centre - rot[:3, :3] @ centre
        affine = rot @ affine
    to_stored = ornt_transform(axcodes2ornt(("R", "A", "S")), ornt)
    stored_affine = affine @ inv_ornt_aff(to_stored, shape)
    in_plane = tuple(a for a, s in enumerate(spec.spacing) if s < 1.5)
    return _Volume(
        image=np.ascontiguousarray(apply_orientation(image, to_stored)).astype(np.int16),
        truth=np.ascontiguousarray(apply_orientation(truth, to_stored)).astype(np.uint8),
        affine=stored_affine,
        in_plane=in_plane,
    )


def _shift(mask: np.ndarray, axis: int, step: int) -> np.ndarray:
    out = np.zeros_like(mask)
    src = [slice(None)] * mask.ndim
    dst = [slice(None)] * mask.ndim
    src[axis] = slice(None, -step) if step > 0 else slice(-step, None)
    dst[axis] = slice(step, None) if step > 0 else slice(None, step)
    out[tuple(dst)] = mask[tuple(src)]
    return out


def _dilate(mask: np.ndarray, axes: Sequence[int]) -> np.ndarray:
    out = mask.copy()
    for axis in axes:
        out |= _shift(mask, axis, 1) | _shift(mask, axis, -1)
    return out


def _erode(mask: np.ndarray, axes: Sequence[int]) -> np.ndarray:
    return ~_dilate(~mask, axes)


def _compose(masks: dict[int, np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    """Class map from per-class masks; later (higher) classes win overlaps."""
    out = np.zeros(shape, dtype=np.uint8)
    for idx in sorted(masks):
        out[masks[idx]] = idx
    return out


def _annotator(truth: np.ndarray, axes: Sequence[int], rng: np.random.Generator) -> np.ndarray:
    """A second reader: each class one voxel larger or smaller in-plane."""
    masks = {}
    for idx in np.unique(truth[truth > 0]).tolist():
        mask = truth == idx
        grown = bool(rng.integers(0, 2))
        masks[idx] = _dilate(mask, axes) if grown else _erode(mask, axes)
    return _compose(masks, truth.shape)


def _model(truth: np.ndarray, axes: Sequence[int], rng: np.random.Generator) -> np.ndarray:
    """A model's prediction: ragged boundaries, a false positive, an under-segmented tumour."""
    masks = {}
    for idx in np.unique(truth[truth > 0]).tolist():
        mask = truth == idx
        if idx == CLASSES["tumor"]:
            masks[idx] = _erode(mask, axes)
            continue
        band = _dilate(mask, axes) & ~_erode(mask, axes)
        flip = band & (rng.integers(0, 10, size=mask.shape) < 3)
        masks[idx] = mask ^ flip
    blob = np.zeros(truth.shape, dtype=bool)
    corner = [int(rng.integers(n // 4, n // 2)) for n in truth.shape]
    blob[tuple(slice(c, c + 3) for c in corner)] = True
    masks[CLASSES["spleen"]] = masks.get(CLASSES["spleen"], blob) | (blob & (truth == 0))
    return _compose(masks, truth.shape)


def _nifti_bytes(data: np.ndarray, affine: np.ndarray, *, is_label: bool) -> bytes:
    img = nib.Nifti1Image(data, affine)
    header = img.header
    header.set_data_dtype(data.dtype)
    header.set_xyzt_units("mm", "sec")
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    header["descrip"] = b"medstore phantom label" if is_label else b"medstore phantom CT"
    if is_label:
        header.set_intent("label")
    return deterministic_gzip(img.to_bytes())


def _label_info(label: np.ndarray) -> list[dict[str, object]]:
    present = set(np.unique(label).tolist())
    return [{"name": n, "idx": i} for n, i in CLASSES.items() if i in present]


def _write(path: Path, payload: bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)
    return "SHA256:" + hashlib.sha256(payload).hexdigest()


def build_sample_store(out: Path) -> dict[str, object]:
    """Write the ten phantoms, their labels and ``datastore_v2.json`` into ``out``.

    Args:
        out: Target folder; created if missing. Existing files with the same names are replaced.

    Returns:
        The manifest's ``objects`` mapping (image id -> entry) as written.

    Example:
        >>> import tempfile, pathlib
        >>> objs = build_sample_store(pathlib.Path(tempfile.mkdtemp()))
        >>> len(objs), sorted(objs["phantom_01"]["labels"])
        (10, ['alice', 'final'])
    """
    objects: dict[str, object] = {}
    for spec in CASES:
        vol = _volume(spec)
        name = spec.image_id + EXT
        tags = ["phantom"] + ([f"split:{spec.split}"] if spec.split else [])
        image_info = {
            "ts": FIXED_TS,
            "name": name,
            "checksum": _write(out / name, _nifti_bytes(vol.image, vol.affine, is_label=False)),
            "modality": "CT",
            "patient_id": spec.patient_id,
            "tags": tags,
        }
        rng = np.random.default_rng([SEED, 1000 + spec.anatomy])
        labels: dict[str, object] = {}
        for tag in spec.labels:
            if tag == "alice":
                label = _annotator(vol.truth, vol.in_plane, rng)
                extra: dict[str, object] = {"client_id": "alice"}
            elif tag == "original":
                label = _model(vol.truth, vol.in_plane, rng)
                extra = {"model": "phantom-segresnet"}
            else:
                label = vol.truth
                extra = {"client_id": "reader-1", "approved_by": "reader-1"}
            payload = _nifti_bytes(label, vol.affine, is_label=True)
            info = {
                "ts": FIXED_TS,
                "name": name,
                "label_info": _label_info(label),
                "checksum": _write(out / "labels" / tag / name, payload),
                **extra,
            }
            labels[tag] = {"ext": EXT, "info": info}
        objects[spec.image_id] = {"image": {"ext": EXT, "info": image_info}, "labels": labels}
    for tag in ("final", "original"):
        (out / "labels" / tag).mkdir(parents=True, exist_ok=True)
    manifest = {
        "name": "medstore-sample",
        "description": "Synthetic CT phantoms generated by scripts/make_sample_store.py",
        "images_dir": ".",
        "labels_dir": "labels",
        "objects": objects,
    }
    text = json.dumps(manifest, sort_keys=True, indent=2) + "\n"
    (out / MANIFEST).write_text(text, encoding="utf-8")
    return objects


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).

    Returns:
        Process exit status.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "sample_store")
    parser.add_argument(
        "--force", action="store_true", help="replace an existing store folder at --out"
    )
    args = parser.parse_args(argv)
    out: Path = args.out
    if out.exists() and any(out.iterdir()):
        if not args.force:
            print(f"error: {out} is not empty (use --force to replace it)", file=sys.stderr)
            return 2
        if not (out / MANIFEST).is_file():
            print(f"error: {out} is not a store (no {MANIFEST}); not removing it", file=sys.stderr)
            return 2
        shutil.rmtree(out)
    objects = build_sample_store(out)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {len(objects)} images to {out} ({size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
