"""Simulated netdevs through the Links and Ethtool ports, model only (host/sim/kernel/netdev.py and routes.py, rules
22–26, 31): lookup per
netns, renames, moves (and back to the node), MTU/MAC limits, addresses and routes, the VF administrative MAC,
driver info after a move, which netns exist."""

from __future__ import annotations

import errno

import pytest

from unit.host.sim_setup import to_switchdev
from vdpa_operator.host.errors import (
    AlreadyExists,
    DeviceNotFound,
    HostError,
    InvalidArgument,
    NotSupported,
)
from vdpa_operator.host.port import Host
from vdpa_operator.host.sim import SimKernel
from vdpa_operator.host.types import (
    Address,
    Route,
    VdpaConfig,
    VdpaMgmtDev,
    pci_address,
)

PF0 = pci_address("0000:65:00.0")
NAME = "vdpa:0000:65:00.4"
POD = "/var/run/netns/pod-a"


def virtio_netdev(host: Host, mac: str = "00:e8:ca:11:22:44") -> str:
    host.modules.load("virtio_vdpa")
    to_switchdev(host)
    host.vdpa.create(NAME, VdpaMgmtDev("pci", "0000:65:00.4"), VdpaConfig(mac=mac))
    netdev = host.vdpa.binding(NAME).virtio_netdev
    assert netdev is not None
    return netdev


def test_the_node_starts_with_lo_and_the_pf_netdevs(host: Host) -> None:
    links = host.links.list()
    assert [(link.index, link.name, link.admin_up, link.oper_state, link.link_type) for link in links] == [
        (1, "lo", True, "unknown", "loopback"), (2, "ens1f0", True, "up", "ether"), (3, "ens1f1", True, "up", "ether")]
    assert host.links.addresses("lo") == [Address("127.0.0.1", 8), Address("::1", 128)]
    assert host.ethtool.driver_info("ens1f0").driver == "mlx5_core"
    assert host.ethtool.driver_info("ens1f0").bus_info == "0000:65:00.0"
    with pytest.raises(NotSupported):
        host.ethtool.driver_info("lo")


def test_missing_links_are_enodev(host: Host) -> None:
    with pytest.raises(DeviceNotFound) as failure:
        host.links.get("nosuch0")
    assert failure.value.errno == errno.ENODEV
    assert host.links.find("nosuch0") is None
    assert host.links.find("ens1f0", netns=POD) is None


def test_mtu_limits(host: Host) -> None:
    host.links.set_mtu("ens1f0", 9978)
    for bad in (67, 9979):
        with pytest.raises(InvalidArgument):
            host.links.set_mtu("ens1f0", bad)
    assert host.links.get("ens1f0").mtu == 9978


def test_virtio_mtu_is_capped_at_the_device_mtu(host: Host) -> None:
    netdev = virtio_netdev(host)
    with pytest.raises(InvalidArgument):
        host.links.set_mtu(netdev, 1501)
    host.links.set_mtu(netdev, 1400)


def test_mac_rules(host: Host) -> None:
    host.links.set_mac("ens1f0", "02:00:00:00:00:01")
    assert host.links.get("ens1f0").mac == "02:00:00:00:00:01"
    with pytest.raises(HostError) as multicast:
        host.links.set_mac("ens1f0", "01:00:5e:00:00:01")
    assert multicast.value.errno == errno.EADDRNOTAVAIL
    virtio_netdev(host)
    with pytest.raises(NotSupported):  # mlx5 representors have no ndo_set_mac_address
        host.links.set_mac("ens1f0_2", "02:00:00:00:00:02")


def test_rename_rules(host: Host) -> None:
    with pytest.raises(AlreadyExists):
        host.links.rename("ens1f0", "ens1f1")
    for bad in ("", "a" * 16, "a/b", "a b", "a:b"):
        with pytest.raises(InvalidArgument):
            host.links.rename("ens1f0", bad)
    host.links.rename("ens1f0", "uplink0")  # up: renamed around a down/up
    assert host.links.get("uplink0").admin_up
    assert host.pci.get_function(PF0).netdevs == ("uplink0",)


def test_virtio_netdev_moves_into_a_pod_and_keeps_answering_ethtool(host: Host, kernel: SimKernel) -> None:
    netdev = virtio_netdev(host)
    host.links.add_address(netdev, Address("10.0.0.9", 24))
    host.links.move_to_netns(netdev, "pod-a")  # a name and its /var/run/netns path are one netns
    assert host.links.find(netdev) is None
    assert not (kernel.sys_root / "class/net" / netdev).exists()
    assert host.vdpa.binding(NAME).virtio_netdev is None  # sysfs no longer shows it
    moved = host.links.get(netdev, netns=POD)
    assert not moved.admin_up and host.links.addresses(netdev, netns=POD) == []
    host.links.rename(netdev, "eth0", netns=POD)
    host.links.set_up("eth0", netns=POD)
    host.links.add_address("eth0", Address("10.128.0.5", 24), netns=POD)
    info = host.ethtool.driver_info("eth0", netns=POD)
    assert (info.driver, info.bus_info) == ("virtio_net", NAME)
    assert [link.name for link in host.links.list(POD)] == ["lo", "eth0"]


def test_moving_back_onto_a_taken_name_is_eexist(host: Host) -> None:
    netdev = virtio_netdev(host)
    host.links.move_to_netns(netdev, POD)
    host.links.rename(netdev, "ens1f1", netns=POD)
    with pytest.raises(AlreadyExists, match="exists in the node netns"):
        host.links.move_to_netns("ens1f1", None, netns=POD)


