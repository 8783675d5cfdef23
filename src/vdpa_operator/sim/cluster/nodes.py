"""One simulated node: its network namespace, its filesystem root with the simulated host (two ConnectX-6 Dx
PFs, 0000:65:00.0/.1, whose virtio netdevs and representors are real veth pairs in the node's namespace), its own
Open vSwitch with br-int plugged into the wire, and its kubelet.

The node's root stands for the node's `/`: a component started with `--host sim --sim-root <root>` sees the
simulated host's sys/ and dev/ there, and every hostPath a DaemonSet mounts is `<root>/<path>` (OVS's socket in
var/run/openvswitch, the CNI's bin dir opt/cni/bin, the kubelet's var/lib/kubelet).
"""

from __future__ import annotations

import subprocess
import sys

from vdpa_operator.cli.common import HOST_ENV, OVSDB_ENV, SIM_NETNS_ENV, SIM_ROOT_ENV
from vdpa_operator.sim.cluster import network, ovs
from vdpa_operator.sim.cluster.layout import WIRE_PORT, Layout, NodeLayout
from vdpa_operator.sim.cluster.processes import spawn
from vdpa_operator.sim.cluster.record import MadePath, Process, Record


def make_root(record: Record, layout: Layout, node: NodeLayout) -> None:
    """The node's root directory and the symlink to it in the state dir."""
    link = layout.node_link(node)
    record.add(MadePath(str(link), "symlink"))
    link.symlink_to(node.root)
    node.root.mkdir(parents=True)


def make_host(node: NodeLayout) -> None:
    """The simulated host at the node's root, its real links in the node's namespace (as `--sim-netns` does)."""
    from vdpa_operator.host.sim import SimKernel

    SimKernel.create(node.root, node_netns=node.netns, real_netdevs=True)
    node.cni_bin_dir.mkdir(parents=True, exist_ok=True)


def make_switch(record: Record, layout: Layout, node: NodeLayout) -> None:
    """The node's OVS, br-int with its own address, and the wire as a br-int port."""
    ovs.start(record, node, layout.logs)
    network.plug(layout, node)
    ovs.vsctl(node, "add-port", "br-int", WIRE_PORT, wait=True)
    network.address_bridge(node)


def container_env(node: NodeLayout) -> dict[str, str]:
    """What every container and CNI plugin of the node is given (cli/common.py's defaults): the node's simulated
    host, its namespace and its OVS, so deploy/'s pods, written for `--host linux`, never reach this machine's
    /sys, devlink or OVS."""
    return {HOST_ENV: "sim", SIM_ROOT_ENV: str(node.root), SIM_NETNS_ENV: node.netns, OVSDB_ENV: node.ovsdb_remote}


def kubelet_argv(layout: Layout, node: NodeLayout, streaming_port: int,
                 webhook_services: dict[str, str] | None = None) -> list[str]:
    env = [arg for k, v in container_env(node).items() for arg in ("--container-env", f"{k}={v}")]
    services = [arg for k, v in (webhook_services or {}).items() for arg in ("--webhook-service", f"{k}={v}")]
    return [sys.executable, "-m", "vdpa_operator.cli", "sim", "kubelet", "--node-name", node.name,
            "--kubeconfig", str(layout.kubeconfig), "--root", str(node.root), "--node-netns", node.netns,
            "--pod-cidr", str(node.pod_cidr), "--cni-bin-dir", str(node.cni_bin_dir),
            "--streaming-port", str(streaming_port), "--kubelet-token-file", str(layout.kubelet_token),
            *env, *services]


def start_kubelet(record: Record, layout: Layout, node: NodeLayout, streaming_port: int,
                  webhook_services: dict[str, str] | None = None) -> Process:
    return spawn(record, "kubelet", node.name, kubelet_argv(layout, node, streaming_port, webhook_services),
                 layout.logs / f"{node.name}-kubelet.log")


def kubelet_available() -> bool:
    """Whether this vdpactl has `sim kubelet` (asked the way `up` will run it)."""
    result = subprocess.run([sys.executable, "-m", "vdpa_operator.cli", "sim", "kubelet", "--help"],
                            capture_output=True, check=False, timeout=60)
    return result.returncode == 0
