"""The seed page end to end on the simulated cluster, as a user runs it: `vdpactl sim up --nodes 2`, the seed's
policy, NAD and pod applied verbatim with kubectl (plus a second pod, the seed's under another name, and a third
placed on the other node), the seed's verify commands run verbatim through kubectl, `vdpactl verify`, then one
kubelet killed, `sim down`, and nothing left behind.

Needs root and Open vSwitch (skipped with the reason otherwise). Phase times are printed (`-s` shows them); the
figures with goals are bench/demo.py's."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.simcluster import DAEMON_SELECTOR, OPERATOR_NS, RESOURCE, Kubectl, seed_pod, skip_reason
from integration.cluster.sim_cluster import Snapshot, leftovers, namespaces_of, recorded_processes, vdpactl
from integration.kubelet.kubelet_rig import wait_for
from scenario import EXAMPLES, SEED_POD
from vdpa_operator.sim.cluster.layout import Layout
from vdpa_operator.verify.model import SIM_MODEL_ANNOTATION

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Layout, Snapshot, list[tuple[int, int]]]]:
    """`sim up --nodes 2` in a fresh state dir; `sim down` at the end even when the test failed half-way."""
    state = tmp_path / "state"
    before = Snapshot.take()
    processes: list[tuple[int, int]] = []
    try:
        yield Layout.at(state), before, processes
    finally:
        if Layout.at(state).record.exists():
            processes += [p for p in recorded_processes(state) if p not in processes]
            vdpactl("sim", "down", "--state", str(state))


def test_seed_end_to_end(cluster: tuple[Layout, Snapshot, list[tuple[int, int]]], tmp_path: Path) -> None:
    layout, before, processes = cluster
    times: dict[str, float] = {}
    start = time.monotonic()
    up = vdpactl("sim", "up", "--nodes", "2", "--state", str(layout.state))
    assert up.returncode == 0, up.stderr + up.stdout
    assert f"export KUBECONFIG={layout.kubeconfig}" in up.stdout
    times["up"] = time.monotonic() - start
    processes += recorded_processes(layout.state)

    # The user's kubeconfig with the seed's namespace as the context's, so the seed's commands run verbatim.
    user_kubeconfig = tmp_path / "kubeconfig"
    shutil.copy(layout.kubeconfig, user_kubeconfig)
    kubectl = Kubectl(user_kubeconfig)
    kubectl.ok("config", "set-context", "--current", "--namespace=vdpa")

    start = time.monotonic()
    kubectl.ok("apply", "-f", str(EXAMPLES / "vdpa-policy.yaml"), "-f", str(EXAMPLES / "ovn-kubernetes-nad.yaml"))
    kubectl.ok("create", "namespace", "vdpa")
    kubectl.ok("apply", "-f", "-", stdin=SEED_POD)
    kubectl.ok("apply", "-f", "-", stdin=seed_pod("vdpa-pod2"))

    states = kubectl.wait_node_states("the policy's interfaces", lambda s: bool((s.get("spec") or {}).get(
        "interfaces")), 2)
    times["policy → Succeeded"] = time.monotonic() - start
    wait_for(f"{RESOURCE} allocatable on both nodes",
             lambda: (nodes := kubectl.allocatable()) and len(nodes) == 2 and all(nodes.values()))
    pods = kubectl.wait_running({"vdpa-pod1", "vdpa-pod2"})
    times["pods → Running"] = time.monotonic() - start - times["policy → Succeeded"]

    # The injector gave the seed's pod, which asks for nothing, the NAD's resource.
    limits = pods["vdpa-pod1"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits == {RESOURCE: "1"}

    # Pod network namespaces carry the cluster's tag, so `down` finds them even after a kubelet crash.
    processes += [p for p in recorded_processes(layout.state) if p not in processes]
    seen = namespaces_of(processes)
    pod_namespaces = seen - {node.netns for node in layout.nodes(2)}
    assert len(pod_namespaces) >= 3, seen  # the operator's pod and the two seed pods
    assert all(name.startswith(layout.netns_prefix) for name in pod_namespaces), pod_namespaces

    # Every node's config daemon acts on that node's simulated host, never on this machine's /sys.
    nodes = {node.name: node for node in layout.nodes(2)}
    daemons = {p["spec"]["nodeName"]: p["metadata"]["name"]
               for p in kubectl.json("pods", "-n", OPERATOR_NS, "-l", DAEMON_SELECTOR)["items"]}
    assert set(daemons) == set(nodes)
    for name, pod in daemons.items():
        env = dict(line.split("=", 1) for line in kubectl.ok(
            "exec", "-n", OPERATOR_NS, pod, "-c", "config-daemon", "--", "env").splitlines() if "=" in line)
        assert (env["VDPA_HOST"], env["VDPA_SIM_ROOT"], env["VDPA_SIM_NETNS"], env["VDPA_OVSDB"]) == (
            "sim", str(nodes[name].root), nodes[name].netns, nodes[name].ovsdb_remote)
    for node_state in states:
        pfs = {i["pciAddress"]: (i["vendor"], i["deviceID"]) for i in node_state["status"]["interfaces"]}
        assert pfs == {"0000:65:00.0": ("15b3", "101d"), "0000:65:00.1": ("15b3", "101d")}
    assert stat.S_IMODE(layout.kubelet_token.stat().st_mode) == 0o600

    # The seed's verify commands, verbatim.
    ethtool = kubectl.ok("exec", "-it", "vdpa-pod1", "--", "ethtool", "-i", "eth0")
    assert "driver: veth" in ethtool.splitlines()  # the simulation's stand-in for virtio_net
    node1 = pods["vdpa-pod1"]["spec"]["nodeName"]
    model = json.loads(kubectl.json("node", node1)["metadata"]["annotations"][SIM_MODEL_ANNOTATION])
    assert model == {"nic": "ConnectX-6 Dx", "vdpaNetdevDriver": "veth", "datapath": "ovs"}
    ping = kubectl.ok("exec", "vdpa-pod1", "--", "ping", "-c", "3", "-W", "2", pods["vdpa-pod2"]["status"]["podIP"])
    assert " 0% packet loss" in ping

    # A pod on the other node (placed there: the scheduler may well have put both on one) is reached too.
    other = next(name for name in nodes if name != node1)
    kubectl.ok("apply", "-f", "-", stdin=seed_pod("vdpa-pod3", other))
    far = wait_for("vdpa-pod3 Running", lambda: (p := kubectl.json("pod", "vdpa-pod3"))["status"].get("podIP")
                   and p["status"].get("phase") == "Running" and p)
    ping = kubectl.ok("exec", "vdpa-pod1", "--", "ping", "-c", "2", "-W", "2", far["status"]["podIP"])
    assert " 0% packet loss" in ping

    # ovs-appctl in the node's config daemon reaches that node's vswitchd (its /var/run/openvswitch is the node's).
    flows = kubectl.ok("exec", "-n", OPERATOR_NS, daemons[node1], "-c", "config-daemon", "--",
                       "ovs-appctl", "dpctl/dump-flows", "-m")
    assert f"ipv4(src={pods['vdpa-pod1']['status']['podIP']}/" in flows, flows

    start = time.monotonic()
    verify = subprocess.run([str(Path(sys.executable).parent / "vdpactl"), "verify", "-o", "json"],
                            capture_output=True, text=True, check=False, timeout=120,
                            env={**os.environ, "KUBECONFIG": str(layout.kubeconfig)})
    times["verify"] = time.monotonic() - start
    assert verify.returncode == 0, verify.stderr + verify.stdout
    records = json.loads(verify.stdout)
    assert {(r["check"], r["pod"]) for r in records} >= {
        (check, f"vdpa/{pod}") for check in ("driver", "ping", "flows") for pod in ("vdpa-pod1", "vdpa-pod2")}
    assert all(r["status"] in ("pass", "simulated") for r in records), records
    assert all("ConnectX-6 Dx" in r["model"] for r in records if r["status"] == "simulated"), records

    # A kubelet that dies leaves its pods running; `down` still finds them by their namespaces' names.
    entries = json.loads(layout.record.read_text())["entries"]
    [crashed] = [e for e in entries if e["entry"] == "process" and e["role"] == "kubelet" and e["node"] == node1]
    os.kill(crashed["pid"], signal.SIGKILL)
    start = time.monotonic()
    down = vdpactl("sim", "down", "--state", str(layout.state))
    assert down.returncode == 0, down.stderr + down.stdout
    times["down"] = time.monotonic() - start
    assert leftovers(layout.state, before, processes, seen) == []
    print("phase times: " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in times.items()))
