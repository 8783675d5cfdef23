"""OVSDB through the Host port: hw-offload in other_config, bridges, and ports whose Interface rows carry
external_ids and mtu_request and whose Port rows carry other_config. The kernel bed runs ovs-vswitchd with the
kernel datapath in the guest; the sim bed uses a userspace (netdev) datapath on the host, where the openvswitch
module is absent."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from pyroute2 import IPRoute  # type: ignore[import-untyped]

from contract.beds import OVS_KERNEL_DATAPATH, Bed
from vdpa_operator.host.port import Ovs

pytestmark = pytest.mark.ovs


@pytest.fixture
def ovs(bed: Bed) -> Ovs:
    if bed.ovs is None:
        pytest.skip(f"{bed.name} bed has no running ovs-vswitchd")
    return bed.ovs


@pytest.fixture
def scratch_link() -> Iterator[str]:
    """A veth end for vswitchd to open (a port must be a real device; this host kernel has no dummy driver).
    Test scaffolding, not product code."""
    name = "vdpa-t" + uuid.uuid4().hex[:8]
    with IPRoute() as ipr:
        ipr.link("add", ifname=name, kind="veth", peer={"ifname": name + "p"})
    try:
        yield name
    finally:
        with IPRoute() as ipr:
            for index in ipr.link_lookup(ifname=name):
                ipr.link("del", index=index)


def datapath_type(bed: Bed) -> str:
    return "netdev" if OVS_KERNEL_DATAPATH in bed.cannot_show else "system"


def test_hw_offload_is_written_read_and_removed(ovs: Ovs) -> None:
    ovs.set_other_config("hw-offload", "true")
    assert ovs.other_config().get("hw-offload") == "true"
    ovs.set_other_config("hw-offload", None)
    assert "hw-offload" not in ovs.other_config()


def test_port_with_external_ids_on_a_bridge(bed: Bed, ovs: Ovs, scratch_link: str) -> None:
    bridge = "br-" + scratch_link[-6:]
    ovs.add_bridge(bridge, datapath_type=datapath_type(bed))
    try:
        assert bridge in ovs.bridges()
        ids = {"iface-id": "ns_pod", "iface-id-ver": "1234", "vf-netdev-name": "eth0", "sandbox": "abc"}
        ovs.add_port(bridge, scratch_link, external_ids=ids)
        ports = {p.name: p for p in ovs.ports(bridge)}
        assert scratch_link in ports and ports[scratch_link].bridge == bridge
        assert ports[scratch_link].external_ids == ids
        ovs.add_port(bridge, scratch_link, external_ids=ids)  # may_exist: no error, no duplicate
        assert [p.name for p in ovs.ports(bridge)].count(scratch_link) == 1
        ovs.delete_port(scratch_link)
        assert scratch_link not in [p.name for p in ovs.ports(bridge)]
        ovs.delete_port(scratch_link)  # missing_ok
    finally:
        ovs.delete_bridge(bridge)
    assert bridge not in ovs.bridges()


def test_port_with_other_config_mtu_request_and_external_ids(bed: Bed, ovs: Ovs, scratch_link: str) -> None:
    """What OVN-Kubernetes writes for a representor: `transient=true` on the Port, ids and MTU on the Interface."""
    bridge = "br-" + scratch_link[-6:]
    ovs.add_bridge(bridge, datapath_type=datapath_type(bed))
    try:
        ids = {"iface-id": "ns_pod", "iface-id-ver": "1234", "attached_mac": "0a:58:0a:80:00:05"}
        assert ovs.interface_external_ids(scratch_link) is None
        ovs.add_port(bridge, scratch_link, external_ids=ids, port_other_config={"transient": "true"},
                     mtu_request=1400)
        (port,) = ovs.ports(bridge)
        assert (port.name, port.external_ids, port.other_config, port.mtu_request) == (
            scratch_link, ids, {"transient": "true"}, 1400)
        assert ovs.interface_external_ids(scratch_link) == ids
        ovs.add_port(bridge, scratch_link, external_ids={"iface-id-ver": "5678"}, mtu_request=1500)
        (port,) = ovs.ports(bridge)
        assert port.external_ids == {**ids, "iface-id-ver": "5678"} and port.mtu_request == 1500
        assert port.other_config == {"transient": "true"}
        ovs.delete_port(scratch_link)
        assert ovs.interface_external_ids(scratch_link) is None
    finally:
        ovs.delete_bridge(bridge)
