"""`make demo` (scripts/demo-seed) as a user runs it, so the demo cannot rot: its exit code, the seed commands'
output (which comes from the cluster: the ping names the IP kubectl shows for vdpa-pod2), and nothing left behind,
also when it is interrupted. As root (the simulated cluster needs network namespaces and OVS).

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

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "demo-seed"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="make demo's simulated cluster needs root "
                                "(network namespaces, OVS): run the tests as root")


def _demo(tmp_path: Path) -> list[str]:
    return [sys.executable, str(SCRIPT), "--state", str(tmp_path / "cluster"), "--report", str(tmp_path / "r.json"),
            "--timeout", "90"]


def test_demo_runs_the_seed_and_leaves_nothing(tmp_path: Path) -> None:
    result = subprocess.run(_demo(tmp_path), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
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
    assert not (tmp_path / "cluster" / "record.json").exists()


@pytest.mark.parametrize("when", ["  up: kubelet", "$ export KUBECONFIG="], ids=["during-up", "after-up"])
def test_demo_interrupted_removes_the_cluster(tmp_path: Path, when: str) -> None:
    process = subprocess.Popen(_demo(tmp_path), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    seen = []
    try:
        for line in process.stdout:
            seen.append(line)
            if line.startswith(when):
                process.send_signal(signal.SIGINT)
                break
        seen.extend(process.stdout)
        assert process.wait(timeout=120) == 1, "".join(seen)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    out = "".join(seen)
    assert "demo: FAILED in interrupted" in out
    assert not (tmp_path / "cluster" / "record.json").exists()
    status = subprocess.run([sys.executable, "-m", "vdpa_operator.cli", "sim", "status", "--state",
                             str(tmp_path / "cluster")], capture_output=True, text=True)
    assert status.returncode == 1 and "no simulated cluster" in status.stderr, status.stdout + status.stderr
