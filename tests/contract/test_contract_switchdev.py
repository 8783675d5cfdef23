"""SR-IOV and the eswitch, one assertion set for the simulated ConnectX-6 Dx and for netdevsim on the real
kernel: VF creation (VFs on their PF's NUMA node), legacy ↔ switchdev, representors via devlink ports and
phys_port_name/phys_switch_id, the VF administrative MAC, hw-tc-offload, and the errno of a missing devlink
device."""

from __future__ import annotations

import re

import pytest

from contract.beds import MLX5_ESWITCH_RULES, MLX5_PARAMS, PCI_IDENTITY, Bed, require
from contract.wait import wait_until
from vdpa_operator.host.errors import DeviceBusy, DeviceNotFound
from vdpa_operator.host.types import DevlinkHandle, DevlinkPort, EswitchMode, PortFlavour, pci_address


def vf_ports(bed: Bed) -> list[DevlinkPort]:
    return [p for p in bed.host.devlink.ports(bed.switch.handle) if p.flavour == PortFlavour.PCI_VF]


def to_switchdev(bed: Bed, numvfs: int) -> None:
    """Upstream's mlx5 order (§4.5): VFs in legacy, unbind them, then switchdev."""
    bed.switch.set_numvfs(numvfs)
    if PCI_IDENTITY not in bed.cannot_show:
        for vf in bed.host.pci.list_vfs(pci_address(bed.switch.handle.name)):
            bed.host.pci.unbind(vf.address)
    bed.host.devlink.set_eswitch_mode(bed.switch.handle, EswitchMode.SWITCHDEV)


def test_numvfs_creates_and_removes_vfs(bed: Bed) -> None:
    """The bed makes the VFs its own way (on the kernel bed: netdevsim's sysfs, not the adapter); the adapter
    has to see them, in the PF's IFLA_VFINFO_LIST."""
    bed.switch.set_numvfs(3)
    assert bed.switch.numvfs() == 3
    assert sorted(bed.host.links.vf_macs(bed.switch.pf_netdev)) == [0, 1, 2]
    bed.switch.set_numvfs(0)
    assert bed.switch.numvfs() == 0
    assert not bed.host.links.vf_macs(bed.switch.pf_netdev)


def test_vfs_are_pci_functions_linked_to_their_pf(bed: Bed) -> None:
    require(bed, PCI_IDENTITY)
    pf = pci_address(bed.switch.handle.name)
    bed.switch.set_numvfs(3)
    vfs = bed.host.pci.list_vfs(pf)
    assert [vf.index for vf in vfs] == [0, 1, 2]
    assert all(bed.host.pci.get_function(vf.address).physfn == pf for vf in vfs)
    assert bed.host.pci.sriov(pf) is not None and bed.host.pci.sriov(pf).numvfs == 3  # type: ignore[union-attr]


def test_a_vf_is_on_its_pfs_numa_node(bed: Bed) -> None:
    require(bed, PCI_IDENTITY)
    pf = pci_address(bed.switch.handle.name)
    bed.switch.set_numvfs(2)
    node = bed.host.pci.get_function(pf).numa_node
    assert [bed.host.pci.get_function(vf.address).numa_node for vf in bed.host.pci.list_vfs(pf)] == [node, node]


def test_eswitch_starts_legacy_and_round_trips(bed: Bed) -> None:
    devlink, handle = bed.host.devlink, bed.switch.handle
    assert devlink.eswitch_mode(handle) == EswitchMode.LEGACY
    to_switchdev(bed, 2)
    assert devlink.eswitch_mode(handle) == EswitchMode.SWITCHDEV
    devlink.set_eswitch_mode(handle, EswitchMode.LEGACY)
    assert devlink.eswitch_mode(handle) == EswitchMode.LEGACY


