"""The simulated vdpa family and bus through the Host port (host/sim/kernel/vdpa.py and drivers.py, rules 16–21,
29–30): which management
devices exist, DEV_NEW's errno in the kernel's order, the EOPNOTSUPP retry, auto-probing, what binding leaves in
sysfs and /dev (read back by the Linux adapter's `VdpaSysfs`), the MAC set after creation and the config read
back, and what removes devices."""

from __future__ import annotations

import errno
import logging
import os
import stat
from pathlib import Path

import pytest

from unit.host.sim_setup import sim_kernel, to_switchdev
from vdpa_operator.host.errors import (
    AlreadyExists,
    DeviceBusy,
    DeviceNotFound,
    InvalidArgument,
    KernelModuleMissing,
    NoSpace,
    NotSupported,
)
from vdpa_operator.host.port import Host
from vdpa_operator.host.sim import SimKernel, sim_host
from vdpa_operator.host.sim.sysfs import SimSysfs
from vdpa_operator.host.types import (
    VdpaBinding,
    VdpaConfig,
    VdpaDevice,
    VdpaDriver,
    VdpaMgmtDev,
    VdpaNetConfig,
    pci_address,
)

PF0 = pci_address("0000:65:00.0")
VF = "0000:65:00.4"
NAME = "vdpa:0000:65:00.4"
MGMT = VdpaMgmtDev("pci", VF)


def make(tmp_path: Path, **options: object) -> tuple[SimKernel, Host]:
    kernel = sim_kernel(tmp_path, **options)
    return kernel, sim_host(kernel)


@pytest.fixture
def host(kernel: SimKernel) -> Host:
    host = sim_host(kernel)
    to_switchdev(host)
    return host


# --- management devices -----------------------------------------------------------------------------------


def test_one_mgmtdev_per_vf_probed_in_switchdev(host: Host) -> None:
    assert [str(m) for m in host.vdpa.mgmtdevs()] == [f"pci/0000:65:00.{i}" for i in (2, 3, 4, 5)]
    assert host.vdpa.mgmtdevs()[0].supported_classes == 1 << 1
    assert host.vdpa.mgmtdevs()[0].max_vqs == 257


def test_no_mgmtdev_in_legacy_or_for_unbound_vfs_or_without_mlx5_vdpa(tmp_path: Path) -> None:
    kernel, host = make(tmp_path)
    host.pci.set_numvfs(PF0, 2)
    assert host.vdpa.mgmtdevs() == []  # legacy
    to_switchdev(host, 2)
    host.pci.unbind(pci_address("0000:65:00.2"))
    assert [m.name for m in host.vdpa.mgmtdevs()] == ["0000:65:00.3"]
    kernel.unload_module("mlx5_vdpa")
    assert host.vdpa.mgmtdevs() == []


def test_without_the_vdpa_module_there_is_no_vdpa_at_all(tmp_path: Path) -> None:
    kernel, host = make(tmp_path, modules=("mlx5_core",))
    to_switchdev(host)
    assert (host.vdpa.mgmtdevs(), host.vdpa.devices(), host.vdpa.get(NAME)) == ([], [], None)
    host.vdpa.delete(NAME)
    with pytest.raises(KernelModuleMissing):
        host.vdpa.delete(NAME, missing_ok=False)
    with pytest.raises(KernelModuleMissing):
        host.vdpa.create(NAME, MGMT)
    assert not (kernel.sys_root / "bus/vdpa").exists()
    host.modules.load("mlx5_vdpa")  # pulls in vdpa
    assert (kernel.sys_root / "bus/vdpa/devices").is_dir()
    assert len(host.vdpa.mgmtdevs()) == 4


# --- DEV_NEW / DEV_DEL --------------------------------------------------------------------------------------


def test_create_gives_an_mlx5_device(host: Host) -> None:
    created = host.vdpa.create(NAME, MGMT, VdpaConfig(max_vqp=32))
    assert created == VdpaDevice(NAME, VdpaMgmtDev("pci", VF), device_id=1, vendor_id=0x15B3, max_vqs=65,
                                 max_vq_size=256)
    assert host.vdpa.create("vdpa:0000:65:00.5", VdpaMgmtDev("pci", "0000:65:00.5")).max_vqs == 3
    assert [d.name for d in host.vdpa.devices()] == [NAME, "vdpa:0000:65:00.5"]


