"""`make demo`'s cluster part (scripts/demo-cluster) as a test, so the demo cannot rot: three processes, kubectl,
the seed policy admitted and applied, the vfio-pci one refused."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "demo-cluster"


def test_demo_cluster_runs_the_seed_scenario_end_to_end(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(SCRIPT)], env={**os.environ, "VDPA_DEMO_DIR": str(tmp_path / "d")},
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout + result.stderr
    assert "sriovnetworknodepolicy.sriovnetwork.openshift.io/vdpa-policy created" in out
    assert 'admission webhook "operator-webhook.sriovnetwork.openshift.io" denied the request' in out
    assert "ens1f0 switchdev numVfs=2: 0000:65:00.2 virtio, 0000:65:00.3 virtio" in out
    assert 'sriov_operator_node_states{sync_status="Succeeded"} 1.0' in out
    # Every process it started (it prints "started <name> (pid N)") is gone.
    pids = [int(pid) for pid in re.findall(r"started \S+ \(pid (\d+)\)", out)]
    assert len(pids) == 3
    assert not [pid for pid in pids if Path(f"/proc/{pid}").exists()]
