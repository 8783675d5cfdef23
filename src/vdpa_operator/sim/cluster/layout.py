"""Where everything of one simulated cluster lives and what it is called, derived from its state directory alone,
so `up`, `status` and `down` (and a second cluster beside the first) agree without asking each other.

    <state>/record.json          what `up` made, in order (record.py)
    <state>/kubeconfig           the API server's admin kubeconfig
    <state>/kubelet-token        the API server's kubelet-client token, for the kubelets' exec/log servers (0600)
    <state>/apiserver/           its data dir; <state>/logs/ every process's output
    /dev/shm/<tag>/<node>/       the node's filesystem root: the simulated host's sys/ and dev/, OVS's
                                 var/run/openvswitch/, the CNI's opt/cni/bin/, the kubelet's var/lib/kubelet/
    <state>/<node>               a symlink to it

The node roots are under /dev/shm because unix sockets are made there (kubelet's, the device plugin's, OVS's) and a
socket's path holds at most 107 bytes (under ~/.local/state/… a device plugin's socket would not fit), and because
tmpfs writes the simulated host's sysfs tree many times faster than a disk.

Network namespaces are `<tag>-<node>` and `<tag>-wire`, where the tag is `vsim` and a hash of the state dir's real
path, so two clusters never share one; every netns whose name starts with `<tag>-` belongs to this cluster.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

POD_NETWORK = ipaddress.ip_network("10.128.0.0/16")
"""The flat L2 pod network every node's br-int joins; node i hands out addresses from 10.128.i.0/24."""
NODE_PREFIX = "worker-"
BRIDGE = "br-int"
WIRE_BRIDGE = "podnet"
WIRE_PORT = "podwire"
"""The node's end of its wire, a port of br-int; its peer in the wire netns is named after the node."""
MAX_NODES = 250
RUN_DIR = Path("/dev/shm")
"""Where node roots live: short paths (a device plugin's socket path must fit UNIX_PATH_MAX) on tmpfs, where the
simulated host's sysfs tree is written many times faster than on a disk (1.5 s against 9 s for 128 VFs here)."""


def default_state_dir() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(state) / "vdpa-operator" / "sim-cluster"


@dataclass(frozen=True)
class NodeLayout:
    index: int
    name: str
    root: Path
    netns: str
    pod_cidr: ipaddress.IPv4Network

    @property
    def ovs_dir(self) -> Path:
        """OVS's run and database dir: where `--host linux` components look for db.sock (var/run/openvswitch)."""
        return self.root / "var/run/openvswitch"

    @property
    def ovsdb_remote(self) -> str:
        return f"unix:{self.ovs_dir / 'db.sock'}"

    @property
    def cni_bin_dir(self) -> Path:
        return self.root / "opt/cni/bin"

    @property
    def gateway(self) -> ipaddress.IPv4Interface:
        """The node's address on the pod network (br-int's own port): its /24's first host, with the whole
        network's prefix, so the node reaches every pod directly and routes for its own."""
        return ipaddress.IPv4Interface(f"{self.pod_cidr.network_address + 1}/{POD_NETWORK.prefixlen}")


@dataclass(frozen=True)
class Layout:
    state: Path

    @classmethod
    def at(cls, state: Path) -> Layout:
        return cls(Path(os.path.realpath(state)))

    @property
    def tag(self) -> str:
        return "vsim" + hashlib.sha256(str(self.state).encode()).hexdigest()[:6]

    @property
    def netns_prefix(self) -> str:
        return f"{self.tag}-"

    @property
    def record(self) -> Path:
        return self.state / "record.json"

    @property
    def kubeconfig(self) -> Path:
        return self.state / "kubeconfig"

    @property
    def kubelet_token(self) -> Path:
        return self.state / "kubelet-token"

    @property
    def apiserver_dir(self) -> Path:
        return self.state / "apiserver"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def runtime(self) -> Path:
        return RUN_DIR / self.tag

    @property
    def wire_netns(self) -> str:
        return f"{self.tag}-wire"

    def node(self, index: int) -> NodeLayout:
        name = f"{NODE_PREFIX}{index}"
        cidr = ipaddress.IPv4Network((int(POD_NETWORK.network_address) + (index << 8), 24))
        return NodeLayout(index, name, self.runtime / name, f"{self.tag}-{name}", cidr)

    def node_link(self, node: NodeLayout) -> Path:
        return self.state / node.name

    def nodes(self, count: int) -> list[NodeLayout]:
        return [self.node(i) for i in range(count)]

