"""What a contract test needs from the machine it runs on: a Host plus the few set-up steps that differ
between the simulated host and the real kernel in the QEMU guest.

One assertion set, two beds. The sim bed (`sim_bed.py`) models a ConnectX-6 Dx; the kernel bed
(`tests/kernel/guest_bed.py`) drives netdevsim and vdpa_sim_net in the guest. Where a bed cannot show a
behaviour, it lists the reason in `cannot_show` and the test asserts what it can and says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import pytest

from vdpa_operator.host.port import Host, Ovs
from vdpa_operator.host.types import DevlinkHandle, VdpaMgmtDev

# Names of behaviours a bed may be unable to show; each maps to the reason, printed by the tests.
PCI_IDENTITY = "pci-identity"  # netdevsim VFs are not PCI functions: no virtfn/physfn, no PCI bus-info
VF_NETDEVS = "vf-netdevs"  # netdevsim VFs have no netdevs of their own
VDPA_VF_PARENT = "vdpa-vf-parent"  # vdpa_sim has no VF parent: mgmtdev is bus-less `vdpasim_net`
VDPA_ONE_PER_VF = "vdpa-one-per-vf"  # vdpa_sim allows many devices per mgmtdev; mlx5 allows one (ENOSPC)
OVS_KERNEL_DATAPATH = "ovs-kernel-datapath"  # no openvswitch module on the host: userspace datapath only
MLX5_ESWITCH_RULES = "mlx5-eswitch-rules"  # netdevsim accepts any order; mlx5 refuses switchdev with bound VFs
MLX5_PARAMS = "mlx5-params"  # netdevsim has no flow_steering_mode devlink parameter
VDPA_ATTR_SET = "vdpa-attr-set"  # VDPA_CMD_DEV_ATTR_SET needs Linux >= 6.12; older kernels answer EOPNOTSUPP


class SwitchBed(Protocol):
    """An SR-IOV NIC with an eswitch: a ConnectX-6 Dx PF in the sim, a netdevsim device in the guest."""

    handle: DevlinkHandle
    pf_netdev: str
    max_vfs: int

    def set_numvfs(self, count: int) -> None:
        """Create `count` VFs (0 removes them) the way this bed's kernel does it."""
        ...

    def numvfs(self) -> int: ...


class VdpaBed(Protocol):
    """A vDPA management device that can carry the device `device_name`."""

    mgmtdev: VdpaMgmtDev
    other_mgmtdev: VdpaMgmtDev
    """A second management device, or the same one where it takes several devices."""
    device_name: str

    def prepare(self) -> None:
        """Make the management device exist and the vdpa bus drivers available."""
        ...


class Bed(Protocol):
    name: str
    """`sim` or `kernel`."""
    host: Host
    switch: SwitchBed
    vdpa: VdpaBed
    ovs: Ovs | None
    """An OVSDB client on a running ovs-vswitchd, or None when OVS cannot run on this bed."""
    cannot_show: Mapping[str, str]
    """Behaviour name → why this bed cannot show it."""

    def new_netns(self) -> str:
        """A fresh network namespace (its path); removed when the bed is torn down."""
        ...


def require(bed: Bed, behaviour: str) -> None:
    """Skip the rest of a test, printing why this bed cannot show the behaviour."""
    if behaviour in bed.cannot_show:
        pytest.skip(f"{bed.name} bed cannot show {behaviour}: {bed.cannot_show[behaviour]}")
