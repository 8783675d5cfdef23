"""`make demo`'s cluster run (scripts/demo-seed) timed phase by phase, as a user runs it, with its iperf3 figure.
As root.

Phases: up (`vdpactl sim up --nodes 2`), policy (apply → NodeStates Succeeded, VFs allocatable), pods (apply →
Running), verify (`vdpactl verify`), down, and the others the script has (offline validate/render, show, the seed's
commands, iperf3). The iperf3 figure is the simulation's (veths and OVS's userspace datapath on this CPU), printed
for comparison between runs, with no goal.

Goal: the whole demo under 60 s on this machine kind.

    sudo .venv/bin/python bench/demo.py
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import verdict

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "demo-seed"
GOAL_TOTAL_S = 60.0


def main() -> None:
    parent = Path(tempfile.mkdtemp(prefix="vdpa-demo-bench-"))
    report = parent / "report.json"
    try:
        start = time.monotonic()
        result = subprocess.run([sys.executable, str(SCRIPT), "--state", str(parent / "cluster"),
                                 "--report", str(report)], stdin=subprocess.DEVNULL, capture_output=True, text=True)
        total = time.monotonic() - start
        if not report.exists():
            raise SystemExit(f"demo-seed exited {result.returncode} without a report:\n{result.stdout}{result.stderr}")
        outcome = json.loads(report.read_text())
    finally:
        shutil.rmtree(parent, ignore_errors=True)
    for name, seconds in outcome["phases"].items():
        print(f"  phase {name}: {seconds:.2f} s")
    bps = outcome["iperf3_bits_per_second"]
    figure = f"{bps / 1e9:.2f} Gbit/s" if bps else "none"
    print(f"iperf3 vdpa-pod1 -> vdpa-pod2 (simulated datapath): {figure}")
    if not outcome["ok"]:
        print(f"the demo FAILED in {outcome['failed']}: its time is not the demo's")
    print(f"whole demo: {total:.2f} s (goal < {GOAL_TOTAL_S:g} s: {verdict(outcome['ok'] and total < GOAL_TOTAL_S)})")


if __name__ == "__main__":
    main()