@pytest.mark.parametrize(("mgmtdev", "config", "error", "code"), [
    (MGMT, VdpaConfig(max_vqp=0), InvalidArgument, errno.EINVAL),
    (VdpaMgmtDev("pci", "0000:ff:1f.7"), VdpaConfig(), DeviceNotFound, errno.ENODEV),
    (VdpaMgmtDev(None, VF), VdpaConfig(), DeviceNotFound, errno.ENODEV),  # bus must match the mgmtdev's
    (VdpaMgmtDev("auxiliary", VF), VdpaConfig(), DeviceNotFound, errno.ENODEV),
    (MGMT, VdpaConfig(max_vqp=129), InvalidArgument, errno.EINVAL),  # > max_vqs / 2
])
def test_dev_new_errno(host: Host, mgmtdev: VdpaMgmtDev, config: VdpaConfig, error: type[Exception],
                       code: int) -> None:
    with pytest.raises(error) as failure:
        host.vdpa.create(NAME, mgmtdev, config)
    assert getattr(failure.value, "errno", None) == code
    assert host.vdpa.devices() == []


def test_max_vqp_zero_is_checked_before_the_mgmtdev(host: Host) -> None:
    with pytest.raises(InvalidArgument):
        host.vdpa.create(NAME, VdpaMgmtDev("pci", "0000:ff:1f.7"), VdpaConfig(max_vqp=0))


def test_second_device_on_a_vf_is_enospc_even_under_the_same_name(host: Host) -> None:
    """mlx5_vdpa_dev_add checks `mgtdev->ndev` before the bus checks the name."""
    host.vdpa.create(NAME, MGMT)
    with pytest.raises(NoSpace) as other_name:
        host.vdpa.create("second", MGMT)
    assert other_name.value.errno == errno.ENOSPC
    with pytest.raises(NoSpace):
        host.vdpa.create(NAME, MGMT)


def test_duplicate_name_on_another_vf_is_eexist(host: Host) -> None:
    host.vdpa.create(NAME, MGMT)
    with pytest.raises(AlreadyExists) as failure:
        host.vdpa.create(NAME, VdpaMgmtDev("pci", "0000:65:00.5"))
    assert failure.value.errno == errno.EEXIST


