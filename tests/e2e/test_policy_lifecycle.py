"""The seed's policy over its life on the simulated cluster, as an administrator changes it with kubectl: from
virtio to vhost (the nodes are reconfigured and a new pod gets a `/dev/vhost-vdpa-N` and no eth0), deleted (the
nodes go back to legacy with no VFs once the pods are gone), and a config daemon killed mid-apply (the kubelet
restarts it and the node converges to what a clean apply gives).

Needs root and Open vSwitch (skipped with the reason otherwise). Each test brings up its own cluster (one node,
two for the killed daemon: the other node's undisturbed apply is the reference) and takes it down, leaving
nothing behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.simcluster import (
    DAEMON_SELECTOR,
    OPERATOR_NS,
    RESOURCE,
    SimCluster,
    seed_pod,
    sim_cluster,
    skip_reason,
)
from integration.cluster.sim_cluster import VDPACTL, leftovers
from integration.kubelet.kubelet_rig import wait_for
from scenario import seed_policy_raw

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")

PFS = {"0000:65:00.0", "0000:65:00.1"}


def _vfs(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The NodeState status's VFs by PCI address."""
    return {vf["pciAddress"]: vf for iface in (state.get("status") or {}).get("interfaces") or []
            for vf in iface.get("Vfs") or []}


def _with_vdpa(vdpa_type: str) -> Callable[[dict[str, Any]], bool]:
    """A NodeState whose spec asks for `vdpa_type` and whose status shows the seed's four VFs of that type."""
    def done(state: dict[str, Any]) -> bool:
        spec = (state.get("spec") or {}).get("interfaces") or []
        vfs = _vfs(state)
        return bool(spec) and all(i.get("vfGroups", [{}])[0].get("vdpaType") == vdpa_type for i in spec) \
            and len(vfs) == 4 and all(vf.get("vdpaType") == vdpa_type for vf in vfs.values())
    return done


def _discover(root: Path) -> dict[str, Any]:
    """The simulated host as the daemon's own discovery reads it, outside the cluster."""
    out = subprocess.run([*VDPACTL, "node", "discover", "--host", "sim", "--sim-root", str(root), "-o", "json"],
                         capture_output=True, text=True, check=False, timeout=60)
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout))


def _vdpa_devices(root: Path) -> dict[str, Path]:
    """The simulated host's vDPA devices (its sysfs) by the VF they sit on."""
    return {path.resolve().parent.name: path for path in (root / "sys/bus/vdpa/devices").iterdir()}


def _vdpa_drivers(root: Path) -> dict[str, str]:
    return {pci: (path / "driver").resolve().name if (path / "driver").exists() else ""
            for pci, path in _vdpa_devices(root).items()}


def _chardevs(root: Path) -> dict[str, str]:
    return {pci: child.name for pci, path in _vdpa_devices(root).items()
            for child in path.iterdir() if child.name.startswith("vhost-vdpa-")}


def _apply_policy(cluster: SimCluster, policy: dict[str, Any]) -> None:
    cluster.kubectl.ok("apply", "-f", "-", stdin=json.dumps(policy))


def _seed_running(cluster: SimCluster) -> None:
    """The seed as the demo leaves it on one node: policy applied (virtio VFs), the seed's pod Running."""
    cluster.apply_seed()
    cluster.kubectl.wait_node_states("virtio VFs", _with_vdpa("virtio"), 1)
    cluster.kubectl.ok("apply", "-f", "-", stdin=seed_pod("vdpa-pod1"))
    cluster.kubectl.wait_running({"vdpa-pod1"})


@pytest.fixture
def one_node(tmp_path: Path) -> Iterator[SimCluster]:
    with sim_cluster(tmp_path / "state", 1) as cluster:
        yield cluster
    assert leftovers(cluster.layout.state, cluster.before, cluster.processes) == []


def test_virtio_to_vhost_reconfigures_the_node_and_a_new_pod_gets_a_vhost_device(one_node: SimCluster) -> None:
    cluster, kubectl = one_node, one_node.kubectl
    start = time.monotonic()
    _seed_running(cluster)
    kubectl.ok("delete", "pod", "-n", "vdpa", "vdpa-pod1")
    kubectl.wait_gone("vdpa-pod1", "pods", "-n", "vdpa")

    policy = seed_policy_raw()
    policy["spec"]["vdpaType"] = "vhost"
    _apply_policy(cluster, policy)
    [state] = kubectl.wait_node_states("vhost VFs", _with_vdpa("vhost"), 1)
    assert {vf["driver"] for vf in _vfs(state).values()} == {"mlx5_core"}
    node = cluster.nodes(1)["worker-0"]
    host = _discover(node.root)
    assert {pci: vf["vdpaType"] for pci, vf in _vfs(host).items()} == {pci: "vhost" for pci in _vfs(state)}
    assert _vdpa_drivers(node.root) == {pci: "vhost_vdpa" for pci in _vfs(state)}
    wait_for(f"{RESOURCE} allocatable again", lambda: kubectl.allocatable()["worker-0"] == 4)

    kubectl.ok("apply", "-f", "-", stdin=seed_pod("vdpa-vhost"))
    kubectl.wait_running({"vdpa-vhost"})
    # The device plugin's DeviceSpec reached the container: the chardev of the VF it allocated, at /dev.
    [(pci,)] = cluster.kubelet_status("worker-0")["pods"]["vdpa/vdpa-vhost"]["devices"]["vdpa-pod"].values()
    chardev = Path(_chardevs(node.root)[pci]).name
    devices = kubectl.ok("exec", "-n", "vdpa", "vdpa-vhost", "--", "sh", "-c", "ls -l /dev/vhost-vdpa-*")
    assert devices.startswith("c") and devices.rstrip().endswith(f"/dev/{chardev}"), devices
    links = kubectl.ok("exec", "-n", "vdpa", "vdpa-vhost", "--", "ip", "-o", "link", "show")
    assert [line.split(":")[1].strip() for line in links.splitlines()] == ["lo"], links
    kubectl.ok("delete", "pod", "-n", "vdpa", "vdpa-vhost")
    print(f"virtio → vhost: {time.monotonic() - start:.1f} s")


