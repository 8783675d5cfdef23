"""The seed's pod on one simulated node, end to end through the kubelet: a simulated ConnectX-6 Dx host with real
links in the node's network namespace, configured by the node daemon with the seed policy, a private userspace
Open vSwitch with br-int, the device plugin and the CNI server as processes (the seed's device-plugin config),
the seed's NAD verbatim and its pod asking for `openshift.io/mlxnics: 1`."""

from __future__ import annotations

import json
import os
import subprocess
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from integration.host.ovs_daemons import running_ovs, skip_unless_available
from integration.kubelet.kubelet_rig import VDPACTL, Api, kubelet, process, wait_for
from scenario import SEED_POD
from vdpa_operator.api.models import SriovNetworkNodeStateSpec
from vdpa_operator.api.nics import DEFAULT_SUPPORTED_NICS
from vdpa_operator.daemon.node import NodeAgent
from vdpa_operator.daemon.store import DaemonStore
from vdpa_operator.host.linux.ovsdb import OvsdbOvs
from vdpa_operator.host.sim import SimKernel, sim_host
from vdpa_operator.sim.apiserver import ServerHandle
from vdpa_operator.yamlio import load_one

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network and mount namespaces, OVS)")

GOLDEN = Path(__file__).parents[2] / "golden"
SEED_SPEC = json.loads((GOLDEN / "seed-node-state-spec.json").read_text())
SEED_CONFIG = json.loads((GOLDEN / "device-plugin-configmaps.json").read_text())["seed"]["data"]["worker-0"]
SEED_NAD = Path(__file__).parents[3] / "examples/ovn-kubernetes-nad.yaml"
MLXNICS = "openshift.io/mlxnics"


def links(netns: str) -> dict[str, str]:
    """name → MAC of the links in `netns`."""
    out = subprocess.run(["ip", "-n", netns, "-j", "link", "show"], capture_output=True, text=True, check=True)
    return {link["ifname"]: link.get("address", "") for link in json.loads(out.stdout)}


