"""vDPA through the Host port, one assertion set for the simulated mlx5 VF and for vdpa_sim_net on the real
kernel: management devices, create/get/delete with the kernel's errno, the net config read back and the MAC
changed after creation (or refused by a kernel without DEV_ATTR_SET), binding to virtio_vdpa (a virtio_net
netdev whose bus-info is the device name, movable into a pod netns as eth0 and back to the host) and to
vhost_vdpa (a char device, found under /dev through the DevNodes port)."""

from __future__ import annotations

import errno
import os
import re
import stat

import pytest

from contract.beds import VDPA_ATTR_SET, VDPA_ONE_PER_VF, Bed, require
from contract.wait import wait_until
from vdpa_operator.host.errors import AlreadyExists, DeviceNotFound, InvalidArgument, NoSpace, NotSupported
from vdpa_operator.host.port import Vdpa
from vdpa_operator.host.types import Address, VdpaBinding, VdpaConfig, VdpaDriver, VdpaMgmtDev

MAC = "00:e8:ca:11:22:44"
OTHER_MAC = "00:e8:ca:11:22:55"


@pytest.fixture
def vdpa(bed: Bed) -> Vdpa:
    bed.vdpa.prepare()
    return bed.host.vdpa


def same_mgmtdev(a: VdpaMgmtDev, b: VdpaMgmtDev) -> bool:
    return (a.bus, a.name) == (b.bus, b.name)


def bound(bed: Bed, driver: VdpaDriver) -> VdpaBinding:
    bed.host.vdpa.bind(bed.vdpa.device_name, driver)
    ready = (lambda b: b.virtio_netdev) if driver == VdpaDriver.VIRTIO else (lambda b: b.vhost_chardev)
    return wait_until(lambda: (b := bed.host.vdpa.binding(bed.vdpa.device_name)) and ready(b) and b,
                      what=f"{bed.vdpa.device_name} bound to {driver}")


def test_management_device_is_listed(bed: Bed, vdpa: Vdpa) -> None:
    assert any(same_mgmtdev(m, bed.vdpa.mgmtdev) for m in vdpa.mgmtdevs()), vdpa.mgmtdevs()


def test_create_get_delete(bed: Bed, vdpa: Vdpa) -> None:
    name = bed.vdpa.device_name
    created = vdpa.create(name, bed.vdpa.mgmtdev, VdpaConfig(mac=MAC))
    assert created.name == name and same_mgmtdev(created.mgmtdev, bed.vdpa.mgmtdev)
    assert created.device_id == 1  # virtio net
    assert name in [d.name for d in vdpa.devices()]
    got = vdpa.get(name)
    assert got is not None and same_mgmtdev(got.mgmtdev, bed.vdpa.mgmtdev)
    vdpa.delete(name)
    assert vdpa.get(name) is None
    assert name not in [d.name for d in vdpa.devices()]


def test_delete_of_a_missing_device_is_nothing_to_do(bed: Bed, vdpa: Vdpa) -> None:
    vdpa.delete(bed.vdpa.device_name)
    with pytest.raises(DeviceNotFound) as failure:
        vdpa.delete(bed.vdpa.device_name, missing_ok=False)
    assert bed.vdpa.device_name in str(failure.value)


def test_duplicate_name_is_eexist(bed: Bed, vdpa: Vdpa) -> None:
    """On mlx5 the same name on the *same* VF is ENOSPC (one device per VF is checked first), so the duplicate
    goes to another management device where the bed has one."""
    vdpa.create(bed.vdpa.device_name, bed.vdpa.mgmtdev)
    with pytest.raises(AlreadyExists) as failure:
        vdpa.create(bed.vdpa.device_name, bed.vdpa.other_mgmtdev)
    assert failure.value.errno == 17


def test_unknown_management_device_is_enodev(bed: Bed, vdpa: Vdpa) -> None:
    with pytest.raises(DeviceNotFound):
        vdpa.create(bed.vdpa.device_name, VdpaMgmtDev("pci", "0000:ff:1f.7"))
    assert vdpa.get(bed.vdpa.device_name) is None


def test_upstream_create_with_max_vqp_32_succeeds(bed: Bed, vdpa: Vdpa) -> None:
    """Upstream asks for max_vqp 32; where the management device lacks the attribute (vdpa_sim_net, older
    mlx5) the kernel answers EOPNOTSUPP and the adapter retries without it."""
    created = vdpa.create(bed.vdpa.device_name, bed.vdpa.mgmtdev, VdpaConfig(max_vqp=32))
    assert created.name == bed.vdpa.device_name


def test_one_device_per_vf(bed: Bed, vdpa: Vdpa) -> None:
    require(bed, VDPA_ONE_PER_VF)
    vdpa.create(bed.vdpa.device_name, bed.vdpa.mgmtdev)
    with pytest.raises(NoSpace):
        vdpa.create(bed.vdpa.device_name + "-second", bed.vdpa.mgmtdev)


def test_virtio_binding_gives_a_virtio_net_netdev_that_moves_into_a_pod(bed: Bed, vdpa: Vdpa) -> None:
    name = bed.vdpa.device_name
    vdpa.create(name, bed.vdpa.mgmtdev, VdpaConfig(mac=MAC))
    binding = bound(bed, VdpaDriver.VIRTIO)
    assert binding.driver == "virtio_vdpa" and binding.vdpa_type == "virtio"
    netdev = binding.virtio_netdev
    assert netdev is not None
    info = bed.host.ethtool.driver_info(netdev)
    assert (info.driver, info.bus_info) == ("virtio_net", name)
    assert bed.host.links.get(netdev).mac == MAC

    pod = bed.new_netns()
    bed.host.links.move_to_netns(netdev, pod)
    assert bed.host.links.find(netdev) is None
    bed.host.links.rename(netdev, "eth0", netns=pod)
    bed.host.links.set_up("eth0", netns=pod)
    eth0 = bed.host.links.get("eth0", netns=pod)
    assert eth0.admin_up and eth0.mac == MAC
    info = bed.host.ethtool.driver_info("eth0", netns=pod)
    assert (info.driver, info.bus_info) == ("virtio_net", name)


