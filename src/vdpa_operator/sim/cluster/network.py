"""The cluster's network: a namespace per node, and the wire that joins every node's `br-int` into one flat L2
pod network.

The wire is a Linux bridge in a namespace of its own (`<tag>-wire`), with one veth per node: its peer in the
node's namespace, `podwire`, is a port of that node's br-int. One bridge takes any number of nodes, and nothing
is added to the machine's own namespace: deleting the cluster's namespaces deletes every link `up` made.
The node itself has an address on the pod network (br-int's own port, the first host of its /24 with the
network's prefix) and forwards, as a pod's gateway.

Links are made with ip(8), as an administrator would, so the log of a failure reads like a shell session.
"""

from __future__ import annotations

import os
import subprocess

from vdpa_operator.errors import VdpaOperatorError
from vdpa_operator.sim.cluster.layout import BRIDGE, WIRE_BRIDGE, WIRE_PORT, Layout, NodeLayout
from vdpa_operator.sim.cluster.record import Netns, Record

NETNS_DIR = "/var/run/netns"


class NetworkError(VdpaOperatorError):
    pass


def ip(*args: str, netns: str | None = None, check: bool = True) -> str:
    argv = ["ip", *(["-n", netns] if netns else []), *args]
    result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
    if check and result.returncode != 0:
        raise NetworkError(f"{' '.join(argv)} exited {result.returncode}: {result.stderr.strip()}")
    return result.stdout


def netns_exists(name: str) -> bool:
    return os.path.exists(os.path.join(NETNS_DIR, name))


def make_netns(record: Record, name: str) -> None:
    """A new namespace with its loopback up; recorded first, so an interruption right after leaves no orphan."""
    if netns_exists(name):
        raise NetworkError(f"network namespace {name} exists already: another cluster runs from this state dir, "
                           "or one was left behind; run `vdpactl sim down` with the same --state")
    record.add(Netns(name))
    ip("netns", "add", name)
    ip("link", "set", "lo", "up", netns=name)


def remove_netns(name: str) -> bool:
    """`ip netns del`; False when it was not there."""
    if not netns_exists(name):
        return False
    ip("netns", "del", name)
    return True


def by_inode() -> dict[int, str]:
    """Named namespaces by the inode of their netns (what /proc/<pid>/ns/net links to)."""
    found = {}
    for name in _names():
        try:
            found[os.stat(os.path.join(NETNS_DIR, name)).st_ino] = name
        except OSError:
            continue
    return found


def _names() -> list[str]:
    try:
        return os.listdir(NETNS_DIR)
    except FileNotFoundError:
        return []


def ours(layout: Layout) -> list[str]:
    """Every namespace named with this cluster's tag: the nodes', the wire's, and the pods' the kubelets made."""
    return sorted(name for name in _names() if name.startswith(layout.netns_prefix))


def make_wire(record: Record, layout: Layout) -> None:
    make_netns(record, layout.wire_netns)
    ip("link", "add", WIRE_BRIDGE, "type", "bridge", netns=layout.wire_netns)
    ip("link", "set", WIRE_BRIDGE, "up", netns=layout.wire_netns)


def plug(layout: Layout, node: NodeLayout) -> None:
    """The node's veth to the wire: `podwire` in the node (then a br-int port), its peer on the wire's bridge."""
    ip("link", "add", WIRE_PORT, "type", "veth", "peer", "name", node.name, "netns", layout.wire_netns,
       netns=node.netns)
    ip("link", "set", node.name, "master", WIRE_BRIDGE, "up", netns=layout.wire_netns)
    ip("link", "set", WIRE_PORT, "up", netns=node.netns)


def address_bridge(node: NodeLayout) -> None:
    """br-int's own port gets the node's address on the pod network; the node forwards for its pods."""
    ip("addr", "add", str(node.gateway), "dev", BRIDGE, netns=node.netns)
    ip("link", "set", BRIDGE, "up", netns=node.netns)
    subprocess.run(["ip", "netns", "exec", node.netns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"],
                   capture_output=True, check=False, timeout=30)
