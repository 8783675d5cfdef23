"""`vdpactl node discover|plan|apply` on the simulated host, as a new user runs them: from `vdpactl render`
output, with progress on stderr, the resulting status on stdout, and exit codes 0 / 1 / 2."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import scenario
from vdpa_operator import yamlio
from vdpa_operator.cli import main
from vdpa_operator.host.sim import SimKernel


@pytest.fixture
def sim_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "sim-host"
    monkeypatch.setenv("VDPA_SIM_ROOT", str(root))
    return root


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def rendered(tmp_path: Path) -> str:
    """What `vdpactl render` prints for the seed: NodeStates, a ConfigMap and Nodes in one file."""
    code, out, _ = run("render", "-f", str(scenario.SEED_POLICY_FILE), "--node-states",
                       str(scenario.NODE_STATES_FILE), "--nodes", str(scenario.NODES_FILE))
    assert code == 0
    path = tmp_path / "rendered.yaml"
    path.write_text(out)
    return str(path)


def test_discover_creates_the_sim_host_and_reports_legacy_pfs(sim_root: Path) -> None:
    code, out, err = run("node", "discover", "--host", "sim", "--node-name", "worker-0", "-o", "json")
    assert code == 0, err
    assert "created a simulated host" in err
    state = json.loads(out)
    assert state["kind"] == "SriovNetworkNodeState" and state["metadata"]["name"] == "worker-0"
    assert [(i["name"], i["eSwitchMode"], i["totalvfs"]) for i in state["status"]["interfaces"]] == [
        ("ens1f0", "legacy", 8), ("ens1f1", "legacy", 8)]
    assert (sim_root / "state.json").exists()


def test_the_environment_chooses_the_simulated_host(sim_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A simulated cluster's kubelet runs deploy/'s pods unchanged (no --host flag) with $VDPA_HOST=sim: they must
    work on the node's simulated host, never on this machine's /sys."""
    monkeypatch.setenv("VDPA_HOST", "sim")
    code, out, err = run("node", "discover", "--node-name", "worker-0", "-o", "json")
    assert code == 0, err
    assert (sim_root / "state.json").exists()
    assert [i["pciAddress"] for i in json.loads(out)["status"]["interfaces"]] == ["0000:65:00.0", "0000:65:00.1"]


def test_plan_then_apply_then_nothing_to_do(sim_root: Path, rendered: str) -> None:
    code, out, _ = run("node", "plan", "--host", "sim", "-f", rendered)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "  1. load kernel module virtio_vdpa"
    assert "  9. set eswitch mode switchdev on pci/0000:65:00.0" in lines
    assert run("node", "discover", "--host", "sim", "-o", "json")[1].count('"numVfs"') == 0  # plan changed nothing

    code, out, err = run("node", "apply", "--host", "sim", "-f", rendered)
    assert code == 0, err
    assert "[13/36] create vdpa device vdpa:0000:65:00.2 max_vqp 32" in err  # VF addresses resolved as they appear
    [state] = [d.value for d in yamlio.parse_documents(out, "stdout")]
    assert state["status"]["syncStatus"] == "Succeeded"
    assert {v["vdpaType"] for i in state["status"]["interfaces"] for v in i["Vfs"]} == {"virtio"}

    code, out, _ = run("node", "plan", "--host", "sim", "-f", rendered, "-o", "json")
    assert code == 0 and json.loads(out)["steps"] == []
    code, _, err = run("node", "apply", "--host", "sim", "-f", rendered)
    assert code == 0 and "nothing to do" in err


def test_apply_failure_exits_1_with_the_step_and_errno(sim_root: Path, rendered: str) -> None:
    run("node", "discover", "--host", "sim")
    SimKernel.open(sim_root).faults.inject("vdpa_dev_new", errno=errno.ENOSPC, target="vdpa:0000:65:00.3")
    code, out, err = run("node", "apply", "--host", "sim", "-f", rendered)
    assert code == 1
    assert "failed: create vdpa device vdpa:0000:65:00.3 max_vqp 32 (step 17/36)" in err and "ENOSPC" in err
    [state] = [d.value for d in yamlio.parse_documents(out, "stdout")]
    assert state["status"]["syncStatus"] == "Failed" and "ENOSPC" in state["status"]["lastSyncError"]
    code, _, err = run("node", "apply", "--host", "sim", "-f", rendered)  # the fault was one-shot
    assert code == 0, err


@pytest.mark.parametrize(("content", "message"), [
    ("kind: ConfigMap\napiVersion: v1\nmetadata: {name: x}\n", "expected one SriovNetworkNodeState"),
    ("apiVersion: sriovnetwork.openshift.io/v1\nkind: SriovNetworkNodeState\nmetadata: {name: a}\n"
     "spec: {interfaces: [{numVfs: 2}]}\n", "pciAddress"),
    ("{not yaml", ""),
])
def test_bad_state_file_exits_2_and_changes_nothing(sim_root: Path, tmp_path: Path, content: str,
                                                    message: str) -> None:
    path = tmp_path / "state.yaml"
    path.write_text(content)
    code, _, err = run("node", "apply", "--host", "sim", "-f", str(path))
    assert code == 2 and err.startswith("error: ") and message in err
    assert not sim_root.exists()  # not even the simulated host was created


def test_two_node_states_need_node_name(sim_root: Path, tmp_path: Path, rendered: str) -> None:
    text = Path(rendered).read_text()
    path = tmp_path / "two.yaml"
    path.write_text(text + text.replace("name: worker-0", "name: worker-1"))
    code, _, err = run("node", "plan", "--host", "sim", "-f", str(path))
    assert code == 2 and "found worker-0, worker-1; choose one with --node-name" in err
    assert run("node", "plan", "--host", "sim", "-f", str(path), "--node-name", "worker-1")[0] == 0


def test_spec_the_node_cannot_take_exits_1(sim_root: Path, tmp_path: Path) -> None:
    """A valid spec this node is not ready for (values it cannot act on exit 2: tests/hostile)."""
    path = tmp_path / "state.yaml"
    path.write_text("apiVersion: sriovnetwork.openshift.io/v1\nkind: SriovNetworkNodeState\nmetadata: {name: a}\n"
                    "spec: {interfaces: [{pciAddress: '0000:65:00.0', numVfs: 2, externallyManaged: true}]}\n")
    code, _, err = run("node", "apply", "--host", "sim", "-f", str(path))
    assert code == 1 and "numVfs 2 is more than the 0 VFs present" in err


def test_node_daemon_needs_a_node_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NODE_NAME", raising=False)
    code, _, err = run("node-daemon", "--host", "sim")
    assert code == 2 and "--node-name" in err