@pytest.mark.parametrize("host_netns", [None, "/proc/1/ns/net", "/proc/self/ns/net"])
def test_a_pod_netdev_goes_back_to_the_host_netns(bed: Bed, vdpa: Vdpa, host_netns: str | None) -> None:
    """CNI DEL: link down, the original name back, then into the host's own netns (None, or PID 1's or this
    process's netns path: the test runs there, as a hostNetwork CNI does). It arrives down, with no address."""
    name = bed.vdpa.device_name
    vdpa.create(name, bed.vdpa.mgmtdev, VdpaConfig(mac=MAC))
    netdev = bound(bed, VdpaDriver.VIRTIO).virtio_netdev
    assert netdev is not None
    pod = bed.new_netns()
    links = bed.host.links
    links.move_to_netns(netdev, pod)
    links.rename(netdev, "eth0", netns=pod)
    links.set_up("eth0", netns=pod)
    links.add_address("eth0", Address("10.128.0.5", 24), netns=pod)
    links.set_up("eth0", False, netns=pod)
    links.rename("eth0", netdev, netns=pod)
    links.move_to_netns(netdev, host_netns, netns=pod)
    assert links.find(netdev, netns=pod) is None
    back = links.get(netdev)
    assert back.mac == MAC and not back.admin_up
    assert links.addresses(netdev) == []
    assert vdpa.binding(name).virtio_netdev == netdev  # sysfs shows it again


def test_net_config_shows_what_the_device_was_created_with(bed: Bed, vdpa: Vdpa) -> None:
    name = bed.vdpa.device_name
    vdpa.create(name, bed.vdpa.mgmtdev, VdpaConfig(mac=MAC, mtu=1400))
    config = vdpa.net_config(name)
    assert (config.mac, config.mtu) == (MAC, 1400)
    with pytest.raises(DeviceNotFound):
        vdpa.net_config(name + "-absent")


def test_set_mac_takes_effect_where_the_kernel_has_attr_set(bed: Bed, vdpa: Vdpa) -> None:
    """Either net_config shows the new MAC, or (before Linux 6.12) NotSupported and the MAC is unchanged."""
    name = bed.vdpa.device_name
    vdpa.create(name, bed.vdpa.mgmtdev, VdpaConfig(mac=MAC))
    with pytest.raises(InvalidArgument):  # checked before anything is sent, whatever the kernel
        vdpa.set_mac(name, "00:e8:ca:11:22")
    if VDPA_ATTR_SET in bed.cannot_show:
        with pytest.raises(NotSupported) as refused:
            vdpa.set_mac(name, OTHER_MAC)
        assert refused.value.errno == errno.EOPNOTSUPP
        assert vdpa.net_config(name).mac == MAC
        return
    vdpa.set_mac(name, OTHER_MAC)
    assert vdpa.net_config(name).mac == OTHER_MAC
    with pytest.raises(DeviceNotFound):
        vdpa.set_mac(name + "-absent", OTHER_MAC)


def test_vhost_binding_gives_a_char_device(bed: Bed, vdpa: Vdpa) -> None:
    vdpa.create(bed.vdpa.device_name, bed.vdpa.mgmtdev)
    binding = bound(bed, VdpaDriver.VHOST)
    assert binding.driver == "vhost_vdpa" and binding.vdpa_type == "vhost"
    assert binding.vhost_chardev is not None
    assert re.fullmatch(r"vhost-vdpa-\d+", os.path.basename(binding.vhost_chardev))
    assert os.path.exists(binding.vhost_chardev)
    if bed.name == "kernel" or os.geteuid() == 0:
        assert stat.S_ISCHR(os.stat(binding.vhost_chardev).st_mode)


def test_the_vhost_char_device_is_a_dev_node_while_bound(bed: Bed, vdpa: Vdpa) -> None:
    """What the device plugin asks before mounting the node into a pod."""
    vdpa.create(bed.vdpa.device_name, bed.vdpa.mgmtdev)
    chardev = bound(bed, VdpaDriver.VHOST).vhost_chardev
    assert chardev is not None
    name = os.path.basename(chardev)
    assert bed.host.dev.char_device(name) == chardev
    assert bed.host.dev.char_device("vhost-vdpa-no-such-node") is None
    vdpa.delete(bed.vdpa.device_name)
    assert bed.host.dev.char_device(name) is None


def test_rebinding_virtio_to_vhost_removes_the_netdev(bed: Bed, vdpa: Vdpa) -> None:
    vdpa.create(bed.vdpa.device_name, bed.vdpa.mgmtdev)
    netdev = bound(bed, VdpaDriver.VIRTIO).virtio_netdev
    assert netdev is not None
    binding = bound(bed, VdpaDriver.VHOST)
    assert binding.driver == "vhost_vdpa" and binding.virtio_netdev is None
    assert bed.host.links.find(netdev) is None


def test_deleting_a_bound_device_removes_what_it_gave(bed: Bed, vdpa: Vdpa) -> None:
    vdpa.create(bed.vdpa.device_name, bed.vdpa.mgmtdev)
    chardev = bound(bed, VdpaDriver.VHOST).vhost_chardev
    vdpa.delete(bed.vdpa.device_name)
    assert chardev is not None and not os.path.exists(chardev)
