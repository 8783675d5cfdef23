"""`make demo` (scripts/demo-seed) as a user runs it, so the demo cannot rot: its exit code, the seed commands'
output (which comes from the cluster: the ping names the IP kubectl shows for vdpa-pod2), and nothing left behind,
also when it is interrupted; as root (the simulated cluster needs network namespaces and OVS). And the pods it
applies are the seed's, byte for byte.

tests/e2e/test_seed.py drives the same cluster directly; this one runs the user-facing script."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from integration.cluster.sim_cluster import Snapshot, leftovers, recorded_processes
from scenario import EXAMPLES, SEED_POD

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "demo-seed"

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="make demo's simulated cluster needs root "
                               "(network namespaces, OVS): run the tests as root")


def _document(path: Path) -> str:
    """A file's text after its leading comment lines: the document as the seed page writes it."""
    lines = path.read_text().splitlines(keepends=True)
    return "".join(lines[next(i for i, line in enumerate(lines) if not line.startswith("#")):])


def test_the_demo_applies_the_seed_pods_byte_for_byte() -> None:
    assert _document(EXAMPLES / "vdpa-pod1.yaml") == SEED_POD
    assert _document(EXAMPLES / "vdpa-pod2.yaml") == SEED_POD.replace("name: vdpa-pod1", "name: vdpa-pod2")


def _run_demo(tmp_path: Path, interrupt_at: str | None = None) -> tuple[int, str]:
    """Run the script as `make demo` does (no terminal); at the first line starting with interrupt_at, SIGINT it
    as a Ctrl-C would. Its exit code and output, once nothing it made is left: the cluster's processes (taken from
    the record as the cluster comes up), its namespaces, new links and files."""
    state = tmp_path / "cluster"
    before = Snapshot.take()
    process = subprocess.Popen([sys.executable, str(SCRIPT), "--state", str(state), "--report",
                                str(tmp_path / "r.json"), "--timeout", "90"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    lines: list[str] = []
    processes: list[tuple[int, int]] = []
    try:
        for line in process.stdout:
            lines.append(line)
            if line.startswith(("  up: kubelet", "$ export KUBECONFIG=")):
                processes += [p for p in recorded_processes(state) if p not in processes]
            if interrupt_at is not None and line.startswith(interrupt_at):
                process.send_signal(signal.SIGINT)
        returncode = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    out = "".join(lines)
    assert processes, out
    assert leftovers(state, before, processes) == [], out
    return returncode, out


@root_only
def test_demo_runs_the_seed_and_leaves_nothing(tmp_path: Path) -> None:
    returncode, out = _run_demo(tmp_path)
    assert returncode == 0, out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["ok"] and report["failed"] is None
    assert {"up", "policy", "pods", "seed", "verify", "iperf3", "down"} <= set(report["phases"])
    assert report["iperf3_bits_per_second"] > 0

    # The seed's commands, verbatim but for -t (no terminal), and what the cluster answered.
    ethtool = out.partition("$ kubectl exec -i vdpa-pod1 -- ethtool -i eth0")[2]
    assert re.search(r"^driver: \S+$", ethtool, re.M) and re.search(r"^bus-info: ", ethtool, re.M), out
    pod2_ip = re.search(r"^vdpa-pod2\s+1/1\s+Running\s+\d+\s+\S+\s+(\S+)\s+(worker-\d)", out, re.M)
    assert pod2_ip, out
    assert f"$ kubectl exec -i vdpa-pod1 -- ping -c 3 {pod2_ip[1]}" in out
    assert re.search(rf"--- {re.escape(pod2_ip[1])} ping statistics ---\n3 packets transmitted, 3 received", out)
    assert re.search(r"\breceiver\b", out.partition("$ kubectl exec vdpa-pod1 -- iperf3 --client")[2])
    assert "demo: every check that can pass in simulation passed" in out


@root_only
@pytest.mark.parametrize("when", ["  up: kubelet", "$ export KUBECONFIG="], ids=["during-up", "after-up"])
def test_demo_interrupted_removes_the_cluster(tmp_path: Path, when: str) -> None:
    returncode, out = _run_demo(tmp_path, interrupt_at=when)
    assert returncode == 1, out
    assert "demo: FAILED in interrupted" in out
