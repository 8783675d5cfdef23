"""`vdpactl cni-server`: the node CNI server the `vdpa-cni` shim forwards to. Thin: read the flags, pick the
Host adapter, find the node's pod subnet, serve until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import ipaddress
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from vdpa_operator.cli.common import (
    OVSDB_ENV,
    configure_logging,
    fail,
    note,
    on_stop_signals,
    open_host,
    sim_host_options,
)
from vdpa_operator.fileio import UNIX_PATH_MAX

if TYPE_CHECKING:
    from vdpa_operator.cni.ipam import NodeIpam

DEFAULT_SOCKET = "/var/run/vdpa-cni/server.sock"
DEFAULT_STATE = "/var/lib/vdpa-cni"
SHIM_NAME = "vdpa-cni"


@click.command("install-cni")
@click.option("--cni-bin-dir", metavar="DIR", default="/opt/cni/bin", show_default=True,
              help="The host's CNI plugin directory (as mounted in this container).")
def install_cni(cni_bin_dir: str) -> None:
    """Install the `vdpa-cni` shim into a CNI bin directory: one standard-library Python file (the node needs
    python3), replaced atomically so a runtime never runs a half-written one. The node DaemonSet's init
    container runs this."""
    from importlib.resources import files

    from vdpa_operator.fileio import write_atomically

    directory = Path(cni_bin_dir)
    if not directory.is_dir():
        fail(f"--cni-bin-dir {directory}: no such directory (mount the host's CNI bin directory there)")
    source = files("vdpa_operator.cni").joinpath("shim.py").read_text(encoding="utf-8")
    target = directory / SHIM_NAME
    try:
        write_atomically(target, source.encode(), mode=0o755)
    except OSError as exc:
        fail(f"--cni-bin-dir {directory}: cannot write {SHIM_NAME}: {exc.strerror}")
    click.echo(f"installed {target}")



@click.command("cni-server")
@click.option("--node-name", default=lambda: os.environ.get("NODE_NAME", ""), show_default="$NODE_NAME",
              help="The node this server runs on.")
@sim_host_options
@click.option("--socket", "socket_path", metavar="PATH", default=DEFAULT_SOCKET, show_default=True,
              help="The unix socket the vdpa-cni shim talks to (its config key serverSocket).")
@click.option("--ovsdb", metavar="REMOTE", envvar=OVSDB_ENV, help="OVSDB remote (default: $VDPA_OVSDB, else "
              "unix:/var/run/openvswitch/db.sock with --host linux; with --host sim, give one).")
@click.option("--bridge", default="br-int", show_default=True, help="The OVS bridge representors join.")
@click.option("--kubeconfig", metavar="FILE", help="Read pod annotations and the node's pod subnet from this "
              "cluster (default: in a pod, its service account; else none).")
@click.option("--pod-cidr", metavar="CIDR", help="The pod subnet for configs with an empty ipam (default: the "
              "node's k8s.ovn.org/node-subnets annotation, else its spec.podCIDR).")
@click.option("--pod-ip-range", metavar="FIRST-LAST", help="Hand out only these addresses of --pod-cidr (nodes "
              "that share one L2 pod subnet each take their own range).")
@click.option("--ovn/--no-ovn", default=None, help="Wait for ovn-controller's ovn-installed on each port "
              "(default: when Open_vSwitch external_ids:ovn-remote is set).")
@click.option("--ovn-timeout", type=float, default=60.0, show_default=True, help="Seconds to wait for OVN.")
@click.option("--state-dir", metavar="DIR", help=f"Address leases (default {DEFAULT_STATE}; inside the sim root "
              "with --host sim).")
def cni_server(node_name: str, host_kind: str, sim_root: str, sim_netns: str | None, socket_path: str,
               ovsdb: str | None, bridge: str, kubeconfig: str | None, pod_cidr: str | None,
               pod_ip_range: str | None, ovn: bool | None, ovn_timeout: float, state_dir: str | None) -> None:
    """Serve vdpa-cni requests on this node: vDPA netdevs into pods, representors into OVS."""
    if not node_name:
        fail("--node-name (or $NODE_NAME) is required")
    subnet = _subnet(pod_cidr, pod_ip_range)
    if len(os.fsencode(socket_path)) > UNIX_PATH_MAX:
        fail(f"--socket {socket_path}: {len(os.fsencode(socket_path))} bytes, over the {UNIX_PATH_MAX} a unix socket "
             "path may have; choose a shorter path")
    if host_kind == "linux":
        from vdpa_operator.host.linux.ovsdb import DEFAULT_REMOTE

        ovsdb = ovsdb or DEFAULT_REMOTE
    state = Path(state_dir or (Path(sim_root) / "var/lib/vdpa-cni" if host_kind == "sim" else DEFAULT_STATE))
    configure_logging()
    host = open_host(host_kind, sim_root, ovsdb, sim_netns)
    if host.ovs is None:
        note("no OVSDB: ADD will answer `try again later` until one is configured (--ovsdb)")
    asyncio.run(_serve(host, node_name, Path(socket_path), bridge, kubeconfig, subnet, ovn, ovn_timeout, state))


def _subnet(cidr: str | None, ip_range: str | None) -> tuple[Any, Any, Any] | None:
    """(subnet, first, last) from the flags; exit 2 naming the flag when unreadable."""
    if cidr is None:
        if ip_range is not None:
            fail("--pod-ip-range needs --pod-cidr")
        return None
    try:
        network = ipaddress.ip_network(cidr, strict=False)
    except ValueError as exc:
        fail(f"--pod-cidr {cidr!r}: {exc}")
    first = last = None
    if ip_range is not None:
        start, sep, end = ip_range.partition("-")
        try:
            first, last = ipaddress.ip_address(start), ipaddress.ip_address(end)
        except ValueError as exc:
            fail(f"--pod-ip-range {ip_range!r}: {exc}; expected FIRST-LAST, e.g. 10.56.1.2-10.56.1.254")
        if not sep or first not in network or last not in network or first > last:
            fail(f"--pod-ip-range {ip_range!r}: expected FIRST-LAST inside --pod-cidr {network}, FIRST <= LAST")
    return network, first, last


async def _serve(host: Any, node_name: str, socket_path: Path, bridge: str, kubeconfig: str | None,
                 subnet: tuple[Any, Any, Any] | None, ovn: bool | None, ovn_timeout: float, state: Path) -> None:
    from vdpa_operator.cni.plugin import CniSettings, VdpaCni
    from vdpa_operator.cni.server import CniServer

    client = _client(kubeconfig)
    if subnet is None and client is not None:
        subnet = await _node_subnet(client, node_name)
    node_ipam = _node_ipam(state, subnet)
    settings = CniSettings(bridge=bridge, ovn=ovn, ovn_timeout=ovn_timeout, state_dir=state)
    pod_annotation = None
    if client is not None:
        async def pod_annotation(namespace: str, pod: str) -> str | None:
            from vdpa_operator.cni.ipam import POD_NETWORKS

            obj = await client.get(_pod_resource(), pod, namespace=namespace)
            return (obj.metadata.annotations or {}).get(POD_NETWORKS)

    server = CniServer(VdpaCni(host, settings, node_ipam=node_ipam), socket_path, pod_annotation=pod_annotation)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    on_stop_signals(loop, stop.set)
    await server.start()
    try:
        await stop.wait()
    finally:
        await server.stop()


def _node_ipam(state: Path, subnet: tuple[Any, Any, Any] | None) -> NodeIpam | None:
    if subnet is None:
        return None
    from vdpa_operator.cni.ipam import NodeIpam

    network, first, last = subnet
    return NodeIpam(state / "ipam", network, range_start=first, range_end=last)


def _client(kubeconfig: str | None) -> Any:
    if kubeconfig is None and not os.environ.get("KUBERNETES_SERVICE_HOST"):
        return None
    from vdpa_operator.kubeclient import ClusterError, connect_client

    try:
        return connect_client(kubeconfig, "default", "vdpa-cni")
    except ClusterError as exc:
        fail(str(exc))


def _pod_resource() -> Any:
    from lightkube.resources.core_v1 import Pod

    return Pod


async def _node_subnet(client: Any, node_name: str) -> tuple[Any, None, None] | None:
    """The node's pod subnet: OVN-K's k8s.ovn.org/node-subnets annotation, else spec.podCIDR."""
    from lightkube.resources.core_v1 import Node

    from vdpa_operator.cni.ipam import NODE_SUBNETS, node_subnet

    try:
        node = await client.get(Node, node_name)
    except Exception as exc:
        note(f"cannot read node {node_name} for its pod subnet: {exc}")
        return None
    annotation = (node.metadata.annotations or {}).get(NODE_SUBNETS)
    if annotation:
        return node_subnet(annotation), None, None
    if node.spec is not None and node.spec.podCIDR:
        return ipaddress.ip_network(node.spec.podCIDR), None, None
    return None
