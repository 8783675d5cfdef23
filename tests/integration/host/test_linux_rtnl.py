"""RtnlLinks against the real kernel, inside private network namespaces, with `ip -j` as the oracle.

Covers every `Links` method: listing and lookup (by name and by alternative name), admin state, MTU, MAC,
rename of a running link, moves between namespaces (by name and by path) and back to the adapter's own,
addresses, routes, the VF calls on a netdev without VFs, which paths are network namespaces, the errno
mapping, and that a missing netns is reported rather than created.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from integration.host.linux_netns import ip_json, ip_link, needs_root, private_netns, run, unique_name
from vdpa_operator.host.errors import AlreadyExists, DeviceNotFound, HostError, InvalidArgument, NotSupported
from vdpa_operator.host.linux.rtnl import RtnlLinks
from vdpa_operator.host.linux.sysfs import Sysfs
from vdpa_operator.host.types import Address, Route, SwitchPort

LONG_ALTNAME = "vdpa-test-alternative-name-0"


@pytest.fixture
def links() -> RtnlLinks:
    return RtnlLinks(Sysfs())


@pytest.fixture
def ns() -> Iterator[str]:
    """A netns holding the veth pair `v0`–`v1` (both down, MTU 1500)."""
    with private_netns() as name:
        run("ip", "-n", name, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
        yield name


@pytest.fixture
def ns2() -> Iterator[str]:
    with private_netns() as name:
        yield name


# --- reading ----------------------------------------------------------------------------------------------------


@needs_root
def test_list_matches_ip_link(links: RtnlLinks, ns: str) -> None:
    listed = {link.name: link for link in links.list(ns)}
    oracle = {link["ifname"]: link for link in ip_json("link", "show", netns=ns)}
    assert set(listed) == set(oracle) == {"lo", "v0", "v1"}
    for name, link in listed.items():
        assert link.index == oracle[name]["ifindex"]
        assert link.mtu == oracle[name]["mtu"]
        assert link.mac == oracle[name]["address"]
        assert link.oper_state == oracle[name]["operstate"].lower()
        assert link.link_type == oracle[name]["link_type"]
    assert listed["v0"].kind == "veth"
    assert listed["lo"].kind == ""
    assert [link.index for link in links.list(ns)] == sorted(link.index for link in listed.values())


@needs_root
def test_get_by_name_and_by_alternative_names(links: RtnlLinks, ns: str) -> None:
    altnames_supported = subprocess.run(
        ["ip", "-n", ns, "link", "property", "add", "dev", "v0", "altname", LONG_ALTNAME, "altname", "v0alt"],
        capture_output=True, check=False).returncode == 0
    if not altnames_supported:
        pytest.skip("this kernel or iproute2 has no alternative interface names")
    link = links.get("v0", ns)
    assert link.altnames == (LONG_ALTNAME, "v0alt")
    assert links.get(LONG_ALTNAME, ns) == link  # longer than IFNAMSIZ: looked up as IFLA_ALT_IFNAME
    assert links.get("v0alt", ns) == link


@needs_root
def test_missing_link_is_device_not_found(links: RtnlLinks, ns: str) -> None:
    with pytest.raises(DeviceNotFound) as info:
        links.get("nosuch0", ns)
    assert info.value.errno == errno.ENODEV
    assert "nosuch0" in str(info.value)
    assert links.find("nosuch0", ns) is None
    assert links.find("v1", ns) is not None
    with pytest.raises(DeviceNotFound):
        links.set_mtu("nosuch0", 1400, ns)


@needs_root
def test_missing_netns_is_reported_and_not_created(links: RtnlLinks) -> None:
    name = unique_name()
    with pytest.raises(DeviceNotFound) as info:
        links.list(name)
    assert name in str(info.value)
    assert not os.path.exists(f"/var/run/netns/{name}")


@needs_root
def test_netns_by_path(links: RtnlLinks, ns: str) -> None:
    assert links.get("v0", f"/var/run/netns/{ns}").name == "v0"


@needs_root
def test_netns_of_a_process(links: RtnlLinks) -> None:
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed")
    process = subprocess.Popen(["unshare", "--net", "sleep", "60"])
    try:
        path = f"/proc/{process.pid}/ns/net"
        for _ in range(100):  # until unshare has exec'd sleep in the new netns
            if os.readlink(path) != os.readlink("/proc/self/ns/net"):
                break
            subprocess.run(["sleep", "0.02"], check=False)
        assert [link.name for link in links.list(path)] == ["lo"]
        assert links.netns_exists(path)
    finally:
        process.kill()
        process.wait()


@needs_root
def test_vf_calls_on_a_netdev_without_vfs(links: RtnlLinks, ns: str) -> None:
    assert links.vf_macs("v0", ns) == {}
    with pytest.raises(NotSupported) as info:
        links.set_vf_mac("v0", 0, "02:00:00:00:00:01", ns)
    assert "VF 0" in str(info.value)


# --- changing ---------------------------------------------------------------------------------------------------


@needs_root
def test_set_up_and_down(links: RtnlLinks, ns: str) -> None:
    links.set_up("v0", netns=ns)
    assert links.get("v0", ns).admin_up
    assert "UP" in ip_link("v0", ns)["flags"]  # type: ignore[index]
    links.set_up("v0", False, ns)
    assert not links.get("v0", ns).admin_up
    assert "UP" not in ip_link("v0", ns)["flags"]  # type: ignore[index]


@needs_root
def test_set_mtu_and_an_invalid_mtu(links: RtnlLinks, ns: str) -> None:
    links.set_mtu("v0", 9000, ns)
    assert links.get("v0", ns).mtu == 9000 == ip_link("v0", ns)["mtu"]  # type: ignore[index]
    with pytest.raises(InvalidArgument) as info:
        links.set_mtu("v0", 100000, ns)
    assert str(info.value).startswith(f"set mtu 100000 on v0 (netns {ns}) failed: EINVAL")


@needs_root
def test_set_mac(links: RtnlLinks, ns: str) -> None:
    links.set_mac("v0", "02:00:00:C0:FF:EE", ns)
    assert links.get("v0", ns).mac == "02:00:00:c0:ff:ee" == ip_link("v0", ns)["address"]  # type: ignore[index]


@needs_root
def test_rename_a_running_link_keeps_it_up(links: RtnlLinks, ns: str) -> None:
    links.set_up("v0", netns=ns)
    index = links.get("v0", ns).index
    links.rename("v0", "net1", ns)
    renamed = links.get("net1", ns)
    assert (renamed.index, renamed.admin_up) == (index, True)
    assert links.find("v0", ns) is None
    assert ip_link("net1", ns) is not None


@needs_root
def test_rename_to_a_taken_name_restores_the_admin_state(links: RtnlLinks, ns: str) -> None:
    links.set_up("v0", netns=ns)
    with pytest.raises(AlreadyExists):
        links.rename("v0", "v1", ns)
    assert links.get("v0", ns).admin_up


@needs_root
def test_move_between_namespaces(links: RtnlLinks, ns: str, ns2: str) -> None:
    links.move_to_netns("v1", ns2, ns)
    assert links.find("v1", ns) is None
    assert links.get("v1", ns2).kind == "veth"
    assert ip_link("v1", ns2) is not None
    links.move_to_netns("v1", f"/var/run/netns/{ns}", ns2)  # target as a path
    assert links.find("v1", ns) is not None
    assert links.find("v1", ns2) is None


@needs_root
def test_move_back_to_the_adapters_own_netns(ns: str, ns2: str) -> None:
    """`target` None is the netns of the process running the adapter (here a private one, `ns2`), not PID 1's:
    the adapter opens /proc/self/ns/net before pyroute2 enters the pod netns."""
    run("ip", "-n", ns, "link", "set", "v1", "name", "net1")
    script = ("from vdpa_operator.host.linux.rtnl import RtnlLinks; from vdpa_operator.host.linux.sysfs import Sysfs;"
              f"RtnlLinks(Sysfs()).move_to_netns('net1', None, netns={ns!r})")
    run("ip", "netns", "exec", ns2, sys.executable, "-c", script)
    assert ip_link("net1", ns2) is not None
    assert ip_link("net1", ns) is None


@needs_root
def test_netns_exists(links: RtnlLinks, ns: str) -> None:
    """What the contract (tests/contract/test_contract_netns.py: a netns's path, /proc/self/ns/net, files that
    are no netns) does not ask: a netns by name, a name no netns has, a device file."""
    assert links.netns_exists(ns)
    assert not links.netns_exists(unique_name())
    assert not links.netns_exists("/dev/null")


@needs_root
def test_move_to_a_missing_netns(links: RtnlLinks, ns: str) -> None:
    with pytest.raises(DeviceNotFound):
        links.move_to_netns("v1", unique_name(), ns)
    assert links.find("v1", ns) is not None


@needs_root
def test_move_onto_a_taken_name(links: RtnlLinks, ns: str, ns2: str) -> None:
    run("ip", "-n", ns2, "link", "add", "v1", "type", "veth", "peer", "name", "other")
    with pytest.raises(AlreadyExists):
        links.move_to_netns("v1", ns2, ns)


@needs_root
def test_move_with_a_new_name_in_one_request(links: RtnlLinks, ns: str, ns2: str) -> None:
    """The kernel moves, then renames there: a running link arrives down, and its old name may be taken."""
    run("ip", "-n", ns2, "link", "add", "v1", "type", "veth", "peer", "name", "other")
    links.set_up("v1", netns=ns)
    links.move_to_netns("v1", ns2, ns, new_name="eth0")
    moved = links.get("eth0", ns2)
    assert not moved.admin_up and links.find("v1", ns) is None
    assert ip_link("eth0", ns2) is not None


@needs_root
def test_move_onto_a_taken_new_name_leaves_the_link_where_it_was(links: RtnlLinks, ns: str, ns2: str) -> None:
    """The kernel has moved the link when the rename fails; the adapter puts it back."""
    run("ip", "-n", ns2, "link", "add", "eth0", "type", "veth", "peer", "name", "other")
    with pytest.raises(AlreadyExists) as failure:
        links.move_to_netns("v1", ns2, ns, new_name="eth0")
    assert failure.value.errno == errno.EEXIST and "as eth0" in str(failure.value)
    assert links.find("v1", ns) is not None and links.find("v1", ns2) is None


@needs_root
def test_addresses(links: RtnlLinks, ns: str) -> None:
    links.add_address("v0", Address("10.199.3.1", 24), ns)
    links.add_address("v0", Address("fd00:199::1", 64), ns)
    assert links.addresses("v0", ns)[:2] == [Address("10.199.3.1", 24), Address("fd00:199::1", 64)]
    oracle = {(a["local"], a["prefixlen"]) for link in ip_json("addr", "show", "dev", "v0", netns=ns)
              for a in link["addr_info"]}
    assert {(a.address, a.prefixlen) for a in links.addresses("v0", ns)} == oracle
    assert links.addresses("v1", ns) == []
    with pytest.raises(AlreadyExists):
        links.add_address("v0", Address("10.199.3.1", 24), ns)


@needs_root
def test_routes(links: RtnlLinks, ns: str) -> None:
    for name in ("v0", "v1"):
        links.set_up(name, netns=ns)
    links.add_address("v0", Address("10.199.3.1", 24), ns)
    links.add_route(Route("0.0.0.0/0", "10.199.3.254", None), ns)
    links.add_route(Route("10.200.0.0/16", None, "v0"), ns)
    links.add_route(Route("192.0.2.0/24", "10.199.3.253", "v0"), ns)
    routes = links.routes(ns)
    assert Route("0.0.0.0/0", "10.199.3.254", "v0") in routes
    assert Route("10.199.3.0/24", None, "v0") in routes
    assert Route("10.200.0.0/16", None, "v0") in routes
    assert Route("192.0.2.0/24", "10.199.3.253", "v0") in routes
    v4 = {r.dst for r in routes if ":" not in r.dst}
    oracle = {("0.0.0.0/0" if r["dst"] == "default" else r["dst"] if "/" in r["dst"] else r["dst"] + "/32")
              for r in ip_json("route", "show", netns=ns)}
    assert v4 == oracle
    with pytest.raises(AlreadyExists):
        links.add_route(Route("10.200.0.0/16", None, "v0"), ns)


@needs_root
def test_route_via_an_unreachable_gateway(links: RtnlLinks, ns: str) -> None:
    with pytest.raises(HostError) as info:
        links.add_route(Route("0.0.0.0/0", "203.0.113.1", None), ns)
    assert info.value.errno == errno.ENETUNREACH
    assert str(info.value).startswith(f"add route 0.0.0.0/0 via 203.0.113.1 in netns {ns} failed: ENETUNREACH")


# --- sysfs ------------------------------------------------------------------------------------------------------


def test_switch_port_from_sysfs(tmp_path: Path) -> None:
    for name, port, switch in (("ens1f0np0", "p0", "a4b2c3fffe0d1e2f"), ("ens1f0_3", "pf0vf3", "a4b2c3fffe0d1e2f"),
                               ("eno1", "", ""), ("virt0", "p0", "")):
        (tmp_path / "class/net" / name).mkdir(parents=True)
        (tmp_path / f"class/net/{name}/phys_port_name").write_text(port + "\n")
        (tmp_path / f"class/net/{name}/phys_switch_id").write_text(switch + "\n")
    links = RtnlLinks(Sysfs(tmp_path))
    assert links.switch_port("ens1f0np0") == SwitchPort("p0", "a4b2c3fffe0d1e2f")
    assert links.switch_port("ens1f0_3") == SwitchPort("pf0vf3", "a4b2c3fffe0d1e2f")
    assert links.switch_port("eno1") is None
    assert links.switch_port("virt0") is None
    assert links.switch_port("absent") is None


def test_switch_port_of_host_netdevs_that_are_not_switch_ports(links: RtnlLinks) -> None:
    """On the real /sys: lo answers EOPNOTSUPP for phys_port_name, which means "not a switch port"."""
    assert links.switch_port("lo") is None
    assert links.switch_port("vdpa-no-such-netdev") is None