def test_config_the_mgmtdev_lacks_is_retried_without(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    kernel, host = make(tmp_path, vdpa_config_attrs=("mac",))
    to_switchdev(host)
    with pytest.raises(Exception) as direct:
        kernel.vdpa_dev_new(NAME, MGMT, VdpaConfig(max_vqp=32))
    assert getattr(direct.value, "errno", None) == errno.EOPNOTSUPP
    with caplog.at_level(logging.WARNING):
        created = host.vdpa.create(NAME, MGMT, VdpaConfig(mac="00:e8:ca:11:22:44", max_vqp=32))
    assert created.max_vqs == 3  # created without max_vqp (and without the MAC: all config is dropped)
    assert "retrying without them" in caplog.text and "max_vqp" in caplog.text


def test_mac_only_config_is_kept_on_a_mac_only_mgmtdev(tmp_path: Path) -> None:
    _kernel, host = make(tmp_path, vdpa_config_attrs=("mac",))
    to_switchdev(host)
    host.modules.load("virtio_vdpa")
    host.vdpa.create(NAME, MGMT, VdpaConfig(mac="00:e8:ca:11:22:44"))
    netdev = host.vdpa.binding(NAME).virtio_netdev
    assert netdev is not None and host.links.get(netdev).mac == "00:e8:ca:11:22:44"


def test_delete(host: Host) -> None:
    host.vdpa.create(NAME, MGMT)
    host.vdpa.delete(NAME)
    assert host.vdpa.get(NAME) is None
    host.vdpa.delete(NAME)
    with pytest.raises(DeviceNotFound) as failure:
        host.vdpa.delete(NAME, missing_ok=False)
    assert failure.value.errno == errno.ENODEV


# --- binding ----------------------------------------------------------------------------------------------


def test_without_a_bus_driver_a_new_device_stays_unbound_until_one_loads(host: Host, kernel: SimKernel) -> None:
    host.vdpa.create(NAME, MGMT)
    assert host.vdpa.binding(NAME) == VdpaBinding(driver=None)
    assert not (kernel.sys_root / "bus/vdpa/drivers/virtio_vdpa").exists()
    host.modules.load("vhost_vdpa")
    assert host.vdpa.binding(NAME).driver == "vhost_vdpa"


def test_autoprobe_binds_the_first_loaded_bus_driver(tmp_path: Path) -> None:
    for first, second in (("virtio_vdpa", "vhost_vdpa"), ("vhost_vdpa", "virtio_vdpa")):
        _kernel, host = make(tmp_path / first)
        to_switchdev(host)
        host.modules.load(first)
        host.modules.load(second)
        host.vdpa.create(NAME, MGMT)
        assert host.vdpa.binding(NAME).driver == first


def test_virtio_binding_layout(host: Host, kernel: SimKernel) -> None:
    host.modules.load("virtio_vdpa")
    host.vdpa.create(NAME, MGMT, VdpaConfig(mac="00:e8:ca:11:22:44", mtu=1400))
    assert host.vdpa.binding(NAME) == VdpaBinding(driver="virtio_vdpa", virtio_netdev="eth0")
    assert host.vdpa.binding(NAME, virtio_netdev=False) == VdpaBinding(driver="virtio_vdpa")  # the poller's read
    sys = kernel.sys_root
    vf_dir = (sys / "bus/pci/devices" / VF).resolve()
    assert (sys / "bus/vdpa/devices" / NAME).resolve() == vf_dir / NAME
    assert os.readlink(vf_dir / NAME / "driver").endswith("bus/vdpa/drivers/virtio_vdpa")
    assert (sys / "bus/virtio/devices/virtio0").resolve() == vf_dir / "virtio0"
    assert os.listdir(vf_dir / "virtio0/net") == ["eth0"]
    assert (sys / "class/net/eth0").resolve() == vf_dir / "virtio0/net/eth0"
    link = host.links.get("eth0")
    assert (link.mac, link.mtu) == ("00:e8:ca:11:22:44", 1400)
    info = host.ethtool.driver_info("eth0")
    assert (info.driver, info.version, info.bus_info) == ("virtio_net", "1.0.0", NAME)
    assert host.ethtool.feature("eth0", "hw-tc-offload") is None


def test_virtio_netdev_mac_defaults_to_the_vf_admin_mac(host: Host) -> None:
    host.links.set_vf_mac("ens1f0", 2, "02:11:22:33:44:55")
    host.modules.load("virtio_vdpa")
    host.vdpa.create(NAME, MGMT)
    assert host.links.get("eth0").mac == "02:11:22:33:44:55"


def test_vhost_binding_gives_a_char_device_with_a_minor_of_its_own(host: Host, kernel: SimKernel) -> None:
    host.modules.load("vhost_vdpa")
    host.vdpa.create("vdpa:0000:65:00.5", VdpaMgmtDev("pci", "0000:65:00.5"))
    host.vdpa.create(NAME, MGMT)
    host.vdpa.delete("vdpa:0000:65:00.5")
    chardev = host.vdpa.binding(NAME).vhost_chardev
    assert chardev == str(kernel.dev_root / "vhost-vdpa-1")
    assert (kernel.sys_root / "bus/vdpa/devices" / NAME / "vhost-vdpa-1/dev").read_text() == "246:1\n"
    if os.geteuid() == 0:
        assert stat.S_ISCHR(os.stat(chardev).st_mode) and os.major(os.stat(chardev).st_rdev) == 246
    host.vdpa.create("vdpa:0000:65:00.5", VdpaMgmtDev("pci", "0000:65:00.5"))  # reuses the free minor 0
    assert host.vdpa.binding("vdpa:0000:65:00.5").vhost_chardev == str(kernel.dev_root / "vhost-vdpa-0")


def test_rebinding_moves_between_drivers_and_removes_what_the_old_one_gave(host: Host, kernel: SimKernel) -> None:
    host.modules.load("virtio_vdpa")
    host.modules.load("vhost_vdpa")
    host.vdpa.create(NAME, MGMT)
    host.vdpa.bind(NAME, VdpaDriver.VHOST)
    assert host.links.find("eth0") is None
    assert not (kernel.sys_root / "bus/virtio/devices/virtio0").exists()
    host.vdpa.bind(NAME, VdpaDriver.VIRTIO)
    assert host.vdpa.binding(NAME).virtio_netdev == "eth0"
    assert not list(kernel.dev_root.glob("vhost-vdpa-*"))
    assert (kernel.sys_root / "bus/vdpa/devices" / NAME / "driver_override").read_text() == "(null)\n"


def test_vdpa_bus_errno(host: Host, kernel: SimKernel) -> None:
    sysfs = SimSysfs(kernel)
    host.modules.load("virtio_vdpa")
    host.modules.load("vhost_vdpa")
    host.vdpa.create(NAME, MGMT)
    with pytest.raises(DeviceBusy):
        sysfs.write("bus/vdpa/drivers/vhost_vdpa/bind", NAME)
    with pytest.raises(DeviceNotFound):
        sysfs.write("bus/vdpa/drivers/vhost_vdpa/unbind", NAME)
    sysfs.write(f"bus/vdpa/devices/{NAME}/driver/unbind", NAME)
    sysfs.write(f"bus/vdpa/devices/{NAME}/driver_override", "vhost_vdpa")
    with pytest.raises(DeviceNotFound):  # the override names the other driver
        sysfs.write("bus/vdpa/drivers/virtio_vdpa/bind", NAME)
    sysfs.write("bus/vdpa/drivers_probe", NAME)
    assert host.vdpa.binding(NAME).driver == "vhost_vdpa"
    with pytest.raises(DeviceNotFound):
        sysfs.write("bus/vdpa/drivers_probe", "nosuch")


def test_bind_to_an_unloaded_driver_is_kernel_module_missing_and_keeps_the_binding(host: Host) -> None:
    host.modules.load("virtio_vdpa")
    host.vdpa.create(NAME, MGMT)
    with pytest.raises(KernelModuleMissing):
        host.vdpa.bind(NAME, VdpaDriver.VHOST)
    assert host.vdpa.binding(NAME).driver == "virtio_vdpa"


def test_drivers_autoprobe_zero_leaves_new_devices_unbound(host: Host, kernel: SimKernel) -> None:
    host.modules.load("virtio_vdpa")
    SimSysfs(kernel).write("bus/vdpa/drivers_autoprobe", "0")
    host.vdpa.create(NAME, MGMT)
    assert host.vdpa.binding(NAME).driver is None
    host.vdpa.bind(NAME, VdpaDriver.VIRTIO)
    assert host.vdpa.binding(NAME).virtio_netdev == "eth0"


# --- DEV_ATTR_SET / DEV_CONFIG_GET -----------------------------------------------------------------------


def test_net_config_shows_what_dev_new_set(host: Host) -> None:
    host.vdpa.create(NAME, MGMT, VdpaConfig(mac="00:E8:CA:11:22:44", mtu=9000, max_vqp=4))
    assert host.vdpa.net_config(NAME) == VdpaNetConfig(mac="00:e8:ca:11:22:44", mtu=9000, max_vqp=4, link_up=False)


def test_net_config_without_a_mac_has_none_and_the_link_follows_the_representor(host: Host) -> None:
    host.vdpa.create(NAME, MGMT)  # no MAC given, VF admin MAC zero: mlx5 does not offer VIRTIO_NET_F_MAC
    assert host.vdpa.net_config(NAME) == VdpaNetConfig(mac=None, mtu=1500, max_vqp=1, link_up=False)
    host.links.set_up("ens1f0_2")
    assert host.vdpa.net_config(NAME).link_up is True


def test_net_config_of_a_missing_device_is_enodev(host: Host) -> None:
    with pytest.raises(DeviceNotFound) as failure:
        host.vdpa.net_config(NAME)
    assert failure.value.errno == errno.ENODEV


def test_set_mac_changes_the_config_and_a_virtio_netdev_sees_it_after_a_rebind(host: Host) -> None:
    host.modules.load("virtio_vdpa")
    host.modules.load("vhost_vdpa")
    host.vdpa.create(NAME, MGMT, VdpaConfig(mac="00:e8:ca:11:22:44"))
    host.vdpa.set_mac(NAME, "00:E8:CA:11:22:55")
    assert host.vdpa.net_config(NAME).mac == "00:e8:ca:11:22:55"
    assert host.links.get("eth0").mac == "00:e8:ca:11:22:44"  # virtio_net read the MAC at probe
    host.vdpa.bind(NAME, VdpaDriver.VHOST)
    host.vdpa.bind(NAME, VdpaDriver.VIRTIO)
    netdev = host.vdpa.binding(NAME).virtio_netdev
    assert netdev is not None and host.links.get(netdev).mac == "00:e8:ca:11:22:55"


def test_set_mac_errno(host: Host, kernel: SimKernel) -> None:
    with pytest.raises(DeviceNotFound) as missing:
        host.vdpa.set_mac(NAME, "00:e8:ca:11:22:55")
    assert missing.value.errno == errno.ENODEV
    host.vdpa.create(NAME, MGMT)
    with pytest.raises(InvalidArgument):
        host.vdpa.set_mac(NAME, "00:e8:ca:11:22")
    with pytest.raises(OSError) as policy:  # the model's own check, as the attribute policy's
        kernel.vdpa_dev_attr_set(NAME, "00:e8:ca:11:22")
    assert policy.value.errno == errno.EINVAL
    kernel.faults.inject("vdpa_attr_set", errno=errno.EBUSY, target=NAME)
    with pytest.raises(DeviceBusy):
        host.vdpa.set_mac(NAME, "00:e8:ca:11:22:55")
    assert host.vdpa.net_config(NAME).mac is None


def test_a_kernel_without_attr_set_answers_eopnotsupp_before_anything_else(tmp_path: Path) -> None:
    kernel, host = make(tmp_path, vdpa_attr_set=False)
    to_switchdev(host)
    with pytest.raises(NotSupported) as missing_device:
        host.vdpa.set_mac(NAME, "00:e8:ca:11:22:55")  # unknown command: the device is never looked up
    assert missing_device.value.errno == errno.EOPNOTSUPP
    host.vdpa.create(NAME, MGMT, VdpaConfig(mac="00:e8:ca:11:22:44"))
    with pytest.raises(NotSupported) as failure:
        host.vdpa.set_mac(NAME, "00:e8:ca:11:22:55")
    assert "administrative MAC" in failure.value.hint
    assert host.vdpa.net_config(NAME).mac == "00:e8:ca:11:22:44"
    assert kernel.config.vdpa_attr_set is False


def test_without_the_vdpa_module_set_mac_and_net_config_name_the_module(tmp_path: Path) -> None:
    _kernel, host = make(tmp_path, modules=("mlx5_core",))
    with pytest.raises(KernelModuleMissing):
        host.vdpa.set_mac(NAME, "00:e8:ca:11:22:55")
    with pytest.raises(KernelModuleMissing):
        host.vdpa.net_config(NAME)


# --- what removes devices ---------------------------------------------------------------------------------


def test_deleting_removes_netdev_and_chardev(host: Host, kernel: SimKernel) -> None:
    host.modules.load("virtio_vdpa")
    host.vdpa.create(NAME, MGMT)
    host.vdpa.delete(NAME)
    assert host.links.find("eth0") is None
    assert not (kernel.sys_root / "bus/vdpa/devices" / NAME).exists()
    assert not (kernel.sys_root / "class/net/eth0").exists()


def test_unbinding_the_vf_removes_its_vdpa_device(host: Host) -> None:
    host.modules.load("virtio_vdpa")
    host.vdpa.create(NAME, MGMT)
    host.pci.unbind(pci_address(VF))
    assert host.vdpa.get(NAME) is None and host.links.find("eth0") is None


def test_unloading_a_bus_driver_unbinds_and_vdpa_in_use_cannot_go(host: Host, kernel: SimKernel) -> None:
    host.modules.load("virtio_vdpa")
    host.vdpa.create(NAME, MGMT)
    with pytest.raises(OSError) as in_use:
        kernel.unload_module("vdpa")
    assert in_use.value.errno == errno.EAGAIN
    kernel.unload_module("virtio_vdpa")
    assert host.vdpa.binding(NAME).driver is None and host.links.find("eth0") is None


def test_unprivileged_the_vhost_node_is_a_plain_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without root there is no mknod: /dev/vhost-vdpa-N is a file holding major:minor, still found by binding."""
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    kernel = SimKernel.create(tmp_path / "host")
    assert kernel.config.real_netdevs is False
    host = sim_host(kernel)
    to_switchdev(host)
    host.modules.load("vhost_vdpa")
    host.vdpa.create(NAME, MGMT)
    chardev = host.vdpa.binding(NAME).vhost_chardev
    assert chardev is not None and Path(chardev).read_text() == "246:0\n"
    assert stat.S_ISREG(os.stat(chardev).st_mode)
