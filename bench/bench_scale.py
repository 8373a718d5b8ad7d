"""Scale benchmark (issue 18): a store of N tiny images, every write fsynced, N up to 10^6.

Usage:
    .venv/bin/python bench/bench_scale.py --n 1000 100000 [1000000] [--no-ml] [--profile DIR]

For each N a store is built in ``--workdir`` (default: a temporary folder on ``/work``'s disk):
N images, half of them labelled under ``labels/final``, every file a hard link to one of a few
tiny NIfTI sources (an inode holds at most ~65 000 links on ext4), and the manifest written
directly in MONAI Label's format, as ``refresh`` would write it (``add_images`` is far too slow
to build 10^6 images for a benchmark; its own figure is measured at ``--add-n`` and extrapolated
linearly). Disk space and inodes needed are printed first.

Each N is measured in child processes, so peak RSS is the child's own (``os.wait4``):

- ``measure``: open (refresh), open (``refresh=False``), read-only open, ``datalist()``,
  ``status()``, then ``save_label`` / ``update_image_info`` / ``add_image`` / ``remove_label``
  ``--reps`` times each (p50 and p99; each call durable, fsynced, as in normal use), then
  ``status()`` again (its counts kept by those writes), then a ``VolumeDataset`` over the store
  (index build time);
- ``rss``: a process that opens the store (refresh), lists it (``datalist``, ``status``): its
  peak RSS;
- ``add``: ``add_images`` of ``--add-n`` files into a fresh store.

``--profile DIR`` also writes a cProfile of the ``save_label`` calls at each N (``DIR/save_label_N
.txt``, top functions by cumulative time). MONAI Label 0.8.5 is measured on an identical store
(no manifest: it indexes the folder itself) at each N up to ``--ml-max`` through
``bench/ml_reference.py``, in the cached venv of ``tests/realenv.py`` (``--no-ml`` skips it; a
run past ``--ml-timeout`` seconds is reported as not finished).
"""

from __future__ import annotations

import argparse
import cProfile
import gzip
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

HERE = Path(__file__).resolve()
CHECKOUT = HERE.parents[1]
LINKS_PER_SOURCE = 50_000  # ext4 refuses more than 65 000 links to one inode
WRITE_OPS = ("save_label", "update_image_info", "add_image", "remove_label")
_ENTRY_BYTES = 300  # measured: one image entry of the manifest, half labelled (indent=2)


def tiny_nifti_bytes(value: int = 0) -> bytes:
    """A 2x2x2 uint8 NIfTI-1, gzipped with mtime 0 (``value`` fills it)."""
    import nibabel as nib
    import numpy as np

    img = nib.Nifti1Image(np.full((2, 2, 2), value, np.uint8), np.eye(4))
    return gzip.compress(img.to_bytes(), mtime=0)


def image_id(i: int) -> str:
    return f"img_{i:07d}"


def _linker(folder: Path, data: bytes, prefix: str) -> Callable[[Path], None]:
    """Hard-link each new path to a source file, a new source every LINKS_PER_SOURCE links."""
    state = {"count": 0, "source": Path()}

    def link(dest: Path) -> None:
        if state["count"] % LINKS_PER_SOURCE == 0:
            state["source"] = folder / f"{prefix}_{state['count'] // LINKS_PER_SOURCE:04d}.nii.gz"
            state["source"].write_bytes(data)
        os.link(state["source"], dest)
        state["count"] += 1

    return link


def build_files(root: Path, n: int) -> None:
    """N images in ``root``, every even one labelled in ``labels/final``; no manifest."""
    sources = root.parent / f"{root.name}_sources"
    sources.mkdir(parents=True)
    (root / "labels" / "final").mkdir(parents=True)
    (root / "labels" / "original").mkdir(parents=True)
    link_image = _linker(sources, tiny_nifti_bytes(0), "image")
    link_label = _linker(sources, tiny_nifti_bytes(1), "label")
    for i in range(n):
        link_image(root / f"{image_id(i)}.nii.gz")
        if i % 2 == 0:
            link_label(root / "labels" / "final" / f"{image_id(i)}.nii.gz")


def write_manifest(root: Path, n: int) -> int:
    """The manifest ``refresh`` would write for ``build_files(root, n)``; returns its size."""
    from medstore.datastore.store.manifest import serialize_manifest

    ts = int(time.time())
    objects: dict[str, Any] = {}
    for i in range(n):
        name = f"{image_id(i)}.nii.gz"
        info = {"medstore.image_version": uuid.uuid4().hex, "ts": ts, "name": name}
        labels = {}
        if i % 2 == 0:
            labels["final"] = {"ext": ".nii.gz", "info": {"ts": ts, "name": name}}
        objects[image_id(i)] = {"image": {"ext": ".nii.gz", "info": info}, "labels": labels}
    doc = {
        "name": "new-dataset",
        "description": "New Dataset",
        "images_dir": ".",
        "labels_dir": "labels",
        "objects": objects,
    }
    raw = serialize_manifest(doc)
    (root / "datastore_v2.json").write_bytes(raw)
    os.sync()
    return len(raw)


