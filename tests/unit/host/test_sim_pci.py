"""The simulated ConnectX-6 Dx through sysfs: topology, SR-IOV and driver binding, each rule with the errno the
kernel gives (host/sim/kernel/pci.py and drivers.py, rules 1–7), exercised through the Linux adapter's own `SysfsPci`
on the rendered tree."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

import pytest

from unit.host.sim_setup import sim_kernel, to_switchdev
from vdpa_operator.host.errors import (
    DeviceBusy,
    DeviceNotFound,
    HostError,
    InvalidArgument,
    KernelModuleMissing,
    PermissionDenied,
)
from vdpa_operator.host.linux.pci import SysfsPci
from vdpa_operator.host.port import Host
from vdpa_operator.host.sim import NicSpec, PfSpec, SimKernel, sim_host
from vdpa_operator.host.sim.sysfs import SimSysfs
from vdpa_operator.host.types import DevlinkHandle, EswitchMode, VdpaMgmtDev, pci_address

PF0 = pci_address("0000:65:00.0")
PF1 = pci_address("0000:65:00.1")


@pytest.fixture
def sysfs(kernel: SimKernel) -> SimSysfs:
    return SimSysfs(kernel)


def errno_of(failure: pytest.ExceptionInfo[HostError]) -> int | None:
    return failure.value.errno


# --- topology -------------------------------------------------------------------------------------------------


def test_two_pfs_of_one_connectx6dx_bound_to_mlx5_core(host: Host) -> None:
    functions = host.pci.list_functions()
    assert [(f.address, f.vendor, f.device, f.class_code, f.driver, f.netdevs) for f in functions] == [
        (PF0, "15b3", "101d", "0x020000", "mlx5_core", ("ens1f0",)),
        (PF1, "15b3", "101d", "0x020000", "mlx5_core", ("ens1f1",)),
    ]
    assert host.pci.sriov(PF0) is not None and host.pci.sriov(PF0).totalvfs == 8  # type: ignore[union-attr]


def test_sysfs_layout_is_the_kernels(kernel: SimKernel) -> None:
    sys = kernel.sys_root
    pf_dir = sys / "devices/pci0000:64/0000:64:00.0/0000:65:00.0"
    assert (sys / "bus/pci/devices/0000:65:00.0").resolve() == pf_dir.resolve()
    assert os.readlink(sys / "bus/pci/devices/0000:65:00.0") == "../../../devices/pci0000:64/0000:64:00.0/0000:65:00.0"
    assert os.readlink(pf_dir / "driver") == "../../../../bus/pci/drivers/mlx5_core"
    assert (pf_dir / "vendor").read_text() == "0x15b3\n"
    assert (pf_dir / "driver_override").read_text() == "(null)\n"
    assert (pf_dir / "sriov_offset").read_text() == "2\n"
    assert (pf_dir / "sriov_stride").read_text() == "1\n"
    assert (pf_dir / "sriov_vf_device").read_text() == "101e\n"
    assert (sys / "class/net/ens1f0").resolve() == (pf_dir / "net/ens1f0").resolve()
    assert (sys / "class/net/ens1f0/phys_port_name").read_text() == "p0\n"
    assert (sys / "bus/pci/drivers/mlx5_core/bind").exists()
    assert (sys / "module/mlx5_core/initstate").read_text() == "live\n"


def test_vf_addresses_follow_routing_id_arithmetic(host: Host, sysfs: SimSysfs) -> None:
    """PF0: offset 2 → 65:00.2…65:01.1; PF1 (offset 9) continues right after PF0's eight."""
    assert sysfs.read("bus/pci/devices/0000:65:00.1/sriov_offset") == "9"
    host.pci.set_numvfs(PF0, 8)
    host.pci.set_numvfs(PF1, 2)
    assert [vf.address for vf in host.pci.list_vfs(PF0)] == [
        "0000:65:00.2", "0000:65:00.3", "0000:65:00.4", "0000:65:00.5", "0000:65:00.6", "0000:65:00.7",
        "0000:65:01.0", "0000:65:01.1"]
    assert [vf.address for vf in host.pci.list_vfs(PF1)] == ["0000:65:01.2", "0000:65:01.3"]
    assert host.pci.get_function(pci_address("0000:65:01.2")).physfn == PF1


