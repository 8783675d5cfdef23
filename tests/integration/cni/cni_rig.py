"""A node for the CNI's tests, as root: a private userspace Open vSwitch whose ovs-vswitchd runs in a fresh
network namespace that also stands for the node (the simulated ConnectX-6 Dx host's virtio netdevs and
representors are real veth pairs there, `--sim-netns`), `br-int` with the userspace datapath, the seed policy
applied by the node daemon, pods as named network namespaces, and the CNI run the way a runtime runs it."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from integration.host.linux_netns import run, unique_name
from integration.host.ovs_daemons import OvsDaemons, running_ovs, skip_unless_available
from vdpa_operator.api.models import SriovNetworkNodeStateSpec
from vdpa_operator.api.nics import DEFAULT_SUPPORTED_NICS
from vdpa_operator.cni.answer import answer
from vdpa_operator.cni.ipam import NodeIpam
from vdpa_operator.cni.plugin import CniSettings, VdpaCni
from vdpa_operator.daemon.node import NodeAgent
from vdpa_operator.daemon.store import DaemonStore
from vdpa_operator.host.linux.ovsdb import OvsdbOvs
from vdpa_operator.host.port import Host
from vdpa_operator.host.sim import SimKernel, sim_host

GOLDEN = Path(__file__).parents[2] / "golden"
SEED_SPEC = json.loads((GOLDEN / "seed-node-state-spec.json").read_text())
PARTITION_SPEC = json.loads((GOLDEN / "vdpa-partition-node-state-spec.json").read_text())
POD_CIDR = ipaddress.ip_network("10.56.0.0/16")
POD_RANGE = (ipaddress.ip_address("10.56.1.2"), ipaddress.ip_address("10.56.1.254"))
CNI_PATH = "/usr/lib/cni"
VENV_BIN = Path(sys.executable).parent


@dataclass
class Node:
    root: Path
    kernel: SimKernel
    host: Host
    ovs: OvsDaemons
    plugin: VdpaCni
    pods: list[str] = field(default_factory=list)

    @property
    def netns(self) -> str:
        assert self.ovs.netns is not None
        return self.ovs.netns

    def pod(self) -> str:
        """A fresh pod network namespace (its path); removed with the node."""
        name = unique_name()
        run("ip", "netns", "add", name)
        self.pods.append(name)
        run("ip", "link", "set", "lo", "up", netns=name)
        return f"/var/run/netns/{name}"

    def cni(self, command: str, config: Mapping[str, Any], *, container: str = "", netns: str = "",
            ifname: str = "eth0", pod: tuple[str, str] = ("vdpa", "vdpa-pod1"), uid: str = "",
            device_info: str | None = None, env: Mapping[str, str] | None = None) -> tuple[int, dict[str, Any]]:
        """The plugin in this process, as the server runs it: (exit code, printed JSON or {})."""
        code, out = answer(self.plugin.run, cni_env(command, container, netns, ifname, pod, uid, env),
                           json.dumps(config).encode(), device_info)
        return code, json.loads(out) if out else {}

    def ip(self, netns_path: str, *args: str) -> str:
        """A command's stdout, run in the pod netns at `netns_path`."""
        return run(*args, netns=Path(netns_path).name)

    def ports(self) -> dict[str, dict[str, str]]:
        """Port name → its Interface's external_ids, as ovs-vsctl shows them (the oracle)."""
        names = self.ovs.vsctl("list-ports", "br-int").split()
        return {name: self.ovs.vsctl_map("Interface", name, "external_ids") for name in names}


def cni_env(command: str, container: str, netns: str, ifname: str, pod: tuple[str, str], uid: str = "",
            extra: Mapping[str, str] | None = None) -> dict[str, str]:
    args = f"IgnoreUnknown=true;K8S_POD_NAMESPACE={pod[0]};K8S_POD_NAME={pod[1]}"
    if uid:
        args += f";K8S_POD_UID={uid}"
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": container, "CNI_NETNS": netns, "CNI_IFNAME": ifname,
           "CNI_ARGS": args, "CNI_PATH": CNI_PATH}
    return {k: v for k, v in {**env, **(extra or {})}.items() if v}


def config(name: str = "ovn-kubernetes-a", version: str = "1.0.0", **extra: Any) -> dict[str, Any]:
    """A NAD's CNI config as Multus hands it to a delegate (deviceID at the top level)."""
    return {"cniVersion": version, "name": name, "type": "vdpa-cni", **extra}


@contextmanager
def node(tmp_path: Path, spec: dict[str, Any] = SEED_SPEC, **settings: Any) -> Iterator[Node]:
    skip_unless_available()
    with running_ovs(own_netns=True) as ovs:
        ovs.vsctl("add-br", "br-int", "--", "set", "bridge", "br-int", "datapath_type=netdev")
        assert ovs.netns is not None
        kernel = SimKernel.create(tmp_path / "host", node_netns=ovs.netns, real_netdevs=True)
        client = OvsdbOvs(ovs.remote)
        pods: list[str] = []
        try:
            host = sim_host(kernel, ovs=client)
            agent = NodeAgent(host, DaemonStore(tmp_path / "store"), DEFAULT_SUPPORTED_NICS)
            observed = agent.observe()
            result = agent.apply(agent.plan(SriovNetworkNodeStateSpec.model_validate(spec), observed), observed)
            assert result.ok, result.error_message()
            ipam = NodeIpam(tmp_path / "ipam", POD_CIDR, range_start=POD_RANGE[0], range_end=POD_RANGE[1])
            plugin = VdpaCni(host, CniSettings(**{"bridge": "br-int", "ovn": False, "state_dir": tmp_path / "state",
                                                  **settings}), node_ipam=ipam)
            yield Node(tmp_path, kernel, host, ovs, plugin, pods)
        finally:
            for name in pods:
                subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
            client.close()