# ---------------------------------------------------------------------------------- children
def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _profiled(profile: Path | None, name: str, fn: Callable[[], object]) -> float:
    """``fn``'s time; with ``profile``, also its cProfile in ``profile/name.txt``."""
    if profile is None:
        return _timed(fn)
    prof = cProfile.Profile()
    prof.enable()
    took = _timed(fn)
    prof.disable()
    _write_profile(prof, profile / f"{name}.txt")
    return took


def _write_profile(prof: cProfile.Profile, dest: Path) -> None:
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats("cumulative").print_stats(40)
    dest.write_text(text.getvalue())


def _warm(root: Path) -> None:
    """Read the manifest once so every figure is taken with a warm page cache."""
    (root / "datastore_v2.json").read_bytes()


def child_measure(
    root: Path, n: int, reps: int, profile: Path | None, dataset_max: int
) -> dict[str, Any]:
    from medstore.datastore import LocalDatastore

    _warm(root)
    out: dict[str, Any] = {}
    box: list[Any] = []
    out["open_refresh"] = _profiled(
        profile, f"open_refresh_{n}", lambda: box.append(LocalDatastore(root))
    )
    out["open_no_refresh"] = _timed(lambda: LocalDatastore(root, refresh=False))
    out["open_read_only"] = _timed(lambda: LocalDatastore(root, read_only=True))
    store = box[0]
    out["datalist"] = _timed(store.datalist)
    out["status"] = _timed(store.status)
    label = root.parent / "label_src.nii.gz"
    label.write_bytes(tiny_nifti_bytes(1))
    image = root.parent / "image_src.nii.gz"
    image.write_bytes(tiny_nifti_bytes(0))
    odd = [image_id(i) for i in range(1, 2 * reps, 2)]  # unlabelled: each save adds a label
    even = [image_id(i) for i in range(0, 2 * reps, 2)]
    calls: dict[str, list[Callable[[], object]]] = {
        "save_label": [lambda i=i: store.save_label(i, str(label), "final", {}) for i in odd],
        "update_image_info": [
            lambda i=i, k=k: store.update_image_info(i, {"k": k}) for k, i in enumerate(odd)
        ],
        "add_image": [
            lambda k=k: store.add_image(f"new_{k:06d}", str(image), {}) for k in range(reps)
        ],
        "remove_label": [lambda i=i: store.remove_label(i, "final") for i in even],
    }
    for op, fns in calls.items():
        prof = cProfile.Profile() if (profile is not None and op == "save_label") else None
        times = []
        for fn in fns:
            if prof is not None:
                prof.enable()
            times.append(_timed(fn))
            if prof is not None:
                prof.disable()
        out[f"{op}_p50"] = statistics.median(times)
        out[f"{op}_p99"] = _pct(times, 0.99)
        if prof is not None and profile is not None:
            _write_profile(prof, profile / f"{op}_{n}.txt")
    out["status_kept"] = _timed(store.status)  # the counts moved along by every write above
    from medstore.datasets import VolumeDataset

    if n > dataset_max:
        out["manifest_bytes"] = (root / "datastore_v2.json").stat().st_size
        return out
    dataset_box: list[Any] = []
    out["volume_dataset_index"] = _profiled(
        profile, f"volume_dataset_{n}", lambda: dataset_box.append(VolumeDataset(store))
    )
    out["volume_dataset_len"] = len(dataset_box[0])
    out["manifest_bytes"] = (root / "datastore_v2.json").stat().st_size
    return out


def child_rss(root: Path) -> dict[str, Any]:
    from medstore.datastore import LocalDatastore

    store = LocalDatastore(root)
    store.datalist()
    store.status()
    return {}


def child_add(folder: Path, n: int) -> dict[str, Any]:
    from medstore.datastore import LocalDatastore

    sources = folder / "add_sources"
    sources.mkdir(parents=True)
    link = _linker(folder, tiny_nifti_bytes(0), "image")
    paths = []
    for i in range(n):
        path = sources / f"{image_id(i)}.nii.gz"
        link(path)
        paths.append(str(path))
    store = LocalDatastore(folder / "add_store")
    return {"add_images": _timed(lambda: store.add_images(paths)), "add_n": n}