def test_vf_offsets_carry_into_the_bus_number(tmp_path: Path) -> None:
    pfs = (PfSpec("0000:b1:00.0", "enp177s0f0", totalvfs=200), PfSpec("0000:b1:00.1", "enp177s0f1", totalvfs=200))
    host = sim_host(sim_kernel(tmp_path, nics=[NicSpec(pfs)]))
    host.pci.set_numvfs(pci_address("0000:b1:00.1"), 200)
    vfs = host.pci.list_vfs(pci_address("0000:b1:00.1"))
    assert (vfs[0].address, vfs[53].address, vfs[54].address, vfs[-1].address) == (
        "0000:b1:19.2", "0000:b1:1f.7", "0000:b2:00.0", "0000:b2:12.1")  # routing ID 202 … 401 (offset 201)


def test_numa_node_is_the_nics_and_vfs_show_their_pfs(tmp_path: Path) -> None:
    """A two-socket node: one card on node 0 (the default), one on node 1, one on a machine without NUMA."""
    nics = [NicSpec((PfSpec("0000:65:00.0", "ens1f0"),)),
            NicSpec((PfSpec("0000:b1:00.0", "ens2f0"),), parent="pci0000:b0/0000:b0:02.0", numa_node=1),
            NicSpec((PfSpec("0000:ca:00.0", "ens3f0"),), parent="pci0000:c9/0000:c9:02.0", numa_node=-1)]
    host = sim_host(sim_kernel(tmp_path, nics=nics))
    for pf in ("0000:65:00.0", "0000:b1:00.0", "0000:ca:00.0"):
        host.pci.set_numvfs(pci_address(pf), 2)
    nodes = {f.address: f.numa_node for f in host.pci.list_functions()}
    assert nodes == {"0000:65:00.0": 0, "0000:65:00.1": 0, "0000:65:00.2": 0,
                     "0000:b1:00.0": 1, "0000:b1:00.1": 1, "0000:b1:00.2": 1,
                     "0000:ca:00.0": None, "0000:ca:00.1": None, "0000:ca:00.2": None}


def test_netdev_names_and_macs_are_deterministic(tmp_path: Path) -> None:
    a = sim_host(sim_kernel(tmp_path / "a"))
    b = sim_host(sim_kernel(tmp_path / "b"))
    assert [(link.name, link.mac) for link in a.links.list()] == [(link.name, link.mac) for link in b.links.list()]


# --- sriov_numvfs ---------------------------------------------------------------------------------------------


def test_numvfs_creates_vfs_bound_to_mlx5_core_with_netdevs(host: Host) -> None:
    host.pci.set_numvfs(PF0, 3)
    vfs = host.pci.list_vfs(PF0)
    assert [(vf.index, vf.driver) for vf in vfs] == [(0, "mlx5_core"), (1, "mlx5_core"), (2, "mlx5_core")]
    assert [host.pci.get_function(vf.address).netdevs for vf in vfs] == [("ens1f0v0",), ("ens1f0v1",), ("ens1f0v2",)]
    assert host.pci.get_function(vfs[0].address).device == "101e"


def test_numvfs_above_totalvfs_is_erange(sysfs: SimSysfs) -> None:
    with pytest.raises(InvalidArgument) as failure:
        sysfs.write("bus/pci/devices/0000:65:00.0/sriov_numvfs", "9")
    assert errno_of(failure) == errno.ERANGE


@pytest.mark.parametrize("text", ["x", "-1", "", "1 2", "70000"])
def test_numvfs_that_is_not_a_u16_is_einval(sysfs: SimSysfs, text: str) -> None:
    with pytest.raises(InvalidArgument) as failure:
        sysfs.write("bus/pci/devices/0000:65:00.0/sriov_numvfs", text)
    assert errno_of(failure) == errno.EINVAL


def test_numvfs_accepts_what_kstrtou16_accepts(sysfs: SimSysfs) -> None:
    sysfs.write("bus/pci/devices/0000:65:00.0/sriov_numvfs", "0x2\n")
    assert sysfs.read("bus/pci/devices/0000:65:00.0/sriov_numvfs") == "2"


def test_changing_a_nonzero_count_directly_is_ebusy(sysfs: SimSysfs) -> None:
    sysfs.write("bus/pci/devices/0000:65:00.0/sriov_numvfs", "2")
    with pytest.raises(DeviceBusy) as failure:
        sysfs.write("bus/pci/devices/0000:65:00.0/sriov_numvfs", "3")
    assert errno_of(failure) == errno.EBUSY
    sysfs.write("bus/pci/devices/0000:65:00.0/sriov_numvfs", "2")  # same count: nothing to do