def _pfs(state: dict[str, Any]) -> dict[str, tuple[str, int, int]]:
    """PF → (eSwitchMode, numVfs, VFs listed) of a NodeState's (or discovery's) status."""
    return {i["pciAddress"]: (i.get("eSwitchMode", ""), i.get("numVfs", 0), len(i.get("Vfs") or []))
            for i in (state.get("status") or {}).get("interfaces") or []}


def test_deleting_the_policy_returns_the_node_to_legacy_with_no_vfs(one_node: SimCluster) -> None:
    cluster, kubectl = one_node, one_node.kubectl
    start = time.monotonic()
    _seed_running(cluster)

    kubectl.ok("delete", "sriovnetworknodepolicy", "-n", OPERATOR_NS, "vdpa-policy")
    kubectl.ok("delete", "pod", "-n", "vdpa", "vdpa-pod1")
    kubectl.wait_gone("vdpa-pod1", "pods", "-n", "vdpa")
    [state] = kubectl.wait_node_states("an empty spec and no VFs", lambda s: not (s.get("spec") or {}).get(
        "interfaces") and set(_pfs(s)) == PFS and all(n == 0 for _, n, _ in _pfs(s).values()), 1)
    assert _pfs(state) == {pci: ("legacy", 0, 0) for pci in PFS}
    node = cluster.nodes(1)["worker-0"]
    assert _pfs(_discover(node.root)) == {pci: ("legacy", 0, 0) for pci in PFS}
    assert not (node.root / "sys/bus/vdpa/devices").exists() or not _vdpa_devices(node.root)
    wait_for(f"{RESOURCE} allocatable 0", lambda: kubectl.allocatable() == {"worker-0": 0})
    print(f"policy deleted → legacy: {time.monotonic() - start:.1f} s")


@pytest.fixture
def two_nodes(tmp_path: Path) -> Iterator[SimCluster]:
    with sim_cluster(tmp_path / "state", 2) as cluster:
        yield cluster
    assert leftovers(cluster.layout.state, cluster.before, cluster.processes) == []


def _host_view(root: Path) -> dict[str, Any]:
    """What a clean apply is judged by on a simulated host: its status (PFs, VFs, drivers, MACs) and the vDPA
    devices' drivers."""
    return {"status": _discover(root)["status"], "vdpa": _vdpa_drivers(root)}


def test_a_config_daemon_killed_mid_apply_is_restarted_and_converges(two_nodes: SimCluster) -> None:
    """worker-0's daemon is killed once the first PF has VFs; worker-1's applies undisturbed (MACs and names
    are the same on both simulated hosts): worker-0 ends where worker-1 did."""
    cluster, kubectl = two_nodes, two_nodes.kubectl
    start = time.monotonic()
    nodes = cluster.nodes(2)
    victim = nodes["worker-0"]
    [daemon] = [p["metadata"]["name"] for p in kubectl.json("pods", "-n", OPERATOR_NS, "-l", DAEMON_SELECTOR)[
        "items"] if p["spec"]["nodeName"] == victim.name]
    def container() -> dict[str, Any]:
        """The daemon's container as the kubelet records it: its pid and restarts."""
        return dict(cluster.kubelet_status(victim.name)["pods"][f"{OPERATOR_NS}/{daemon}"]["containers"][
            "config-daemon"])

    pid = container()["pid"]
    assert pid, container()
    numvfs = victim.root / "sys/bus/pci/devices/0000:65:00.0/sriov_numvfs"

    cluster.apply_seed()
    deadline = time.monotonic() + 30
    while not (numvfs.exists() and numvfs.read_text().strip() not in ("", "0")):  # polled tightly: apply is quick
        assert time.monotonic() < deadline, "worker-0's daemon never gave its first PF VFs"
        time.sleep(0.005)
    os.kill(pid, signal.SIGKILL)
    at_kill = _host_view(victim.root)

    states = {s["metadata"]["name"]: s for s in kubectl.wait_node_states("virtio VFs", _with_vdpa("virtio"), 2)}
    wait_for("the daemon restarted, in the kubelet's record and the pod's status",
             lambda: container()["restarts"] >= 1 and container()["pid"] not in (None, pid) and next(
                 c for c in kubectl.json("pod", "-n", OPERATOR_NS, daemon)["status"]["containerStatuses"]
                 if c["name"] == "config-daemon")["restartCount"] >= 1)
    assert states["worker-0"]["status"]["interfaces"] == states["worker-1"]["status"]["interfaces"]
    clean = _host_view(nodes["worker-1"].root)
    assert at_kill != clean, "the daemon was killed after its apply had finished: nothing was interrupted"
    assert _host_view(victim.root) == clean
    print(f"daemon killed mid-apply → converged: {time.monotonic() - start:.1f} s")