def run_child(args: list[str], *, timeout: float | None = None) -> dict[str, Any]:
    """Run this script as a child; its JSON result plus its own peak RSS (bytes)."""
    proc = subprocess.Popen(
        [sys.executable, str(HERE), *args], stdout=subprocess.PIPE, cwd=CHECKOUT
    )
    start = time.monotonic()
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if timeout is not None and time.monotonic() - start > timeout:
            proc.kill()
            os.wait4(proc.pid, 0)
            return {"timed_out": True}
        time.sleep(0.05)
    assert proc.stdout is not None
    text = proc.stdout.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"child {args[:2]} failed")
    result: dict[str, Any] = json.loads(text.strip().splitlines()[-1])
    result["peak_rss"] = usage.ru_maxrss * 1024  # Linux: KiB
    return result


# ---------------------------------------------------------------------------------- MONAI Label
def ml_python() -> str | None:
    """The MONAI Label 0.8.5 venv's interpreter (built on first use), or ``None``."""
    result = subprocess.run(
        [sys.executable, str(CHECKOUT / "tests" / "realenv.py"), "monailabel"],
        capture_output=True,
        text=True,
        cwd=CHECKOUT,
    )
    if result.returncode != 0:
        print(f"MONAI Label venv unavailable: {result.stderr.strip()[-300:]}", file=sys.stderr)
        return None
    return result.stdout.strip().splitlines()[-1]


