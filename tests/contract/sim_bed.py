"""The simulated bed: a ConnectX-6 Dx host (`host.sim`) under the test's tmp_path.

The switch is PF 0000:65:00.0 (`ens1f0`, 8 VFs at most); the vDPA management device is VF 0000:65:00.4 (VF 2),
which exists once `prepare()` has done upstream's mlx5 sequence (4 VFs, unbind, switchdev, rebind).
Run as root, the bed gives the simulated node a real netns of its own, so virtio netdevs and representors are
real veth ends and pods (`new_netns`) are real namespaces; otherwise everything is the model alone and a pod
netns is just a name.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

from contract.beds import OVS_KERNEL_DATAPATH
from unit.host.sim_setup import to_switchdev
from vdpa_operator.host.port import Host, Ovs
from vdpa_operator.host.sim import SimKernel, sim_host
from vdpa_operator.host.types import DevlinkHandle, VdpaMgmtDev, pci_address, vdpa_name

PF = pci_address("0000:65:00.0")
VF = pci_address("0000:65:00.4")
OTHER_VF = pci_address("0000:65:00.5")


def privileged() -> bool:
    return os.geteuid() == 0


class SimSwitch:
    handle = DevlinkHandle.pci(PF)
    pf_netdev = "ens1f0"
    max_vfs = 8

    def __init__(self, host: Host) -> None:
        self.host = host

    def set_numvfs(self, count: int) -> None:
        self.host.pci.set_numvfs(PF, count, timeout=10.0)

    def numvfs(self) -> int:
        capability = self.host.pci.sriov(PF)
        assert capability is not None
        return capability.numvfs


class SimVdpaBed:
    mgmtdev = VdpaMgmtDev("pci", VF)
    other_mgmtdev = VdpaMgmtDev("pci", OTHER_VF)
    device_name = vdpa_name(VF)

    def __init__(self, host: Host) -> None:
        self.host = host

    def prepare(self) -> None:
        for module in ("virtio_vdpa", "vhost_vdpa"):
            self.host.modules.load(module)
        to_switchdev(self.host, 4, PF)


class SimBed:
    name = "sim"

    def __init__(self, root: Path, *, ovs: Ovs | None = None, real: bool | None = None) -> None:
        self._netns: list[str] = []
        self._tag = uuid.uuid4().hex[:8]
        self.real = privileged() if real is None else real
        node = self._make_netns("node") if self.real else None
        self.kernel = SimKernel.create(root, node_netns=node, real_netdevs=self.real)
        self.ovs = ovs
        self.host = sim_host(self.kernel, ovs=ovs)
        self.switch = SimSwitch(self.host)
        self.vdpa = SimVdpaBed(self.host)
        self.cannot_show: Mapping[str, str] = {
            OVS_KERNEL_DATAPATH: "the host has no openvswitch module; OVS runs with the userspace datapath"}

    def _make_netns(self, role: str) -> str:
        from vdpa_operator.host.sim.realnet import create_netns

        name = f"vdpasim-{self._tag}-{role}{len(self._netns)}"
        path = create_netns(name)
        self._netns.append(name)
        return path

    def new_netns(self) -> str:
        if self.real:
            return self._make_netns("pod")
        name = f"vdpasim-{self._tag}-pod{len(self._netns)}"
        self._netns.append(name)
        return f"/var/run/netns/{name}"

    def close(self) -> None:
        if not self.real:
            return
        from vdpa_operator.host.sim.realnet import remove_netns

        for name in reversed(self._netns):
            remove_netns(name)


def sim_bed(tmp_path: Path, *, ovs: Ovs | None = None, real: bool | None = None) -> Iterator[SimBed]:
    bed = SimBed(tmp_path / "host", ovs=ovs, real=real)
    try:
        yield bed
    finally:
        bed.close()
