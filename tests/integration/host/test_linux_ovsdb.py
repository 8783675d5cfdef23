"""`OvsdbOvs` against a private ovsdb-server and userspace ovs-vswitchd, with `ovs-vsctl` as the oracle.

The daemons come from the `ovs_daemons` fixture (conftest.py / ovs_daemons.py); as root ovs-vswitchd runs in
its own network namespace, where the tests create the veths they add as ports. No test sends traffic: one
sets `hw-offload=true`, which breaks userspace forwarding until vswitchd restarts (research/ecosystem.md §4.2),
and it does so on daemons of its own.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from contract.wait import wait_until
from integration.host.ovs_daemons import OvsDaemons, running_ovs, unavailable
from vdpa_operator.host.errors import AlreadyExists, DeviceNotFound, HostError, KernelModuleMissing
from vdpa_operator.host.linux.ovsdb import OvsdbOvs, connect_ovs
from vdpa_operator.host.types import OvsPort

_OVS_MISSING = unavailable()
needs_ovs = pytest.mark.skipif(_OVS_MISSING is not None, reason=_OVS_MISSING or "")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: userspace bridges create tap devices")


@pytest.fixture
def client(ovs_daemons: OvsDaemons) -> Iterator[OvsdbOvs]:
    ovs = OvsdbOvs(ovs_daemons.remote, timeout=10)
    yield ovs
    ovs.close()


# --- connecting ------------------------------------------------------------------------------------------------


def test_connect_ovs_is_none_without_a_socket(tmp_path: Path) -> None:
    assert connect_ovs(f"unix:{tmp_path}/db.sock") is None


def test_missing_socket_is_a_host_error_with_a_hint(tmp_path: Path) -> None:
    ovs = OvsdbOvs(f"unix:{tmp_path}/db.sock", timeout=2)
    with pytest.raises(HostError) as raised:
        ovs.other_config()
    error = raised.value
    assert not isinstance(error, KernelModuleMissing)
    assert (error.op, error.target, error.errno) == ("connect to OVSDB", f"unix:{tmp_path}/db.sock", errno.ENOENT)
    assert "openvswitch-switch" in error.hint


def test_socket_without_a_server_is_a_host_error(tmp_path: Path) -> None:
    (tmp_path / "db.sock").touch()  # exists, but nothing listens
    ovs = connect_ovs(f"unix:{tmp_path}/db.sock", timeout=2)
    assert ovs is not None
    with pytest.raises(HostError, match="connect to OVSDB"):
        ovs.bridges()


# --- other_config ----------------------------------------------------------------------------------------------


@needs_ovs
def test_other_config_set_and_remove_round_trip(ovs_daemons: OvsDaemons, client: OvsdbOvs) -> None:
    client.set_other_config("vdpa-operator-test", "42")
    assert client.other_config()["vdpa-operator-test"] == "42"
    assert ovs_daemons.vsctl_map("Open_vSwitch", ".", "other_config")["vdpa-operator-test"] == "42"
    client.set_other_config("vdpa-operator-test", None)
    assert "vdpa-operator-test" not in client.other_config()
    assert "vdpa-operator-test" not in ovs_daemons.vsctl_map("Open_vSwitch", ".", "other_config")
    client.set_other_config("vdpa-operator-test", None)  # removing an absent key is nothing to do


@needs_ovs
def test_other_config_keeps_keys_set_by_others(ovs_daemons: OvsDaemons, client: OvsdbOvs) -> None:
    ovs_daemons.vsctl("set", "Open_vSwitch", ".", "other_config:set-by-someone-else=yes")
    client.set_other_config("vdpa-operator-test", "1")
    assert ovs_daemons.vsctl_map("Open_vSwitch", ".", "other_config") == {
        "set-by-someone-else": "yes", "vdpa-operator-test": "1"}
    client.set_other_config("vdpa-operator-test", None)
    assert client.other_config() == {"set-by-someone-else": "yes"}
    ovs_daemons.vsctl("remove", "Open_vSwitch", ".", "other_config", "set-by-someone-else")


@needs_ovs
def test_hw_offload_reads_back() -> None:
    # daemons of its own: hw-offload=true stays in effect in vswitchd until it restarts; no traffic here
    with running_ovs() as ovs, OvsdbOvs(ovs.remote) as client:
        client.set_other_config("hw-offload", "true")
        assert client.other_config()["hw-offload"] == "true"
        assert ovs.vsctl("get", "Open_vSwitch", ".", "other_config:hw-offload") == '"true"'
        client.set_other_config("hw-offload", None)
        assert "hw-offload" not in client.other_config()


@needs_ovs
def test_two_clients_of_two_servers_do_not_share_a_connection(ovs_daemons: OvsDaemons, client: OvsdbOvs) -> None:
    # ovsdbapp keeps its connection in a class attribute; each OvsdbOvs must talk to its own remote
    with running_ovs(vswitchd=False) as other, OvsdbOvs(other.remote) as other_client:
        other.vsctl("set", "Open_vSwitch", ".", "other_config:which=other")
        ovs_daemons.vsctl("set", "Open_vSwitch", ".", "other_config:which=first")
        assert other_client.other_config()["which"] == "other"
        assert client.other_config()["which"] == "first"
    ovs_daemons.vsctl("remove", "Open_vSwitch", ".", "other_config", "which")


@needs_ovs
def test_write_without_vswitchd_times_out_but_is_committed() -> None:
    with running_ovs(vswitchd=False) as ovs, OvsdbOvs(ovs.remote, timeout=1) as client:
        with pytest.raises(HostError) as raised:
            client.set_other_config("vdpa-operator-test", "1")
        assert raised.value.errno == errno.ETIMEDOUT and raised.value.temporary
        assert "ovs-vswitchd" in raised.value.hint
        assert ovs.vsctl("get", "Open_vSwitch", ".", "other_config:vdpa-operator-test") == '"1"'


@needs_ovs
def test_close_stops_the_connection_and_the_next_call_reconnects(ovs_daemons: OvsDaemons) -> None:
    ovs = OvsdbOvs(ovs_daemons.remote)
    ovs.other_config()
    thread = ovs._api.ovsdb_connection.thread
    ovs.close()
    assert not thread.is_alive()
    assert isinstance(ovs.bridges(), list)
    ovs.close()


# --- bridges and ports -----------------------------------------------------------------------------------------

BRIDGE = "vt-br0"


@pytest.fixture
def bridge(ovs_daemons: OvsDaemons, client: OvsdbOvs) -> Iterator[str]:
    client.add_bridge(BRIDGE, datapath_type="netdev")
    yield BRIDGE
    ovs_daemons.vsctl("--if-exists", "del-br", BRIDGE)


@pytest.fixture
def veth(ovs_daemons: OvsDaemons) -> Iterator[str]:
    """A veth end in the namespace ovs-vswitchd runs in, so it can open it."""
    ovs_daemons.ip("link", "add", "vt-p0", "type", "veth", "peer", "name", "vt-q0")
    ovs_daemons.ip("link", "set", "vt-p0", "up")
    yield "vt-p0"
    ovs_daemons.run("ip", *(["-n", ovs_daemons.netns] if ovs_daemons.netns else []), "link", "del", "vt-p0",
                    check=False)


@needs_ovs
@needs_root
def test_bridge_add_list_delete(ovs_daemons: OvsDaemons, client: OvsdbOvs) -> None:
    client.add_bridge(BRIDGE, datapath_type="netdev")
    try:
        assert BRIDGE in client.bridges()
        assert ovs_daemons.vsctl("list-br").split() == client.bridges()
        assert ovs_daemons.vsctl("get", "Bridge", BRIDGE, "datapath_type") == "netdev"
        client.add_bridge(BRIDGE, datapath_type="netdev")  # may_exist
        with pytest.raises(AlreadyExists):
            client.add_bridge(BRIDGE, may_exist=False)
        assert client.ports(BRIDGE) == []  # the bridge's own port is not listed
    finally:
        client.delete_bridge(BRIDGE)
    assert BRIDGE not in client.bridges()
    assert BRIDGE not in ovs_daemons.vsctl("list-br").split()
    client.delete_bridge(BRIDGE)
    with pytest.raises(DeviceNotFound, match="delete OVS bridge vt-br0 failed"):
        client.delete_bridge(BRIDGE, missing_ok=False)


@needs_ovs
@needs_root
def test_port_with_external_ids_on_the_interface(
    ovs_daemons: OvsDaemons, client: OvsdbOvs, bridge: str, veth: str
) -> None:
    ids = {"iface-id": "default_pod-a", "iface-id-ver": "1234", "vf-netdev-name": "eth5"}
    client.add_port(bridge, veth, external_ids=ids)
    assert client.ports(bridge) == [OvsPort(veth, bridge, ids)]
    assert client.ports() == [OvsPort(veth, bridge, ids)]
    assert ovs_daemons.vsctl("list-ports", bridge).split() == [veth]
    assert ovs_daemons.vsctl_map("Interface", veth, "external_ids") == ids
    assert ovs_daemons.vsctl_map("Port", veth, "external_ids") == {}
    assert int(ovs_daemons.vsctl("get", "Interface", veth, "ofport")) > 0  # vswitchd really opened it

    client.add_port(bridge, veth, external_ids={"iface-id-ver": "5678"})  # may_exist: ids merged
    assert client.ports(bridge)[0].external_ids == {**ids, "iface-id-ver": "5678"}
    with pytest.raises(AlreadyExists):
        client.add_port(bridge, veth, may_exist=False)

    client.delete_port(veth)
    assert client.ports(bridge) == []
    assert ovs_daemons.vsctl("list-ports", bridge) == ""
    client.delete_port(veth)
    with pytest.raises(DeviceNotFound):
        client.delete_port(veth, missing_ok=False)


@needs_ovs
@needs_root
def test_port_row_interface_row_and_their_columns_are_one_transaction(
    ovs_daemons: OvsDaemons, client: OvsdbOvs, bridge: str, veth: str
) -> None:
    """OVN-Kubernetes' `--may-exist add-port br-int REP other_config:transient=true -- set interface REP
    external_ids:… mtu_request=…`: ovn-controller must never see the Interface without its iface-id."""
    ids = {"iface-id": "default_pod-a", "iface-id-ver": "1234", "attached_mac": "0a:58:0a:80:00:05"}
    client.add_port(bridge, veth, external_ids=ids, port_other_config={"transient": "true"}, mtu_request=1400)
    assert client.ports(bridge) == [OvsPort(veth, bridge, ids, {"transient": "true"}, 1400)]
    assert ovs_daemons.vsctl_map("Port", veth, "other_config") == {"transient": "true"}
    assert ovs_daemons.vsctl_map("Interface", veth, "external_ids") == ids
    assert ovs_daemons.vsctl("get", "Interface", veth, "mtu_request") == "1400"
    insert = [t for t in ovs_daemons.transactions() if f'table Port insert row "{veth}"' in t][-1]
    assert f'table Interface insert row "{veth}"' in insert
    assert "mtu_request=1400" in insert and 'other_config={transient="true"}' in insert
    assert "iface-id=default_pod-a" in insert
    assert wait_until(lambda: ovs_daemons.vsctl("get", "Interface", veth, "mtu") == "1400",
                      what="vswitchd applying mtu_request")  # it reached the veth

    before = len(ovs_daemons.transactions())
    client.add_port(bridge, veth, external_ids={"iface-id-ver": "5678"}, port_other_config={"extra": "1"},
                    mtu_request=1300)  # may_exist: merged, in one more transaction
    (port,) = client.ports(bridge)
    assert port.external_ids == {**ids, "iface-id-ver": "5678"}
    assert port.other_config == {"transient": "true", "extra": "1"} and port.mtu_request == 1300
    update = [t for t in ovs_daemons.transactions()[before:] if "iface-id-ver=" in t]
    assert len(update) == 1 and 'table Port row' in update[0] and "mtu_request=1300" in update[0]


@needs_ovs
@needs_root
def test_interface_external_ids(client: OvsdbOvs, bridge: str, veth: str) -> None:
    assert client.interface_external_ids(veth) is None
    client.add_port(bridge, veth, external_ids={"iface-id": "ns_pod", "sandbox": "abc"})
    assert client.interface_external_ids(veth) == {"iface-id": "ns_pod", "sandbox": "abc"}
    client.add_port(bridge, "vt-nosuch1")  # an interface vswitchd cannot open still has its row
    assert client.interface_external_ids("vt-nosuch1") == {}
    mtu_requests = {port.name: port.mtu_request for port in client.ports(bridge)}
    assert mtu_requests == {veth: None, "vt-nosuch1": None}  # unset, not 0
    client.delete_port("vt-nosuch1")
    assert client.interface_external_ids("vt-nosuch1") is None


@needs_ovs
def test_open_vswitch_external_ids(ovs_daemons: OvsDaemons, client: OvsdbOvs) -> None:
    ovs_daemons.vsctl("set", "Open_vSwitch", ".", "external_ids:ovn-remote=tcp:192.0.2.10:6642",
                      "external_ids:ovn-encap-ip=192.0.2.21")
    try:
        assert wait_until(lambda: client.external_ids().get("ovn-encap-ip") == "192.0.2.21", what="the IDL update")
        ours = {k: v for k, v in client.external_ids().items() if k.startswith("ovn-")}
        assert ours == {"ovn-remote": "tcp:192.0.2.10:6642", "ovn-encap-ip": "192.0.2.21"}
        assert client.external_ids() == ovs_daemons.vsctl_map("Open_vSwitch", ".", "external_ids")
    finally:
        ovs_daemons.vsctl("remove", "Open_vSwitch", ".", "external_ids", "ovn-remote", "ovn-encap-ip")


@needs_ovs
@needs_root
def test_port_on_another_bridge_or_a_missing_bridge(
    ovs_daemons: OvsDaemons, client: OvsdbOvs, bridge: str, veth: str
) -> None:
    client.add_port(bridge, veth)
    client.add_bridge("vt-br1", datapath_type="netdev")
    try:
        with pytest.raises(AlreadyExists, match="exists on bridge vt-br0"):
            client.add_port("vt-br1", veth)
    finally:
        client.delete_bridge("vt-br1")
    with pytest.raises(DeviceNotFound, match="OVS bridge vt-nobr"):
        client.add_port("vt-nobr", "vt-x0")
    with pytest.raises(DeviceNotFound):
        client.ports("vt-nobr")
    client.delete_port(veth)


@needs_ovs
@needs_root
def test_port_of_a_missing_netdev_is_added_with_a_warning(
    client: OvsdbOvs, bridge: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="vdpa_operator.host.linux.ovsdb"):
        client.add_port(bridge, "vt-nosuch0", external_ids={"iface-id": "x"})
    assert [p.name for p in client.ports(bridge)] == ["vt-nosuch0"]
    assert any("vt-nosuch0" in r.getMessage() and "No such device" in r.getMessage() for r in caplog.records)
    client.delete_port("vt-nosuch0")
