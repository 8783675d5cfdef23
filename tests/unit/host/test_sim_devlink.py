"""The simulated eswitch through the Host port: legacy ↔ switchdev in the order mlx5 accepts, representors
(names, phys_port_name, switch id, devlink ports), the flow_steering_mode parameter and hw-tc-offload
(host/sim/kernel/eswitch.py and ethtool.py, rules 8–15)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from unit.host.sim_setup import sim_kernel, to_switchdev
from vdpa_operator.host.errors import DeviceBusy, DeviceNotFound, InvalidArgument, NotSupported
from vdpa_operator.host.port import Host
from vdpa_operator.host.sim import SimKernel, sim_host
from vdpa_operator.host.types import (
    DevlinkHandle,
    DevlinkParam,
    DevlinkPort,
    EswitchMode,
    PortFlavour,
    SwitchPort,
    pci_address,
)

PF0 = pci_address("0000:65:00.0")
PF1 = pci_address("0000:65:00.1")
H0 = DevlinkHandle.pci(PF0)
H1 = DevlinkHandle.pci(PF1)


def test_eswitch_starts_legacy(host: Host) -> None:
    assert host.devlink.eswitch_mode(H0) == EswitchMode.LEGACY


def test_switchdev_with_bound_vfs_is_ebusy(host: Host) -> None:
    host.pci.set_numvfs(PF0, 2)
    with pytest.raises(DeviceBusy) as failure:
        host.devlink.set_eswitch_mode(H0, EswitchMode.SWITCHDEV)
    assert failure.value.errno == errno.EBUSY and "unbind the VFs" in str(failure.value)
    assert host.devlink.eswitch_mode(H0) == EswitchMode.LEGACY


def test_switchdev_with_bound_vfs_is_allowed_when_the_rule_is_off(tmp_path: Path) -> None:
    """mlx5 6.1 itself has no such check; the knob models kernels/firmware that take any order."""
    host = sim_host(sim_kernel(tmp_path, switchdev_requires_unbound_vfs=False))
    host.pci.set_numvfs(PF0, 2)
    host.devlink.set_eswitch_mode(H0, EswitchMode.SWITCHDEV)
    assert host.devlink.eswitch_mode(H0) == EswitchMode.SWITCHDEV
    assert host.vdpa.mgmtdevs() == []  # VFs probed in legacy have no vnet capability until re-probed


def test_switchdev_with_zero_vfs_then_vfs_get_representors_at_once(host: Host) -> None:
    host.devlink.set_eswitch_mode(H0, EswitchMode.SWITCHDEV)
    host.pci.set_numvfs(PF0, 2)
    assert [p.netdev for p in vf_ports(host)] == ["ens1f0_0", "ens1f0_1"]


def test_same_mode_again_is_nothing_to_do(host: Host) -> None:
    host.pci.set_numvfs(PF0, 1)
    host.devlink.set_eswitch_mode(H0, EswitchMode.LEGACY)  # bound VFs do not matter for legacy
    assert host.devlink.eswitch_mode(H0) == EswitchMode.LEGACY
    assert [vf.driver for vf in host.pci.list_vfs(PF0)] == ["mlx5_core"]


def test_representors_look_like_mlx5s(host: Host, kernel: SimKernel) -> None:
    to_switchdev(host, 3)
    uplink = host.links.switch_port("ens1f0")
    assert uplink is not None and uplink.port_name == "p0" and len(uplink.switch_id) == 16
    for index in range(3):
        assert host.links.switch_port(f"ens1f0_{index}") == SwitchPort(f"pf0vf{index}", uplink.switch_id)
    assert set(host.pci.get_function(PF0).netdevs) == {"ens1f0", "ens1f0_0", "ens1f0_1", "ens1f0_2"}
    assert host.links.switch_port("ens1f0v0") is None
    rep_dir = kernel.sys_root / "class/net/ens1f0_1"
    assert rep_dir.resolve().parent.parent.name == "0000:65:00.0"  # parent: the PF (kernel >= 5.8)
    info = host.ethtool.driver_info("ens1f0_1")
    assert (info.driver, info.bus_info) == ("mlx5e_rep", "")


def test_both_ports_share_the_switch_id_and_differ_in_pfnum(host: Host) -> None:
    to_switchdev(host, 1, PF0)
    to_switchdev(host, 1, PF1)
    p0, p1 = host.links.switch_port("ens1f0_0"), host.links.switch_port("ens1f1_0")
    assert p0 is not None and p1 is not None
    assert (p0.port_name, p1.port_name) == ("pf0vf0", "pf1vf0")
    assert p0.switch_id == p1.switch_id
    assert host.links.switch_port("ens1f1") == SwitchPort("p1", p0.switch_id)


def test_devlink_ports_in_switchdev(host: Host) -> None:
    to_switchdev(host, 2)
    assert list(host.devlink.ports(H0)) == [
        DevlinkPort(H0, 1, PortFlavour.PCI_VF, netdev="ens1f0_0", pfnum=0, vfnum=0),
        DevlinkPort(H0, 2, PortFlavour.PCI_VF, netdev="ens1f0_1", pfnum=0, vfnum=1),
        DevlinkPort(H0, 0xFFFF, PortFlavour.PHYSICAL, netdev="ens1f0", number=0),
    ]
    assert [p.index for p in host.devlink.ports(H1)] == [1 << 16 | 0xFFFF]


def test_bound_vfs_have_their_own_devlink_instance_with_a_virtual_port(host: Host) -> None:
    host.pci.set_numvfs(PF0, 1)
    vf = DevlinkHandle.pci(pci_address("0000:65:00.2"))
    (port,) = host.devlink.ports(vf)
    assert (port.flavour, port.netdev) == (PortFlavour.VIRTUAL, "ens1f0v0")
    with pytest.raises(NotSupported) as failure:
        host.devlink.eswitch_mode(vf)
    assert failure.value.errno == errno.EOPNOTSUPP
    assert host.devlink.param(vf, "flow_steering_mode") == DevlinkParam("flow_steering_mode", "dmfs", "runtime")


def test_legacy_removes_representors_and_vdpa(host: Host, kernel: SimKernel) -> None:
    to_switchdev(host, 2)
    host.modules.load("virtio_vdpa")
    host.vdpa.create("vdpa:0000:65:00.2", host.vdpa.mgmtdevs()[0])
    host.devlink.set_eswitch_mode(H0, EswitchMode.LEGACY)
    assert vf_ports(host) == []
    assert host.links.find("ens1f0_0") is None and host.links.find("eth0") is None
    assert host.vdpa.devices() == [] and host.vdpa.mgmtdevs() == []
    assert not (kernel.sys_root / "class/net/ens1f0_0").exists()


def test_unknown_devlink_device_is_enodev(host: Host) -> None:
    with pytest.raises(DeviceNotFound) as failure:
        host.devlink.eswitch_mode(DevlinkHandle.pci(pci_address("0000:ff:1f.7")))
    assert failure.value.errno == errno.ENODEV
    with pytest.raises(DeviceNotFound):
        host.devlink.set_eswitch_mode(DevlinkHandle("netdevsim", "netdevsim1"), EswitchMode.SWITCHDEV)
    host.pci.unbind(PF0)  # an unbound PF has no devlink instance
    with pytest.raises(DeviceNotFound):
        host.devlink.eswitch_mode(H0)
    assert host.devlink.ports(H0) == []


# --- flow_steering_mode -------------------------------------------------------------------------------------


def test_flow_steering_mode_defaults_to_dmfs_and_takes_smfs_in_legacy(host: Host) -> None:
    assert host.devlink.param(H0, "flow_steering_mode") == DevlinkParam("flow_steering_mode", "dmfs", "runtime")
    host.devlink.set_param(H0, "flow_steering_mode", "smfs", "runtime")
    assert host.devlink.param(H0, "flow_steering_mode") == DevlinkParam("flow_steering_mode", "smfs", "runtime")


def test_smfs_in_switchdev_is_eopnotsupp_but_dmfs_is_accepted(host: Host) -> None:
    to_switchdev(host, 0)
    with pytest.raises(NotSupported) as failure:
        host.devlink.set_param(H0, "flow_steering_mode", "smfs", "runtime")
    assert failure.value.errno == errno.EOPNOTSUPP
    host.devlink.set_param(H0, "flow_steering_mode", "dmfs", "runtime")


@pytest.mark.parametrize(("name", "value", "cmode", "error", "code"), [
    ("no_such_param", "x", "runtime", InvalidArgument, errno.EINVAL),
    ("flow_steering_mode", "fast", "runtime", InvalidArgument, errno.EINVAL),
    ("flow_steering_mode", 1, "runtime", InvalidArgument, errno.EINVAL),
    ("flow_steering_mode", "smfs", "driverinit", NotSupported, errno.EOPNOTSUPP),
])
def test_param_set_errno(host: Host, name: str, value: str | int, cmode: str, error: type[Exception],
                         code: int) -> None:
    with pytest.raises(error) as failure:
        host.devlink.set_param(H0, name, value, cmode)
    assert getattr(failure.value, "errno", None) == code
    assert host.devlink.param(H0, "flow_steering_mode").value == "dmfs"  # type: ignore[union-attr]


def test_unknown_param_reads_as_none(host: Host) -> None:
    assert host.devlink.param(H0, "no_such_param") is None


def test_smfs_without_the_capability_is_eopnotsupp(tmp_path: Path) -> None:
    host = sim_host(sim_kernel(tmp_path, smfs_supported=False))
    with pytest.raises(NotSupported):
        host.devlink.set_param(H0, "flow_steering_mode", "smfs", "runtime")


# --- hw-tc-offload ------------------------------------------------------------------------------------------


def test_hw_tc_offload_off_on_the_legacy_pf_on_for_uplink_and_representors(host: Host) -> None:
    assert host.ethtool.feature("ens1f0", "hw-tc-offload") is False
    host.ethtool.set_feature("ens1f0", "hw-tc-offload", True)
    assert host.ethtool.feature("ens1f0", "hw-tc-offload") is True
    host.ethtool.set_feature("ens1f0", "hw-tc-offload", False)
    to_switchdev(host, 1)
    assert host.ethtool.feature("ens1f0", "hw-tc-offload") is True
    assert host.ethtool.feature("ens1f0_0", "hw-tc-offload") is True
    assert host.ethtool.feature("ens1f0v0", "hw-tc-offload") is False
    host.devlink.set_eswitch_mode(H0, EswitchMode.LEGACY)
    assert host.ethtool.feature("ens1f0", "hw-tc-offload") is False


def test_unknown_features_are_absent_and_not_settable(host: Host) -> None:
    assert host.ethtool.feature("ens1f0", "no-such-feature") is None
    with pytest.raises(NotSupported):
        host.ethtool.set_feature("ens1f0", "no-such-feature", True)
    with pytest.raises(DeviceNotFound):
        host.ethtool.feature("nosuch0", "hw-tc-offload")


def vf_ports(host: Host) -> list[DevlinkPort]:
    return [p for p in host.devlink.ports(H0) if p.flavour == PortFlavour.PCI_VF]
