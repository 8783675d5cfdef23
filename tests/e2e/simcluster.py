"""What the end-to-end tests share: the skip reason (root, kubectl, OVS), kubectl as a user runs it, a simulated
cluster that is taken down even when the test fails half-way (and the processes it made, so the test can check
nothing is left), and the waits every scenario repeats (NodeStates Succeeded, allocatable, pods Running)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from integration.cluster.sim_cluster import Snapshot, recorded_processes, vdpactl
from integration.kubelet.kubelet_rig import wait_for
from scenario import EXAMPLES, SEED_POD
from vdpa_operator.sim.cluster import ovs
from vdpa_operator.sim.cluster.layout import Layout, NodeLayout

OPERATOR_NS = "openshift-sriov-network-operator"
RESOURCE = "openshift.io/mlxnics"
KUBECTL = Path(sys.executable).with_name("kubectl")
"""The virtualenv's kubectl (`make` installs it), not whatever PATH finds: CI machines have no other."""
DAEMON_SELECTOR = "app.kubernetes.io/name=vdpa-config-daemon"


def skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "the simulated cluster needs root (network namespaces, veth pairs, OVS)"
    if not KUBECTL.exists():
        return f"kubectl is not installed at {KUBECTL} (make installs it into the virtualenv)"
    return ovs.missing()


class Kubectl:
    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig

    def run(self, *args: str, stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(KUBECTL), "--kubeconfig", str(self.kubeconfig), *args], input=stdin,
                              capture_output=True, text=True, check=False, timeout=timeout,
                              stdin=None if stdin is not None else subprocess.DEVNULL)

    def ok(self, *args: str, stdin: str | None = None) -> str:
        result = self.run(*args, stdin=stdin)
        assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}{result.stdout}"
        return result.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok("get", *args, "-o", "json"))

    # --- the waits the scenarios share ---------------------------------------------------------------------

    def node_states(self) -> list[dict[str, Any]]:
        return list(self.json("sriovnetworknodestates", "-n", OPERATOR_NS)["items"])

    def wait_node_states(self, what: str, done: Callable[[dict[str, Any]], bool], count: int,
                         timeout: float = 60) -> list[dict[str, Any]]:
        """Every NodeState (there are `count`) Succeeded and `done`."""
        def probe() -> list[dict[str, Any]] | None:
            states = self.node_states()
            ok = [s for s in states if (s.get("status") or {}).get("syncStatus") == "Succeeded" and done(s)]
            return ok if len(ok) == count == len(states) else None
        return wait_for(f"{count} NodeStates Succeeded with {what}", probe, timeout)

    def allocatable(self) -> dict[str, int]:
        return {n["metadata"]["name"]: int(n["status"].get("allocatable", {}).get(RESOURCE, "0"))
                for n in self.json("nodes")["items"]}

    def wait_running(self, names: set[str], namespace: str = "vdpa", timeout: float = 60) -> dict[str, Any]:
        """These pods Running with an IP and their containers ready."""
        def probe() -> dict[str, Any] | None:
            pods = {p["metadata"]["name"]: p for p in self.json("pods", "-n", namespace)["items"]}
            ready = {name: p for name, p in pods.items() if (p.get("status") or {}).get("phase") == "Running"
                     and p["status"].get("podIP")
                     and all(c.get("ready") for c in p["status"].get("containerStatuses") or [{}])}
            return ready if names <= set(ready) else None
        return wait_for(f"pods {sorted(names)} Running with an IP", probe, timeout)

    def wait_gone(self, what: str, *args: str, timeout: float = 60) -> None:
        wait_for(f"{what} gone", lambda: not self.json(*args)["items"], timeout)


def seed_pod(name: str, node: str | None = None) -> str:
    """The seed's pod under another name, optionally placed on a node."""
    pod = SEED_POD.replace("name: vdpa-pod1", f"name: {name}")
    return pod.replace("spec:\n", f"spec:\n  nodeName: {node}\n") if node else pod


@dataclass
class SimCluster:
    layout: Layout
    before: Snapshot
    kubectl: Kubectl
    processes: list[tuple[int, int]] = field(default_factory=list)

    def nodes(self, count: int) -> dict[str, NodeLayout]:
        return {node.name: node for node in self.layout.nodes(count)}

    def note_processes(self) -> None:
        """Remember the cluster's processes now (pods come and go), for the leftovers check."""
        self.processes += [p for p in recorded_processes(self.layout.state) if p not in self.processes]

    def kubelet_status(self, node: str) -> dict[str, Any]:
        """What the node's kubelet says it runs (its sim-status.json): pods, containers and their pids."""
        path = self.layout.state / node / "var/lib/kubelet/sim-status.json"
        return dict(json.loads(path.read_text()))

    def apply_seed(self) -> None:
        """The seed's policy and NAD, and its pods' namespace."""
        self.kubectl.ok("apply", "-f", str(EXAMPLES / "vdpa-policy.yaml"),
                        "-f", str(EXAMPLES / "ovn-kubernetes-nad.yaml"))
        self.kubectl.ok("create", "namespace", "vdpa")


@contextmanager
def sim_cluster(state: Path, nodes: int) -> Iterator[SimCluster]:
    """`sim up --nodes N` in a fresh state dir; `sim down` at the end even when the test failed half-way."""
    layout = Layout.at(state)
    cluster = SimCluster(layout, Snapshot.take(), Kubectl(layout.kubeconfig))
    try:
        up = vdpactl("sim", "up", "--nodes", str(nodes), "--state", str(state))
        assert up.returncode == 0, up.stderr + up.stdout
        assert f"export KUBECONFIG={layout.kubeconfig}" in up.stdout
        cluster.note_processes()
        yield cluster
    finally:
        if layout.record.exists():
            cluster.note_processes()
            vdpactl("sim", "down", "--state", str(state))