def test_switchdev_vfs_get_representors_on_the_pf_switch(bed: Bed) -> None:
    to_switchdev(bed, 2)
    ports = wait_until(lambda: len(vf_ports(bed)) == 2 and vf_ports(bed), what="two pcivf devlink ports")
    uplink = bed.host.links.switch_port(bed.switch.pf_netdev)
    assert uplink is not None and re.fullmatch(r"p\d+", uplink.port_name), uplink
    physical = [p for p in bed.host.devlink.ports(bed.switch.handle) if p.flavour == PortFlavour.PHYSICAL]
    assert bed.switch.pf_netdev in [p.netdev for p in physical]
    assert sorted(p.vfnum for p in ports if p.vfnum is not None) == [0, 1]
    for port in ports:
        assert port.netdev, port
        rep = bed.host.links.switch_port(port.netdev)
        assert rep is not None
        assert rep.port_name == f"pf{port.pfnum}vf{port.vfnum}"
        assert rep.switch_id == uplink.switch_id


def test_legacy_removes_the_representors(bed: Bed) -> None:
    to_switchdev(bed, 2)
    reps = [p.netdev for p in wait_until(lambda: len(vf_ports(bed)) == 2 and vf_ports(bed), what="pcivf ports")]
    bed.host.devlink.set_eswitch_mode(bed.switch.handle, EswitchMode.LEGACY)
    assert vf_ports(bed) == []
    assert all(rep and bed.host.links.find(rep) is None for rep in reps)


def test_switchdev_is_refused_while_vfs_are_bound(bed: Bed) -> None:
    require(bed, MLX5_ESWITCH_RULES)
    bed.switch.set_numvfs(2)
    with pytest.raises(DeviceBusy) as failure:
        bed.host.devlink.set_eswitch_mode(bed.switch.handle, EswitchMode.SWITCHDEV)
    assert failure.value.errno is not None and str(bed.switch.handle) in str(failure.value)
    assert bed.host.devlink.eswitch_mode(bed.switch.handle) == EswitchMode.LEGACY


def test_vf_admin_mac_is_kept_on_the_pf(bed: Bed) -> None:
    bed.switch.set_numvfs(2)
    bed.host.links.set_vf_mac(bed.switch.pf_netdev, 1, "02:00:00:00:00:10")
    assert bed.host.links.vf_macs(bed.switch.pf_netdev)[1] == "02:00:00:00:00:10"


def test_hw_tc_offload_feature_can_be_switched(bed: Bed) -> None:
    ethtool, pf = bed.host.ethtool, bed.switch.pf_netdev
    assert ethtool.feature(pf, "hw-tc-offload") is not None
    ethtool.set_feature(pf, "hw-tc-offload", True)
    assert ethtool.feature(pf, "hw-tc-offload") is True
    ethtool.set_feature(pf, "hw-tc-offload", False)
    assert ethtool.feature(pf, "hw-tc-offload") is False
    assert ethtool.feature(pf, "no-such-feature") is None


def test_unknown_devlink_param_is_none(bed: Bed) -> None:
    assert bed.host.devlink.param(bed.switch.handle, "no_such_param") is None


def test_flow_steering_mode_param_round_trips_in_legacy(bed: Bed) -> None:
    require(bed, MLX5_PARAMS)
    devlink, handle = bed.host.devlink, bed.switch.handle
    param = devlink.param(handle, "flow_steering_mode")
    assert param is not None and param.cmode == "runtime"
    devlink.set_param(handle, "flow_steering_mode", "smfs", param.cmode)
    assert devlink.param(handle, "flow_steering_mode").value == "smfs"  # type: ignore[union-attr]


def test_missing_devlink_device_is_enodev(bed: Bed) -> None:
    missing = DevlinkHandle(bed.switch.handle.bus, "0000:ff:1f.7" if bed.switch.handle.bus == "pci" else "nosuch9")
    with pytest.raises(DeviceNotFound) as failure:
        bed.host.devlink.eswitch_mode(missing)
    assert str(missing) in str(failure.value)
