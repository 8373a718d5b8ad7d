"""Benchmark of WEBKNOSSOS NML loading: nodes per second and peak memory against the file's size.

Run: ``.venv/bin/python bench/bench_nml.py [--nodes 1000000] [--trees 100]``.
Targets: at least 100,000 nodes/s, peak memory (resident, above the interpreter's baseline) under
20x the file's size. Each measurement runs in a fresh child process so the peak is its own; CPU
time is printed beside wall time because a shared machine's wall time says little.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

CHILD = """
import json, resource, sys, time
from medstore.datastore.interop.nml import load_nml
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start, cpu = time.perf_counter(), time.process_time()
sk = load_nml(sys.argv[1])
seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"nodes": sk.node_count, "seconds": seconds, "cpu": cpu, "peak_kib": peak - base}))
"""


def write_nml(path: Path, nodes: int, trees: int) -> Path:
    """An NML of ``nodes`` nodes in ``trees`` chained trees, written in pieces (little memory)."""
    per_tree = max(1, nodes // trees)
    with path.open("w", encoding="utf-8") as out:
        out.write('<?xml version="1.0" encoding="utf-8"?>\n<things>\n<parameters>')
        out.write('<experiment name="bench"/><scale x="1.0" y="1.0" z="1.0"/></parameters>\n')
        node_id = 1
        for tree in range(1, trees + 1):
            out.write(f'<thing id="{tree}" name="tree {tree}"><nodes>\n')
            first = node_id
            for i in range(per_tree):
                out.write(
                    f'<node id="{node_id}" x="{i % 1000}" y="{tree}" z="{i // 1000}" '
                    'radius="1.0"/>\n'
                )
                node_id += 1
            out.write("</nodes><edges>\n")
            for source in range(first, node_id - 1):
                out.write(f'<edge source="{source}" target="{source + 1}"/>\n')
            out.write("</edges></thing>\n")
        out.write("<branchpoints/><comments/><groups/></things>\n")
    return path


def measure(path: Path) -> dict[str, float]:
    """Load ``path`` in a child process; nodes, seconds and peak KiB."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, check=True
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=1_000_000)
    parser.add_argument("--trees", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        nml = write_nml(Path(folder) / "big.nml", args.nodes, args.trees)
        packed = Path(folder) / "big.zip"
        with zipfile.ZipFile(packed, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.write(nml, "big.nml")
        for path in (nml, packed):
            size = path.stat().st_size
            got = measure(path)
            rate, cpu_rate = got["nodes"] / got["seconds"], got["nodes"] / got["cpu"]
            ratio = got["peak_kib"] * 1024 / nml.stat().st_size
            print(
                f"{path.name}: {size / 1e6:.1f} MB, {int(got['nodes'])} nodes in "
                f"{got['seconds']:.2f} s wall ({rate:,.0f} nodes/s), {got['cpu']:.2f} s CPU "
                f"({cpu_rate:,.0f} nodes/s); peak +{got['peak_kib'] / 1024:.0f} MiB = "
                f"{ratio:.1f}x the NML's size"
            )


if __name__ == "__main__":
    main()
