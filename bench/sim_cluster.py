"""`vdpactl sim up`, `status` and `down` of a simulated cluster, timed as a user runs them (subprocesses), with the
time of each of `up`'s stages (from its progress lines). As root.

What it measures depends on what this tree has: without `vdpactl sim kubelet`, `up` makes the API server, the
nodes (namespace, simulated host, OVS, wire), the relay and the controller manager and applies deploy/, but
no Node registers and no pod runs; with it, `up` also waits for the Nodes Ready and deploy/'s pods ready.

Goals (the demo's whole budget is 60 s, `up` is one of its phases): `up --nodes 2` < 15 s; `down` < 10 s.

    sudo .venv/bin/python bench/sim_cluster.py [--nodes N]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import verdict

VDPACTL = [sys.executable, "-m", "vdpa_operator.cli"]
GOAL_UP_S = 15.0
GOAL_DOWN_S = 10.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=2)
    args = parser.parse_args()
    parent = Path(tempfile.mkdtemp(prefix="vsim-bench-"))
    state = parent / "cluster"
    try:
        stages, up_s = _up(state, args.nodes)
        for name, seconds in stages:
            print(f"  up stage {name}: {seconds:.2f} s")
        print(f"sim up --nodes {args.nodes}: {up_s:.2f} s (goal < {GOAL_UP_S:g} s: {verdict(up_s < GOAL_UP_S)})")
        status_s = _timed([*VDPACTL, "sim", "status", "--state", str(state)])
        print(f"sim status: {status_s:.2f} s")
    finally:
        down_s = _timed([*VDPACTL, "sim", "down", "--state", str(state)])
        shutil.rmtree(parent, ignore_errors=True)
    print(f"sim down: {down_s:.2f} s (goal < {GOAL_DOWN_S:g} s: {verdict(down_s < GOAL_DOWN_S)})")


def _up(state: Path, nodes: int) -> tuple[list[tuple[str, float]], float]:
    start = time.monotonic()
    process = subprocess.Popen([*VDPACTL, "sim", "up", "--nodes", str(nodes), "--state", str(state)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    marks: list[tuple[str, float]] = []
    for line in process.stderr:
        if line.startswith("up: "):
            marks.append((line[4:].strip(), time.monotonic()))
    process.wait()
    total = time.monotonic() - start
    if process.returncode != 0:
        raise SystemExit(f"sim up exited {process.returncode}: {marks[-1][0] if marks else ''}")
    stage_marks = [(name, at) for name, at in marks if " " not in name]  # the others are notes within a stage
    ends = [at for _, at in stage_marks[1:]] + [start + total]
    return [(name, end - at) for (name, at), end in zip(stage_marks, ends, strict=True)], total


def _timed(argv: list[str]) -> float:
    start = time.monotonic()
    subprocess.run(argv, capture_output=True, check=True)
    return time.monotonic() - start


if __name__ == "__main__":
    main()
