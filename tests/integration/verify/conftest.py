"""A small cluster for verify, built from real parts: the embedded API server holding a Node, its NodeState, two
vDPA pods and a config-daemon pod; each pod a network namespace whose eth0 is a veth into a private userspace
OVS bridge (so pings and datapath flows are real); exec through `NetnsPodExec`."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from lightkube import Client
from lightkube.config.kubeconfig import KubeConfig
from lightkube.types import PatchType

from integration.host.linux_netns import ip_json, private_netns, run
from integration.host.ovs_daemons import OvsDaemons, running_ovs, unavailable
from integration.verify.netns_exec import NetnsPodExec, Sandbox
from vdpa_operator.kubeclient import NodeResource, NodeStateResource, PodResource
from vdpa_operator.sim.apiserver import ServerHandle, serve_in_thread
from vdpa_operator.sim.apiserver.inthread import default_store
from vdpa_operator.sim.apiserver.resources import BUILTIN_NAMESPACES
from vdpa_operator.verify.targets import CONFIG_DAEMON_CONTAINER, CONFIG_DAEMON_LABEL, NETWORK_STATUS_ANNOTATION

OPERATOR_NS = "openshift-sriov-network-operator"
NODE = "worker-0"
POD_NS = "vdpa"
RESOURCE = "openshift.io/mlxnics"
DAEMON_POD = "vdpa-config-daemon-x7k2p"


@dataclass(frozen=True)
class PodSpec:
    name: str
    ip: str
    vf: str
    annotated: bool
    """The VF and MAC in the network-status annotation (else: the env and sysfs in the pod say them)."""


PODS = (PodSpec("vdpa-pod1", "10.56.0.5", "0000:65:00.2", True),
        PodSpec("vdpa-pod2", "10.56.0.6", "0000:65:00.3", False))


@dataclass
class VerifyCluster:
    server: ServerHandle
    client: Client
    exec: NetnsPodExec
    ovs: OvsDaemons
    pod_netns: dict[str, str]

    @property
    def kubeconfig(self) -> str:
        return str(self.server.kubeconfig_path)

    def set_node_annotations(self, annotations: dict[str, str | None]) -> None:
        self.client.patch(NodeResource, NODE, {"metadata": {"annotations": annotations}}, patch_type=PatchType.MERGE)

    def set_vf_status(self, vfs: list[dict[str, Any]]) -> None:
        status = {"syncStatus": "Succeeded", "interfaces": [
            {"pciAddress": "0000:65:00.0", "name": "ens1f0", "numVfs": 2, "eSwitchMode": "switchdev", "Vfs": vfs}]}
        self.client.patch(NodeStateResource.Status, NODE, {"status": status}, namespace=OPERATOR_NS,
                          patch_type=PatchType.MERGE)


def vf_status(address: str, vf_id: int, vdpa_type: str = "virtio") -> dict[str, Any]:
    return {"pciAddress": address, "vfID": vf_id, "driver": "mlx5_core", "vdpaType": vdpa_type,
            "representorName": f"ens1f0r{vf_id}"}


@pytest.fixture(scope="module")
def verify_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VerifyCluster]:
    if os.geteuid() != 0:
        pytest.skip("needs root: pods are network namespaces")
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    store = default_store(namespaces=(*BUILTIN_NAMESPACES, OPERATOR_NS, POD_NS))
    server = serve_in_thread(tmp_path_factory.mktemp("verify") / "kubeconfig", store=store)
    client = Client(KubeConfig.from_file(server.kubeconfig_path))
    try:
        with running_ovs() as ovs, private_netns() as ns1, private_netns() as ns2:
            netns = dict(zip((p.name for p in PODS), (ns1, ns2), strict=True))
            macs = {p.name: _plug(ovs, netns[p.name], p, index) for index, p in enumerate(PODS, start=1)}
            _default_unixctl(ovs)
            sandboxes = {(POD_NS, p.name): Sandbox(netns[p.name], {} if p.annotated else {
                "PCIDEVICE_OPENSHIFT_IO_MLXNICS": p.vf}) for p in PODS}
            sandboxes[(OPERATOR_NS, DAEMON_POD)] = Sandbox(ovs.netns or "", {"OVS_RUNDIR": str(ovs.directory)})
            _objects(client, macs)
            yield VerifyCluster(server, client, NetnsPodExec(sandboxes), ovs, netns)
    finally:
        client.close()
        server.stop()


def _plug(ovs: OvsDaemons, netns: str, pod: PodSpec, index: int) -> str:
    """eth0 in the pod's netns, its peer `repN` a port of br-int; returns eth0's MAC."""
    if index == 1:
        ovs.vsctl("add-br", "br-int", "--", "set", "bridge", "br-int", "datapath_type=netdev")
    run("ip", "link", "add", f"rep{index}", "netns", ovs.netns or "", "type", "veth", "peer", "name", "eth0",
        "netns", netns)
    run("ip", "-n", netns, "addr", "add", f"{pod.ip}/24", "dev", "eth0")
    for link in ("lo", "eth0"):
        run("ip", "-n", netns, "link", "set", link, "up")
    ovs.ip("link", "set", f"rep{index}", "up")
    ovs.vsctl("add-port", "br-int", f"rep{index}")
    return str(ip_json("link", "show", "eth0", netns=netns)[0]["address"])


def _default_unixctl(ovs: OvsDaemons) -> None:
    """`ovs-appctl` with no `-t` looks for `$OVS_RUNDIR/ovs-vswitchd.<pid>.ctl`; the private daemons name their
    socket `ovs-vswitchd.ctl`, so give it the default name too (what a node's OVS has)."""
    pid = (ovs.directory / "ovs-vswitchd.pid").read_text().strip()
    link = ovs.directory / f"ovs-vswitchd.{pid}.ctl"
    if not link.exists():
        link.symlink_to(ovs.directory / "ovs-vswitchd.ctl")


def _objects(client: Client, macs: dict[str, str]) -> None:
    client.create(NodeResource(metadata={"name": NODE, "labels": {"kubernetes.io/hostname": NODE}}))
    group = {"resourceName": RESOURCE.split("/")[1], "vfRange": "0-1", "policyName": "vdpa-policy",
             "deviceType": "netdevice", "vdpaType": "virtio"}
    client.create(NodeStateResource(metadata={"name": NODE, "namespace": OPERATOR_NS}, spec={"interfaces": [
        {"pciAddress": "0000:65:00.0", "numVfs": 2, "eSwitchMode": "switchdev", "vfGroups": [group]}]}))
    for pod in PODS:
        device_info = {"type": "vdpa", "version": "1.1.0", "vdpa": {
            "parent-device": f"vdpa:{pod.vf}", "driver": "virtio", "pci-address": pod.vf}}
        annotations = {NETWORK_STATUS_ANNOTATION: json.dumps([{
            "name": "kube-system/ovn-kubernetes-a", "interface": "eth0", "ips": [pod.ip], "mac": macs[pod.name],
            "default": True, "dns": {}, "device-info": device_info}])} if pod.annotated else {}
        _pod(client, POD_NS, pod.name, {"annotations": annotations}, "vdpa-pod",
             {"requests": {RESOURCE: "1"}, "limits": {RESOURCE: "1"}}, pod.ip)
    _pod(client, OPERATOR_NS, DAEMON_POD, {"labels": dict([CONFIG_DAEMON_LABEL])}, CONFIG_DAEMON_CONTAINER, {}, "")


def _pod(client: Client, namespace: str, name: str, metadata: dict[str, Any], container: str,
         resources: dict[str, Any], ip: str) -> None:
    client.create(PodResource(metadata={"name": name, "namespace": namespace, **metadata}, spec={
        "nodeName": NODE, "containers": [{"name": container, "image": "networkstatic/iperf3",
                                          "resources": resources}]}))
    status: dict[str, Any] = {"phase": "Running", **({"podIP": ip, "podIPs": [{"ip": ip}]} if ip else {})}
    client.patch(PodResource.Status, name, {"status": status}, namespace=namespace, patch_type=PatchType.MERGE)


def ethtool_driver(netns: str) -> str:
    """The oracle: what `ethtool -i eth0` itself says in that namespace."""
    for line in run("ethtool", "-i", "eth0", netns=netns).splitlines():
        if line.startswith("driver:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError("no driver line")
