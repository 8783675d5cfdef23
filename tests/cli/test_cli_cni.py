"""`vdpactl cni-server` and `vdpactl install-cni`: flags it cannot use exit 2 naming the flag, before anything
is started or written."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from vdpa_operator.cli import main


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--pod-cidr", "10.56.0.0/33"], "--pod-cidr '10.56.0.0/33'"),
        (["--pod-ip-range", "10.56.1.2-10.56.1.9"], "--pod-ip-range needs --pod-cidr"),
        (["--pod-cidr", "10.56.0.0/16", "--pod-ip-range", "10.57.0.1-10.57.0.9"], "inside --pod-cidr 10.56.0.0/16"),
        (["--pod-cidr", "10.56.0.0/16", "--pod-ip-range", "10.56.0.9"], "expected FIRST-LAST"),
        (["--socket", "/tmp/" + "s" * 120], "over the 107 a unix socket path may have"),
    ],
)
def test_unusable_flags_exit_2(tmp_path: Path, flags: list[str], message: str) -> None:
    sim_root = tmp_path / "sim"
    result = CliRunner().invoke(main, ["cni-server", "--node-name", "n", "--host", "sim", "--sim-root",
                                       str(sim_root), *flags])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not sim_root.exists(), "refused before the simulated host was made"


def test_node_name_is_required() -> None:
    result = CliRunner().invoke(main, ["cni-server"], env={"NODE_NAME": ""})
    assert result.exit_code == 2 and "--node-name (or $NODE_NAME) is required" in result.output


def test_install_cni_writes_a_shim_that_runs_alone(tmp_path: Path) -> None:
    """The copy works without the package: run by the host's python3 in isolated mode, it answers VERSION."""
    result = CliRunner().invoke(main, ["install-cni", "--cni-bin-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    shim = tmp_path / "vdpa-cni"
    assert os.access(shim, os.X_OK) and [p.name for p in tmp_path.iterdir()] == ["vdpa-cni"]
    proc = subprocess.run([str(shim)], input=b'{"cniVersion":"0.4.0"}', capture_output=True, check=False,
                          env={"PATH": "/usr/bin:/bin", "CNI_COMMAND": "VERSION"})
    assert proc.returncode == 0, proc.stderr
    assert b'"supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]' in proc.stdout


def test_install_cni_into_a_missing_directory_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["install-cni", "--cni-bin-dir", str(tmp_path / "absent")])
    assert result.exit_code == 2 and "--cni-bin-dir" in result.output and "no such directory" in result.output
