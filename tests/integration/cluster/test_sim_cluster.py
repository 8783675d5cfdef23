"""`vdpactl sim up|status|down` on this machine, as root, with real namespaces, links, OVS and processes: a
cluster comes up and answers kubectl, its nodes are wired into one L2 network, and `down` (or an interrupted `up`,
at several stages and by several signals) leaves no namespace, link, process or file behind."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from integration.cluster.sim_cluster import (
    SIGNALS,
    Snapshot,
    alive,
    interrupt_when,
    leftovers,
    namespaces_of,
    recorded_processes,
    start_up,
    vdpactl,
    wait_for,
)
from integration.host.ovs_daemons import unavailable
from vdpa_operator.sim.cluster.bringup import INTERRUPT_AT_ENV
from vdpa_operator.sim.cluster.layout import Layout, NodeLayout
from vdpa_operator.sim.cluster.manifests import kubectl

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: creates network namespaces, links and OVS bridges"),
    pytest.mark.skipif(unavailable() is not None, reason=str(unavailable())),
]


@pytest.fixture
def state() -> Iterator[Path]:
    """A state dir that does not exist yet (so `up` makes it and `down` removes it); `down` again afterwards in
    case a test failed half-way."""
    parent = Path(tempfile.mkdtemp(prefix="vsim-test-"))
    path = parent / "cluster"
    yield path
    vdpactl("sim", "down", "--state", str(path))
    shutil.rmtree(parent, ignore_errors=True)


def _ping(netns: str, address: str) -> None:
    ping = subprocess.run(["ip", "netns", "exec", netns, "ping", "-c", "1", "-W", "2", address],
                          capture_output=True, text=True, check=False)
    assert ping.returncode == 0, f"from {netns} to {address}: {ping.stdout}{ping.stderr}"


def _pod(layout: Layout, node: NodeLayout) -> str:
    """A pod as the CNI makes one on `node`: a namespace (named as the kubelets must name theirs, with the
    cluster's tag, so `down` removes it) whose eth0's peer is a port of br-int; the first address of the node's
    /24 after its gateway, and a default route through the gateway."""
    name, port = f"{node.netns}-pod", f"pod{node.index}"
    address = f"{node.pod_cidr.network_address + 2}/{node.pod_cidr.prefixlen}"
    for argv in (["ip", "netns", "add", name],
                 ["ip", "-n", node.netns, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", name],
                 ["ovs-vsctl", f"--db={node.ovsdb_remote}", "--timeout=20", "add-port", "br-int", port],
                 ["ip", "-n", node.netns, "link", "set", port, "up"],
                 ["ip", "-n", name, "link", "set", "lo", "up"], ["ip", "-n", name, "link", "set", "eth0", "up"],
                 ["ip", "-n", name, "addr", "add", address, "dev", "eth0"],
                 ["ip", "-n", name, "route", "add", "default", "via", str(node.gateway.ip)]):
        subprocess.run(argv, check=True, capture_output=True, env={**os.environ, "OVS_RUNDIR": str(node.ovs_dir)})
    return name


def _kubelet_available() -> bool:
    return vdpactl("sim", "kubelet", "--help").returncode == 0


def test_up_status_down_leaves_nothing(state: Path) -> None:
    before = Snapshot.take()
    up = vdpactl("sim", "up", "--nodes", "2", "--state", str(state), "--timeout", "60")
    assert up.returncode == 0, up.stderr
    layout = Layout.at(state)
    assert up.stdout.strip().splitlines()[-1] == f"export KUBECONFIG={layout.kubeconfig}"
    processes = recorded_processes(state)
    seen = namespaces_of(processes)
    try:
        env = {**os.environ, "KUBECONFIG": str(layout.kubeconfig)}
        namespaces = subprocess.run([kubectl(), "get", "namespaces", "-o", "name"], capture_output=True, text=True,
                                    env=env, check=False)
        assert "namespace/openshift-sriov-network-operator" in namespaces.stdout.split(), namespaces.stderr
        facts = subprocess.run([kubectl(), "get", "configmap", "-n", "kube-system", "vdpa-sim-cluster", "-o", "json"],
                               capture_output=True, text=True, env=env, check=True)
        published = json.loads(json.loads(facts.stdout)["data"]["nodes"])
        assert {name: node["netns"] for name, node in published.items()} == {
            node.name: node.netns for node in layout.nodes(2)}
        if _kubelet_available():
            nodes = subprocess.run([kubectl(), "get", "nodes", "-o", "json"], capture_output=True, text=True, env=env,
                                   check=True)
            items = {item["metadata"]["name"]: item for item in json.loads(nodes.stdout)["items"]}
            assert sorted(items) == ["worker-0", "worker-1"]
            for item in items.values():
                assert item["metadata"]["labels"]["feature.node.kubernetes.io/network-sriov.capable"] == "true"

        shown = vdpactl("sim", "status", "--state", str(state), "-o", "json")
        assert shown.returncode == 0, shown.stderr
        report = json.loads(shown.stdout)
        assert [n["name"] for n in report["nodes"]] == ["worker-0", "worker-1"]
        for node in report["nodes"]:
            assert node["netns_exists"], node
            assert all(pid.startswith("pid ") and "exited" not in pid for pid in node["ovs"].values()), node
            assert node["bridge"].startswith("br-int") and "podwire" in node["bridge"], node
        assert not report["problems"], report["problems"]

        # One L2 pod network: node 0 reaches node 1's address on it through both br-ints and the wire, and a pod
        # on each node (a namespace with a veth on br-int, addressed from its node's /24, its gateway the node's
        # address, as OVN-Kubernetes addresses pods) reaches the other.
        worker0, worker1 = layout.node(0), layout.node(1)
        _ping(worker0.netns, str(worker1.gateway.ip))
        pod0, pod1 = _pod(layout, worker0), _pod(layout, worker1)
        _ping(pod0, str(worker1.pod_cidr.network_address + 2))
        _ping(pod1, str(worker0.pod_cidr.network_address + 2))
    finally:
        down = vdpactl("sim", "down", "--state", str(state))
    assert down.returncode == 0, down.stderr
    assert leftovers(state, before, processes, seen) == []
    again = vdpactl("sim", "down", "--state", str(state))
    assert again.returncode == 0 and "nothing to remove" in again.stdout


@pytest.mark.parametrize("stage", ["node-host", "node-ovs", "controller-manager", "deploy"])
def test_up_interrupted_at_a_stage_removes_what_it_made(state: Path, stage: str) -> None:
    before = Snapshot.take()
    up = vdpactl("sim", "up", "--nodes", "2", "--state", str(state), "--timeout", "60",
                 env={INTERRUPT_AT_ENV: stage})
    assert up.returncode == 128 + 2, up.stderr
    assert "interrupted by SIGINT" in up.stderr
    assert leftovers(state, before, []) == []
    down = vdpactl("sim", "down", "--state", str(state))
    assert down.returncode == 0 and "nothing to remove" in down.stdout, down.stdout + down.stderr


@pytest.mark.parametrize(("role", "signal_name"), [("ovs-vswitchd", "SIGTERM"), ("ovsdb-server", "SIGKILL")])
def test_up_stopped_from_outside_then_down_leaves_nothing(state: Path, role: str, signal_name: str) -> None:
    """A signal from another process: SIGTERM makes `up` clean after itself; after SIGKILL, `down` does, from
    the record."""
    before = Snapshot.take()
    process = start_up(state, "--nodes", "2", "--timeout", "60")
    interrupt_when(process, state, role, SIGNALS[signal_name])
    processes = recorded_processes(state)
    _, err = process.communicate(timeout=120)
    if signal_name == "SIGKILL":
        assert process.returncode == -9
        processes = recorded_processes(state)  # the record as the killed `up` left it
        assert Layout.at(state).record.exists()
    else:
        assert process.returncode == 128 + SIGNALS[signal_name], err
    down = vdpactl("sim", "down", "--state", str(state))
    assert down.returncode == 0, down.stderr
    assert leftovers(state, before, processes) == []


def test_down_refuses_while_up_runs(state: Path) -> None:
    """`down` would remove what `up` is still making: it says so and leaves both alone."""
    before = Snapshot.take()
    process = start_up(state, "--nodes", "1", "--timeout", "60")
    try:
        wait_for(process, state, "ovsdb-server")
        down = vdpactl("sim", "down", "--state", str(state))
        assert down.returncode == 2, down.stdout + down.stderr
        assert "another `vdpactl sim up` or `down` is running" in down.stderr
        processes = recorded_processes(state)
        assert alive(processes) and len(alive(processes)) == len(processes), "down touched nothing"
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=120)
    assert leftovers(state, before, processes) == []


def test_up_refuses_a_second_cluster_on_the_same_state(state: Path) -> None:
    layout = Layout.at(state)
    state.mkdir()
    layout.record.write_text(json.dumps({"version": 1, "nodes": 0, "settings": {}, "entries": []}))
    up = vdpactl("sim", "up", "--state", str(state))
    assert up.returncode == 2
    assert str(layout.record) in up.stderr and "sim down" in up.stderr
