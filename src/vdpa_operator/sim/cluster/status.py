"""`sim status`: per node, what the record says runs and what the machine and the API server show of it now:
the namespace, OVS's PIDs and br-int, the kubelet's PID and the Node's Ready condition, its allocatable vDPA
resources, its pods."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from vdpa_operator.sim.cluster import network, ovs
from vdpa_operator.sim.cluster.apiclient import AdminClient, ready
from vdpa_operator.sim.cluster.layout import BRIDGE, Layout
from vdpa_operator.sim.cluster.processes import alive
from vdpa_operator.sim.cluster.record import Process, Record

BUILTIN_RESOURCES = ("cpu", "memory", "pods", "ephemeral-storage")


@dataclass
class NodeStatus:
    name: str
    netns: str
    netns_exists: bool
    ovs: dict[str, str] = field(default_factory=dict)
    """ovsdb-server / ovs-vswitchd → "pid N" or "pid N (exited)"."""
    bridge: str = ""
    kubelet: str = "none"
    ready: str = "Unknown"
    allocatable: dict[str, str] = field(default_factory=dict)
    pods: list[str] = field(default_factory=list)


@dataclass
class ClusterStatus:
    state: str
    apiserver: str
    apiserver_process: str
    kubeconfig: str
    nodes: list[NodeStatus]
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _pid(process: Process | None) -> str:
    if process is None:
        return "none"
    return f"pid {process.pid}" + ("" if alive(process) else " (exited)")


def status(layout: Layout, record: Record) -> ClusterStatus:
    apiserver = next(record.processes("apiserver"), None)
    result = ClusterStatus(str(layout.state), str(record.settings.get("apiserver", "")), _pid(apiserver),
                           str(layout.kubeconfig), [])
    api_nodes: dict[str, dict[str, Any]] = {}
    pods: list[dict[str, Any]] = []
    try:
        with AdminClient(layout.kubeconfig) as client:
            api_nodes, pods = client.nodes(), client.pods()
    except Exception as err:  # status reports what it cannot read and goes on
        result.problems.append(f"API server: {err}")
    for node in layout.nodes(record.nodes):
        row = NodeStatus(node.name, node.netns, network.netns_exists(node.netns))
        for role in ("ovsdb-server", "ovs-vswitchd"):
            row.ovs[role] = _pid(next(record.processes(role, node.name), None))
        row.bridge = _bridge(node, result.problems)
        row.kubelet = _pid(next(record.processes("kubelet", node.name), None))
        found = api_nodes.get(node.name)
        if found is not None:
            row.ready = ready(found)
            allocatable = found.get("status", {}).get("allocatable") or {}
            row.allocatable = {k: str(v) for k, v in sorted(allocatable.items()) if k not in BUILTIN_RESOURCES}
        else:
            row.ready = "no Node"
        row.pods = sorted(_pod_line(p) for p in pods if p.get("spec", {}).get("nodeName") == node.name)
        result.nodes.append(row)
    return result


def _pod_line(pod: dict[str, Any]) -> str:
    meta, status = pod["metadata"], pod.get("status") or {}
    ip = status.get("podIP")
    return f"{meta.get('namespace', '')}/{meta['name']} {status.get('phase', 'Pending')}" + (f" {ip}" if ip else "")


def _bridge(node: Any, problems: list[str]) -> str:
    if not (node.ovs_dir / "db.sock").exists():
        return "no OVSDB"
    try:
        ports = ovs.bridge_ports(node)
    except ovs.OvsError as err:
        problems.append(f"{node.name}: {err}")
        return "unknown"
    return f"{BRIDGE} ({len(ports)} ports: {', '.join(ports) or 'none'})"


def render(result: ClusterStatus) -> str:
    lines = [f"cluster {result.state}: API server {result.apiserver or '?'} ({result.apiserver_process}), "
             f"kubeconfig {result.kubeconfig}"]
    for row in result.nodes:
        lines += [
            f"{row.name}:",
            f"  netns       {row.netns}{'' if row.netns_exists else ' (missing)'}",
            f"  ovs         ovsdb-server {row.ovs['ovsdb-server']}, ovs-vswitchd {row.ovs['ovs-vswitchd']}; "
            f"{row.bridge}",
            f"  kubelet     {row.kubelet}; Ready {row.ready}",
            "  allocatable " + (", ".join(f"{k}={v}" for k, v in row.allocatable.items()) or "no vDPA resources"),
            "  pods        " + ("\n              ".join(row.pods) if row.pods else "none"),
        ]
    lines += [f"problem: {problem}" for problem in result.problems]
    return "\n".join(lines)
