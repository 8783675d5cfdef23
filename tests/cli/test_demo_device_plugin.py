"""`make demo`'s device-plugin part (scripts/demo-device-plugin) as a test, so the demo cannot rot: kubelet's
side sees the seed's four VFs, allocates one, and the plugin leaves nothing behind on SIGTERM."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from integration.deviceplugin.dp_harness import SEED_CONFIG, SEED_SPEC, configured_host

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "demo-device-plugin"


def test_demo_device_plugin(tmp_path: Path) -> None:
    configured_host(tmp_path, SEED_SPEC)
    config = tmp_path / "config.json"
    config.write_text(SEED_CONFIG)
    result = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "host"), str(config)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert ("openshift.io/mlxnics: 4 devices: 0000:65:00.2 Healthy numa 0, 0000:65:00.3 Healthy numa 0, "
            "0000:65:01.2 Healthy numa 0, 0000:65:01.3 Healthy numa 0") in out
    assert "env PCIDEVICE_OPENSHIFT_IO_MLXNICS=0000:65:00.2" in out
    assert '"parent-device":"vdpa:0000:65:00.2","driver":"virtio"' in out
    assert "device-plugin stopped on SIGTERM (exit 0); left behind: nothing" in out
    pids = [int(p) for p in re.search(r"device-manager \(pid (\d+)\) and device-plugin \(pid (\d+)\)", out).groups()]
    assert not [pid for pid in pids if Path(f"/proc/{pid}").exists()]