def test_set_numvfs_goes_through_zero(host: Host) -> None:
    host.pci.set_numvfs(PF0, 2)
    host.pci.set_numvfs(PF0, 5)
    assert len(host.pci.list_vfs(PF0)) == 5


def test_numvfs_on_a_pf_without_driver_is_enoent(host: Host, sysfs: SimSysfs) -> None:
    host.pci.unbind(PF0)
    with pytest.raises(DeviceNotFound) as failure:
        sysfs.write("bus/pci/devices/0000:65:00.0/sriov_numvfs", "1")
    assert errno_of(failure) == errno.ENOENT


def test_zero_removes_vfs_their_netdevs_representors_and_vdpa_devices(host: Host, kernel: SimKernel) -> None:
    to_switchdev(host, 2)
    kernel.vdpa_dev_new("vdpa:0000:65:00.2", VdpaMgmtDev("pci", "0000:65:00.2"))
    host.pci.set_numvfs(PF0, 0)
    assert host.pci.list_vfs(PF0) == []
    names = [link.name for link in host.links.list()]
    assert not [n for n in names if n.startswith(("ens1f0v", "ens1f0_"))]
    assert kernel.vdpa_devices() == []
    assert not (kernel.sys_root / "bus/pci/devices/0000:65:00.2").exists()
    assert host.links.vf_macs("ens1f0") == {}


def test_vfs_appear_late_with_vf_create_delay_and_the_wait_loop_sees_them(tmp_path: Path) -> None:
    kernel = sim_kernel(tmp_path, vf_create_delay=0.3)
    sysfs = SimSysfs(kernel)
    sysfs.write("bus/pci/devices/0000:65:00.0/sriov_numvfs", "2")
    assert sysfs.read("bus/pci/devices/0000:65:00.0/sriov_numvfs") == "2"
    assert not sysfs.exists("bus/pci/devices/0000:65:00.0/virtfn0")
    sysfs.write("bus/pci/devices/0000:65:00.0/sriov_numvfs", "0")
    started = time.monotonic()
    SysfsPci(sysfs, poll_interval=0.02).set_numvfs(PF0, 2, timeout=5)
    assert time.monotonic() - started >= 0.25
    assert sysfs.exists("bus/pci/devices/0000:65:00.3/physfn")


def test_delayed_vfs_appear_without_anyone_asking(tmp_path: Path) -> None:
    """A timer materialises them, so a reader that never goes through SimSysfs sees them too."""
    kernel = sim_kernel(tmp_path, vf_create_delay=0.1)
    kernel.write_sriov_numvfs(PF0, "1")
    deadline = time.monotonic() + 5
    while not (kernel.sys_root / "bus/pci/devices/0000:65:00.2/physfn").exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)


# --- drivers --------------------------------------------------------------------------------------------------


def test_unbind_through_the_driver_symlink_lands_on_the_driver(host: Host, kernel: SimKernel) -> None:
    host.pci.set_numvfs(PF0, 1)
    vf = pci_address("0000:65:00.2")
    host.pci.unbind(vf)  # writes bus/pci/devices/<vf>/driver/unbind
    assert host.pci.get_function(vf).driver is None
    assert host.pci.get_function(vf).netdevs == ()
    assert not (kernel.sys_root / "bus/pci/drivers/mlx5_core/0000:65:00.2").exists()
    host.pci.unbind(vf)  # nothing to do


def test_bind_errno_follow_the_driver_core(host: Host, sysfs: SimSysfs) -> None:
    host.pci.set_numvfs(PF0, 1)
    with pytest.raises(DeviceBusy) as busy:
        sysfs.write("bus/pci/drivers/mlx5_core/bind", "0000:65:00.2")
    assert errno_of(busy) == errno.EBUSY
    with pytest.raises(DeviceNotFound) as unknown:
        sysfs.write("bus/pci/drivers/mlx5_core/bind", "0000:65:1f.7")
    assert errno_of(unknown) == errno.ENODEV
    with pytest.raises(DeviceNotFound) as not_bound_here:
        sysfs.write("bus/pci/drivers/mlx5_core/unbind", "0000:65:1f.7")
    assert errno_of(not_bound_here) == errno.ENODEV
    sysfs.write("bus/pci/drivers/mlx5_core/unbind", "0000:65:00.2\n")
    sysfs.write("bus/pci/devices/0000:65:00.2/driver_override", "vfio-pci")
    with pytest.raises(DeviceNotFound):  # the override names another driver: no match
        sysfs.write("bus/pci/drivers/mlx5_core/bind", "0000:65:00.2")
    assert sysfs.read("bus/pci/devices/0000:65:00.2/driver_override") == "vfio-pci"
    sysfs.write("bus/pci/devices/0000:65:00.2/driver_override", "\n")
    assert sysfs.read("bus/pci/devices/0000:65:00.2/driver_override") == "(null)"