def test_the_seed_pod_gets_its_vf_and_gives_it_back(server: ServerHandle, short_tmp: Path) -> None:
    skip_unless_available()
    kubeconfig = short_tmp / "kubeconfig"
    kubeconfig.write_text(Path(server.kubeconfig_path).read_text())
    api = Api(kubeconfig)
    api.create("/api/v1/namespaces", {"metadata": {"name": "vdpa"}})
    root, host_root = short_tmp / "node", short_tmp / "host"
    with running_ovs(own_netns=True) as ovs, ExitStack() as stack:
        assert ovs.netns is not None
        ovs.vsctl("add-br", "br-int", "--", "set", "bridge", "br-int", "datapath_type=netdev")
        kernel = SimKernel.create(host_root, node_netns=ovs.netns, real_netdevs=True)
        client = OvsdbOvs(ovs.remote)
        agent = NodeAgent(sim_host(kernel, ovs=client), DaemonStore(short_tmp / "store"), DEFAULT_SUPPORTED_NICS)
        observed = agent.observe()
        applied = agent.apply(agent.plan(SriovNetworkNodeStateSpec.model_validate(SEED_SPEC), observed), observed)
        client.close()
        assert applied.ok, applied.error_message()
        (root / "etc/pcidp").mkdir(parents=True)
        (root / "etc/pcidp/worker-0").write_text(SEED_CONFIG)
        (root / "opt/cni/bin").mkdir(parents=True)
        subprocess.run([VDPACTL, "install-cni", "--cni-bin-dir", str(root / "opt/cni/bin")], check=True,
                       capture_output=True)
        log = stack.enter_context(kubelet(kubeconfig, root, ovs.netns))
        sim = ["--node-name", "worker-0", "--host", "sim", "--sim-root", str(host_root)]
        stack.enter_context(process([VDPACTL, "device-plugin", *sim,
                                     "--config-file", str(root / "etc/pcidp/worker-0"),
                                     "--device-plugin-path", str(root / "var/lib/kubelet/device-plugins"),
                                     "--plugins-registry", str(root / "var/lib/kubelet/plugins_registry"),
                                     "--devinfo-dir", str(root / "var/run/k8s.cni.cncf.io/devinfo/dp")],
                                    short_tmp / "dp.log"))
        stack.enter_context(process([VDPACTL, "cni-server", *sim,
                                     "--socket", str(root / "var/run/vdpa-cni/server.sock"),
                                     "--ovsdb", ovs.remote, "--no-ovn", "--pod-cidr", "10.56.0.0/16",
                                     "--pod-ip-range", "10.56.1.2-10.56.1.254",
                                     "--state-dir", str(root / "var/lib/vdpa-cni")], short_tmp / "cni.log"))

        def allocatable() -> str | None:
            node = api.get("/api/v1/nodes/worker-0") or {}
            return (node.get("status") or {}).get("allocatable", {}).get(MLXNICS)

        wait_for("the seed's four VFs allocatable", lambda: allocatable() == "4", log=log)
        assert api.get("/api/v1/nodes/worker-0")["status"]["capacity"][MLXNICS] == "4"
        before = links(ovs.netns)

        pod = load_one(SEED_POD, "the seed's pod")
        pod["spec"]["containers"][0]["resources"] = {"limits": {MLXNICS: "1"}, "requests": {MLXNICS: "1"}}
        api.create("/api/v1/namespaces/vdpa/pods", pod)  # before its network: it waits, saying why

        def waiting() -> str | None:
            status = (api.get("/api/v1/namespaces/vdpa/pods/vdpa-pod1") or {}).get("status") or {}
            return status.get("message") if status.get("phase") == "Pending" else None

        assert "NetworkAttachmentDefinition kube-system/ovn-kubernetes-a" in wait_for("pod waiting", waiting, log=log)
        nad = load_one(SEED_NAD.read_text(), str(SEED_NAD))
        api.create("/apis/k8s.cni.cncf.io/v1/namespaces/kube-system/network-attachment-definitions", nad)

        def running() -> dict[str, Any] | None:
            obj = api.get("/api/v1/namespaces/vdpa/pods/vdpa-pod1") or {}
            status = obj.get("status") or {}
            return obj if status.get("phase") == "Running" and status.get("podIP") else None

        obj = wait_for("vdpa-pod1 Running with an IP", running, log=log)
        assert obj["spec"]["nodeName"] == "worker-0"
        assert obj["status"]["podIP"].startswith("10.56.1.")
        assert {c["type"]: c["status"] for c in obj["status"]["conditions"]} == {
            "PodScheduled": "True", "Initialized": "True", "ContainersReady": "True", "Ready": "True"}
        described = json.loads((root / "var/lib/kubelet/sim-status.json").read_text())["pods"]["vdpa/vdpa-pod1"]
        assert described["cniTypes"] == ["ovn-k8s-cni-overlay"]
        assert (root / "opt/cni/bin/ovn-k8s-cni-overlay").resolve().name == "vdpa-cni"
        [device] = described["devices"]["vdpa-pod"][MLXNICS]
        environ = Path(f"/proc/{described['containers']['vdpa-pod']['pid']}/environ").read_bytes().split(b"\0")
        assert f"PCIDEVICE_OPENSHIFT_IO_MLXNICS={device}".encode() in environ

        pod_netns = Path(described["netns"]).name
        inside = links(pod_netns)
        moved = set(before) - set(links(ovs.netns))
        assert "eth0" in inside and len(moved) == 1, (before, inside)
        address = subprocess.run(["ip", "-n", pod_netns, "-j", "addr", "show", "eth0"], capture_output=True,
                                 text=True, check=True).stdout
        assert obj["status"]["podIP"] in address
        [port] = ovs.vsctl("list-ports", "br-int").split()  # the VF's representor
        external = ovs.vsctl_map("Interface", port, "external_ids")
        # the device the plugin allocated reached the CNI as deviceID, the pod's identity through CNI_ARGS
        assert external["vdpa-cni-device"] == device
        assert (external["iface-id"], external["iface-id-ver"]) == ("vdpa_vdpa-pod1", obj["metadata"]["uid"])
        network_status = json.loads(obj["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"])
        assert network_status[0]["name"] == "kube-system/ovn-kubernetes-a"

        api.delete("/api/v1/namespaces/vdpa/pods/vdpa-pod1")
        wait_for("pod cleaned up", lambda: not json.loads((root / "var/lib/kubelet/sim-status.json").read_text())
                 ["pods"], log=log)
        assert pod_netns not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert not ovs.vsctl("list-ports", "br-int").split()
        assert set(links(ovs.netns)) == set(before)
        checkpoint = json.loads((root / "var/lib/kubelet/sim_kubelet_checkpoint.json").read_text())
        assert checkpoint == {}
        assert api.get("/api/v1/namespaces/vdpa/pods/vdpa-pod1") is None