def test_netns_exists_for_what_the_model_can_move_links_into(host: Host) -> None:
    """Model only: any name (or its /var/run/netns path) is a netns the model can use, and PID 1's is the node's
    own. Other paths, /proc/self/ns/net and files that are no netns: tests/contract/test_contract_netns.py."""
    assert host.links.netns_exists("pod-a") and host.links.netns_exists(POD)
    assert host.links.netns_exists("/proc/1/ns/net")


def test_representors_and_the_switchdev_uplink_stay_in_the_node_netns(host: Host) -> None:
    virtio_netdev(host)
    for name in ("ens1f0_2", "ens1f0"):
        with pytest.raises(InvalidArgument) as failure:
            host.links.move_to_netns(name, POD)
        assert failure.value.errno == errno.EINVAL
    host.links.move_to_netns("ens1f1", POD)  # legacy PF: movable


def test_move_into_a_netns_that_has_the_name_is_eexist(host: Host) -> None:
    host.pci.set_numvfs(PF0, 2)
    host.links.move_to_netns("ens1f0v0", POD)
    host.links.rename("ens1f0v1", "ens1f0v0x")
    host.links.rename("ens1f0v0x", "ens1f0v0")  # free again in the node netns
    with pytest.raises(AlreadyExists):
        host.links.move_to_netns("ens1f0v0", POD)


def test_move_with_a_new_name(host: Host) -> None:
    """As the kernel's move-then-rename: the current name may be taken in the target, the new one may not (then
    nothing moved)."""
    host.pci.set_numvfs(PF0, 2)
    host.links.set_up("ens1f0v0")
    host.links.move_to_netns("ens1f0v1", POD)
    host.links.move_to_netns("ens1f0v0", POD, new_name="net1")
    moved = host.links.get("net1", netns=POD)
    assert not moved.admin_up and host.links.find("ens1f0v0") is None
    host.links.move_to_netns("net1", None, netns=POD, new_name="ens1f0v1")  # free again in the node netns
    with pytest.raises(AlreadyExists, match="ens1f0v1 exists in netns"):
        host.links.move_to_netns("ens1f0v1", POD, new_name="ens1f0v1")
    assert host.links.find("ens1f0v1") is not None


def test_vf_and_virtio_carrier_follow_the_representor_in_switchdev(host: Host) -> None:
    netdev = virtio_netdev(host)
    host.links.set_up(netdev)
    assert host.links.get(netdev).oper_state == "down"
    host.links.set_up("ens1f0_2")
    assert host.links.get(netdev).oper_state == "up"


def test_addresses_and_connected_routes(host: Host) -> None:
    host.links.add_address("ens1f0", Address("192.168.7.2", 24))
    with pytest.raises(AlreadyExists):
        host.links.add_address("ens1f0", Address("192.168.7.2", 24))
    addresses = host.links.addresses("ens1f0")
    assert addresses[0] == Address("192.168.7.2", 24)
    assert addresses[-1].address.startswith("fe80::") and addresses[-1].prefixlen == 64
    routes = host.links.routes()
    assert Route("192.168.7.0/24", None, "ens1f0") in routes
    assert Route("fe80::/64", None, "ens1f0") in routes
    assert Route("::1/128", None, "lo") in routes


def test_static_routes(host: Host) -> None:
    host.links.add_address("ens1f0", Address("192.168.7.2", 24))
    host.links.add_route(Route("0.0.0.0/0", "192.168.7.1", None))
    assert Route("0.0.0.0/0", "192.168.7.1", "ens1f0") in host.links.routes()
    with pytest.raises(AlreadyExists):
        host.links.add_route(Route("0.0.0.0/0", "192.168.7.1", "ens1f0"))
    with pytest.raises(HostError) as unreachable:
        host.links.add_route(Route("10.0.0.0/8", "172.16.0.1", None))
    assert unreachable.value.errno == errno.ENETUNREACH
    with pytest.raises(InvalidArgument):
        host.links.add_route(Route("10.0.0.1/8", None, "ens1f0"))
    host.links.set_up("ens1f0", False)  # routes through a link go with it
    assert [r for r in host.links.routes() if r.dev == "ens1f0"] == []
    with pytest.raises(HostError) as down:
        host.links.add_route(Route("10.0.0.0/8", None, "ens1f0"))
    assert down.value.errno == errno.ENETDOWN


def test_vf_admin_macs(host: Host) -> None:
    host.pci.set_numvfs(PF0, 2)
    assert host.links.vf_macs("ens1f0") == {0: "00:00:00:00:00:00", 1: "00:00:00:00:00:00"}
    host.links.set_vf_mac("ens1f0", 1, "02:00:00:00:00:10")
    assert host.links.vf_macs("ens1f0")[1] == "02:00:00:00:00:10"
    for vf, mac in ((2, "02:00:00:00:00:11"), (0, "01:00:00:00:00:11"), (0, "nonsense")):
        with pytest.raises(InvalidArgument):
            host.links.set_vf_mac("ens1f0", vf, mac)
    host.pci.unbind(pci_address("0000:65:00.3"))
    host.pci.bind_default(pci_address("0000:65:00.3"))
    assert host.links.get("ens1f0v1").mac == "02:00:00:00:00:10"  # a re-probed VF takes its admin MAC


def test_netns_deleted_returns_physical_netdevs_to_the_node(host: Host, kernel: SimKernel) -> None:
    netdev = virtio_netdev(host)
    host.links.move_to_netns(netdev, POD)
    host.links.rename(netdev, "ens1f0", netns=POD)  # a name the node already uses
    kernel.netns_deleted(POD)
    returned = [link.name for link in host.links.list() if link.name.startswith("dev")]
    assert returned == ["dev0"]
    assert host.ethtool.driver_info("dev0").bus_info == NAME
    assert host.links.list(POD) and [link.name for link in host.links.list(POD)] == ["lo"]