def test_bind_to_a_driver_that_is_not_loaded_is_kernel_module_missing(host: Host) -> None:
    host.pci.set_numvfs(PF0, 1)
    with pytest.raises(KernelModuleMissing):
        host.pci.bind(pci_address("0000:65:00.2"), "vfio-pci")
    assert host.pci.get_function(pci_address("0000:65:00.2")).driver == "mlx5_core"


def test_vfio_pci_binds_only_through_driver_override(host: Host) -> None:
    host.modules.load("vfio_pci")
    host.pci.set_numvfs(PF0, 1)
    vf = pci_address("0000:65:00.2")
    host.pci.bind(vf, "vfio-pci")
    assert host.pci.get_function(vf).driver == "vfio-pci"
    assert host.pci.get_function(vf).netdevs == ()
    host.pci.bind_default(vf)  # vfio-pci is a DPDK driver: back to mlx5_core
    assert host.pci.get_function(vf).driver == "mlx5_core"


def test_drivers_probe_binds_the_default_driver(host: Host, sysfs: SimSysfs) -> None:
    host.pci.set_numvfs(PF0, 1)
    vf = pci_address("0000:65:00.2")
    host.pci.unbind(vf)
    with pytest.raises(DeviceNotFound):
        sysfs.write("bus/pci/drivers_probe", "0000:65:1f.7")
    host.pci.bind_default(vf)
    assert host.pci.get_function(vf).driver == "mlx5_core"


def test_unbinding_the_pf_disables_sriov(host: Host) -> None:
    host.pci.set_numvfs(PF0, 2)
    host.pci.unbind(PF0)
    assert host.pci.list_vfs(PF0) == []
    assert host.pci.sriov(PF0).numvfs == 0  # type: ignore[union-attr]
    assert host.links.find("ens1f0") is None
    host.pci.bind_default(PF0)
    assert host.links.get("ens1f0").admin_up
    assert host.devlink.eswitch_mode(DevlinkHandle.pci(PF0)) == EswitchMode.LEGACY


def test_sriov_drivers_autoprobe_zero_leaves_new_vfs_unbound(host: Host, sysfs: SimSysfs) -> None:
    sysfs.write("bus/pci/devices/0000:65:00.0/sriov_drivers_autoprobe", "0")
    host.pci.set_numvfs(PF0, 2)
    assert [vf.driver for vf in host.pci.list_vfs(PF0)] == [None, None]


# --- other attributes -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("rel", ["bus/pci/devices/0000:65:00.0/vendor", "bus/pci/devices/0000:65:00.0/sriov_totalvfs",
                                 "class/net/ens1f0/address", "class/net/ens1f0/phys_switch_id"])
def test_read_only_attributes_are_eacces(sysfs: SimSysfs, rel: str) -> None:
    before = sysfs.read(rel)
    with pytest.raises(PermissionDenied) as failure:
        sysfs.write(rel, "1")
    assert errno_of(failure) == errno.EACCES
    assert sysfs.read(rel) == before


def test_missing_attribute_is_enoent_and_directory_is_eisdir(sysfs: SimSysfs) -> None:
    with pytest.raises(DeviceNotFound):
        sysfs.write("bus/pci/devices/0000:65:00.0/no_such_attr", "1")
    with pytest.raises(HostError) as failure:
        sysfs.write("bus/pci/devices/0000:65:00.0", "1")
    assert errno_of(failure) == errno.EISDIR


def test_writing_a_netdev_mtu_attribute_changes_the_mtu(host: Host, sysfs: SimSysfs) -> None:
    sysfs.write("class/net/ens1f0/mtu", "9000")
    assert host.links.get("ens1f0").mtu == 9000
    assert sysfs.read("class/net/ens1f0/mtu") == "9000"
    with pytest.raises(InvalidArgument):
        sysfs.write("class/net/ens1f0/mtu", "10000")