def measure_ml(python: str, root: Path, n: int, reps: int, timeout: float) -> dict[str, Any]:
    script = HERE.with_name("ml_reference.py")
    # ml_reference.py names images img_%06d: its own store, built the same way.
    (root / "labels" / "final").mkdir(parents=True)
    (root / "labels" / "original").mkdir(parents=True)
    (root.parent / "ml_sources").mkdir()
    link_image = _linker(root.parent / "ml_sources", tiny_nifti_bytes(0), "image")
    link_label = _linker(root.parent / "ml_sources", tiny_nifti_bytes(1), "label")
    for i in range(n):
        link_image(root / f"img_{i:06d}.nii.gz")
        if i % 2 == 0:
            link_label(root / "labels" / "final" / f"img_{i:06d}.nii.gz")
    proc = subprocess.Popen(
        [python, str(script), "--root", str(root), "--n", str(n), "--reps", str(reps)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=root.parent,
    )
    try:
        stdout, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return {"timed_out": True}
    if proc.returncode != 0:
        return {"failed": True}
    result: dict[str, Any] = json.loads(stdout.decode().strip().splitlines()[-1])
    return result


# ---------------------------------------------------------------------------------- report
ROWS = [
    ("manifest_bytes", "manifest size"),
    ("open_refresh", "open (refresh)"),
    ("open_no_refresh", "open (refresh=False)"),
    ("open_read_only", "open (read-only)"),
    *[(f"{op}_{q}", f"{op} {q}") for op in WRITE_OPS for q in ("p50", "p99")],
    ("datalist", "datalist()"),
    ("status", "status(), first call after the opens"),
    ("status_kept", "status(), after the writes (counts kept)"),
    ("peak_rss", "peak RSS (open + datalist + status)"),
    ("volume_dataset_index", "VolumeDataset index build"),
]
ML_KEYS = {
    "open_refresh": "open_with_manifest",
    "save_label_p50": "save_label_p50",
    "save_label_p99": "save_label_p99",
    "update_image_info_p50": "update_image_info_p50",
    "add_image_p50": "add_image_p50",
    "remove_label_p50": "remove_label_p50",
    "datalist": "datalist",
    "status": "status",
}


def _fmt(key: str, value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if key == "manifest_bytes":
        return f"{value / 1e6:,.1f} MB"
    if key == "peak_rss":
        return f"{value / 2**20:,.0f} MiB"
    return f"{value * 1e3:,.1f} ms"


def print_table(ns: list[int], ours: dict[int, dict[str, Any]], ml: dict[int, dict[str, Any]]):
    head = " | ".join(f"N = {n:,}" for n in ns)
    ml_ns = [n for n in ns if n in ml]
    ml_head = "".join(f" | MONAI Label 0.8.5, N = {n:,}" for n in ml_ns)
    print(f"\n| operation | {head}{ml_head} |")
    print("|---" * (1 + len(ns) + len(ml_ns)) + "|")
    for key, label in ROWS:
        cells = [_fmt(key, ours[n].get(key)) for n in ns]
        for n in ml_ns:
            theirs = ml[n]
            if theirs.get("timed_out") or theirs.get("failed"):
                cells.append("did not finish" if theirs.get("timed_out") else "failed")
            else:
                cells.append(_fmt(key, theirs.get(ML_KEYS[key])) if key in ML_KEYS else "—")
        print(f"| {label} | " + " | ".join(cells) + " |")
    if len(ns) > 1 and ns[0] != ns[-1]:
        first, last = ns[0], ns[-1]
        print(f"\nGrowth p50(N = {last:,}) / p50(N = {first:,}) (target ≤ 2):")
        for op in WRITE_OPS:
            a, b = ours[first].get(f"{op}_p50"), ours[last].get(f"{op}_p50")
            if a and b:
                print(f"- {op}: {b / a:,.1f}x")


def space_needed(ns: list[int], add_n: int) -> None:
    entries = sum(int(1.5 * n) for n in ns) + add_n
    manifest = sum(n * _ENTRY_BYTES for n in ns)
    # directory entries (~40 B each with the htree), the manifest and its replacing copy
    need = entries * 40 + 2 * manifest
    stat = os.statvfs(tempfile.gettempdir())
    free = stat.f_bavail * stat.f_frsize
    sources = entries // LINKS_PER_SOURCE + 2 * len(ns)
    print(
        f"Needs about {need / 1e9:,.2f} GB of disk ({free / 1e9:,.0f} GB free) and "
        f"{sources:,} inodes ({entries:,} directory entries, hard links to those inodes), "
        "one N at a time."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--reps", type=int, default=50, help="calls of each write per N")
    parser.add_argument("--add-n", type=int, default=10_000, help="add_images measured at")
    parser.add_argument("--no-ml", action="store_true", help="skip MONAI Label 0.8.5")
    parser.add_argument("--ml-max", type=int, default=100_000, help="largest N for MONAI Label")
    parser.add_argument("--ml-timeout", type=float, default=900.0)
    parser.add_argument("--ml-reps", type=int, default=5)
    parser.add_argument(
        "--dataset-max", type=int, default=100_000, help="largest N for the VolumeDataset figure"
    )
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--profile", type=Path, default=None, help="folder for cProfile output")
    parser.add_argument("--child", choices=["measure", "rss", "add"], help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        result = {
            "measure": lambda: child_measure(
                args.root, args.n[0], args.reps, args.profile, args.dataset_max
            ),
            "rss": lambda: child_rss(args.root),
            "add": lambda: child_add(args.root, args.n[0]),
        }[args.child]()
        print(json.dumps(result))
        return 0
    ns = sorted(args.n)
    space_needed(ns, args.add_n)
    print(f"Load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    python = None if args.no_ml else ml_python()
    ours: dict[int, dict[str, Any]] = {}
    ml: dict[int, dict[str, Any]] = {}
    for n in ns:
        with tempfile.TemporaryDirectory(prefix="bench_scale_", dir=args.workdir) as tmp:
            root = Path(tmp) / "store"
            start = time.monotonic()
            build_files(root, n)
            size = write_manifest(root, n)
            built = time.monotonic() - start
            print(
                f"N = {n:,}: built in {built:,.0f} s, manifest {size / 1e6:,.1f} MB",
                file=sys.stderr,
                flush=True,
            )
            common = ["--n", str(n), "--root", str(root), "--reps", str(args.reps)]
            common += ["--dataset-max", str(args.dataset_max)]
            if args.profile is not None:
                common += ["--profile", str(args.profile.absolute())]
            rss = run_child(["--child", "rss", *common])
            ours[n] = run_child(["--child", "measure", *common])
            ours[n]["peak_rss"] = rss["peak_rss"]
            print(f"N = {n:,}: {json.dumps(ours[n])}", file=sys.stderr, flush=True)
        if python is not None and n <= args.ml_max:
            with tempfile.TemporaryDirectory(prefix="bench_scale_ml_", dir=args.workdir) as tmp:
                ml[n] = measure_ml(python, Path(tmp) / "store", n, args.ml_reps, args.ml_timeout)
                print(f"MONAI Label N = {n:,}: {json.dumps(ml[n])}", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_scale_add_", dir=args.workdir) as tmp:
        add = run_child(["--child", "add", "--n", str(args.add_n), "--root", tmp])
    print_table(ns, ours, ml)
    print(f"\nLoad average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    rate = add["add_images"] / add["add_n"]
    print(
        f"\nadd_images of {add['add_n']:,} files: {add['add_images']:,.1f} s "
        f"({rate * 1e3:,.2f} ms per image; linear extrapolation to 10^6: "
        f"{rate * 1e6 / 60:,.0f} min)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
