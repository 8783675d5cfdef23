"""The node's allocator on a real lease store in a tmp dir: host-local's address rules, idempotence, lowest free
first, exhaustion, release and GC, two allocators racing on one store, and lease files damaged on disk."""

from __future__ import annotations

import logging
import threading
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_interface, ip_network
from pathlib import Path

import pytest

from vdpa_operator.cni.errors import INVALID_CONFIG, INVALID_ENVIRONMENT, IPAM_FAILURE, CniError
from vdpa_operator.cni.ipam import IpamResult, IpConfig, NodeIpam, RouteConfig

SMALL = IPv4Network("192.168.7.0/29")
"""Network .0, gateway .1 by default, hosts .2-.6, broadcast .7."""


def addresses(ipam: NodeIpam, network: str, *containers: str, ifname: str = "net1") -> list[str]:
    return [str(ipam.allocate(network, container, ifname).ips[0].address) for container in containers]


def test_an_address_from_the_nodes_range_carries_the_subnets_prefix_and_a_default_route(tmp_path: Path) -> None:
    """The default route goes via the gateway, as OVN-Kubernetes routes a pod through its node: without it, a pod
    reaches only its own subnet (pods of other nodes' ranges when the subnet is the whole pod network)."""
    ipam = NodeIpam(tmp_path, IPv4Network("10.56.0.0/16"), range_start=ip_address("10.56.1.2"),
                    range_end=ip_address("10.56.1.254"))
    assert ipam.allocate("net1", "c1", "net1") == IpamResult(
        ips=(IpConfig(ip_interface("10.56.1.2/16"), ip_address("10.56.0.1")),),
        routes=(RouteConfig(IPv4Network("0.0.0.0/0"), ip_address("10.56.0.1")),))
    assert (tmp_path / "net1" / "10.56.1.2").read_text() == "c1\nnet1\n"


def test_the_same_attachment_gets_its_lease_back(tmp_path: Path) -> None:
    ipam = NodeIpam(tmp_path, SMALL)
    first = ipam.allocate("net1", "c1", "net1")
    assert ipam.allocate("net1", "c1", "net1") == first
    assert NodeIpam(tmp_path, SMALL).allocate("net1", "c1", "net1") == first  # a new process reads the store
    assert addresses(ipam, "net1", "c1", ifname="net2") == ["192.168.7.3/29"]  # another interface, another lease
    assert addresses(ipam, "net2", "c1") == ["192.168.7.2/29"]  # networks have their own leases


def test_lowest_free_first(tmp_path: Path) -> None:
    ipam = NodeIpam(tmp_path, SMALL)
    assert addresses(ipam, "net1", "a", "b", "c") == ["192.168.7.2/29", "192.168.7.3/29", "192.168.7.4/29"]
    ipam.release("net1", "b", "net1")
    assert addresses(ipam, "net1", "d", "e") == ["192.168.7.3/29", "192.168.7.5/29"]


def test_network_broadcast_and_gateway_are_never_handed_out(tmp_path: Path) -> None:
    ipam = NodeIpam(tmp_path, SMALL, gateway=ip_address("192.168.7.4"))
    got = addresses(ipam, "net1", "a", "b", "c", "d", "e")
    assert got == ["192.168.7.1/29", "192.168.7.2/29", "192.168.7.3/29", "192.168.7.5/29", "192.168.7.6/29"]
    assert {ip.gateway for ip in ipam.allocate("net1", "a", "net1").ips} == {ip_address("192.168.7.4")}
    with pytest.raises(CniError) as caught:
        ipam.allocate("net1", "f", "net1")
    assert caught.value.code == IPAM_FAILURE
    assert caught.value.msg == "no free address in 192.168.7.1-192.168.7.6 of 192.168.7.0/29 for network net1"
    assert "5 addresses of it are leased" in caught.value.details


def test_ipv6(tmp_path: Path) -> None:
    ipam = NodeIpam(tmp_path, IPv6Network("fd00::/125"))
    assert ipam.allocate("net1", "a", "net1").ips == (IpConfig(ip_interface("fd00::2/125"), ip_address("fd00::1")),)
    assert addresses(ipam, "net1", "b", "c", "d", "e") == ["fd00::3/125", "fd00::4/125", "fd00::5/125", "fd00::6/125"]
    with pytest.raises(CniError, match="no free address in fd00::1-fd00::6 of fd00::/125"):
        ipam.allocate("net1", "f", "net1")  # the all-ones address fd00::7 is not handed out, as host-local


def test_range_limits_and_exhaustion(tmp_path: Path) -> None:
    ipam = NodeIpam(tmp_path, IPv4Network("10.56.0.0/16"), range_start=ip_address("10.56.1.2"),
                    range_end=ip_address("10.56.1.3"))
    assert addresses(ipam, "net1", "a", "b") == ["10.56.1.2/16", "10.56.1.3/16"]
    with pytest.raises(CniError) as caught:
        ipam.allocate("net1", "c", "net1")
    assert (caught.value.code, caught.value.msg) == (
        IPAM_FAILURE, "no free address in 10.56.1.2-10.56.1.3 of 10.56.0.0/16 for network net1")
    assert str(tmp_path / "net1") in caught.value.details
    ipam.release("net1", "a", "net1")
    assert addresses(ipam, "net1", "c") == ["10.56.1.2/16"]


def test_release_and_lease_of(tmp_path: Path) -> None:
    ipam = NodeIpam(tmp_path, SMALL)
    ipam.release("net1", "a", "net1")  # no store yet: nothing to do
    assert ipam.lease_of("net1", "a", "net1") is None
    ipam.allocate("net1", "a", "net1")
    assert ipam.lease_of("net1", "a", "net1") == IpConfig(ip_interface("192.168.7.2/29"), ip_address("192.168.7.1"))
    assert ipam.lease_of("net1", "a", "eth0") is None
    ipam.release("net1", "a", "net1")
    ipam.release("net1", "a", "net1")  # DEL twice
    assert ipam.lease_of("net1", "a", "net1") is None
    assert sorted(path.name for path in (tmp_path / "net1").iterdir()) == [".lock"]


def test_gc_releases_what_the_runtime_does_not_list(tmp_path: Path) -> None:
    ipam = NodeIpam(tmp_path, SMALL)
    addresses(ipam, "net1", "a", "b", "c")
    addresses(ipam, "net2", "a")
    assert ipam.gc("net1", {("b", "net1")}) == ["192.168.7.2", "192.168.7.4"]
    assert ipam.gc("net1", {("b", "net1")}) == []
    assert ipam.lease_of("net1", "b", "net1") is not None
    assert ipam.lease_of("net2", "a", "net1") is not None  # another network's leases are its own
    assert ipam.gc("net3", []) == []


def test_gc_and_release_reach_leases_outside_todays_range(tmp_path: Path) -> None:
    NodeIpam(tmp_path, SMALL).allocate("net1", "a", "net1")
    NodeIpam(tmp_path, SMALL).allocate("net1", "b", "net1")
    moved = NodeIpam(tmp_path, IPv4Network("10.0.0.0/24"))
    assert moved.lease_of("net1", "a", "net1") is None
    assert addresses(moved, "net1", "a") == ["10.0.0.2/24"]  # a lease in the old range is not handed back
    moved.release("net1", "a", "net1")
    assert sorted(path.name for path in (tmp_path / "net1").iterdir()) == [".lock", "192.168.7.3"]
    assert moved.gc("net1", []) == ["192.168.7.3"]


def test_two_allocators_on_one_store_from_two_threads_never_share_an_address(tmp_path: Path) -> None:
    subnet = IPv4Network("10.0.0.0/24")
    start = threading.Barrier(2, timeout=10)
    got: dict[str, list[str]] = {}

    def allocate(name: str) -> None:
        ipam = NodeIpam(tmp_path, subnet)
        start.wait()
        got[name] = addresses(ipam, "net1", *(f"{name}-{index}" for index in range(60)))

    threads = [threading.Thread(target=allocate, args=(name,)) for name in ("left", "right")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    handed_out = got["left"] + got["right"]
    assert len(handed_out) == 120
    assert sorted(handed_out, key=lambda text: ip_interface(text)) == [f"10.0.0.{host}/24" for host in range(2, 122)]
    owners = {path.name: path.read_text().split("\n")[0] for path in (tmp_path / "net1").iterdir()
              if path.name != ".lock"}
    assert {f"{name}/24" for name in owners} == set(handed_out)


def test_a_lease_truncated_to_zero_bytes_stays_taken(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ipam = NodeIpam(tmp_path, SMALL)
    addresses(ipam, "net1", "a")
    damaged = tmp_path / "net1" / "192.168.7.2"
    damaged.write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="vdpa_operator.cni.ipam_node"):
        assert addresses(ipam, "net1", "b") == ["192.168.7.3/29"]
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING] == [
        f"lease file {damaged} is empty (0 bytes): address 192.168.7.2 stays taken; once no pod on this node uses "
        "192.168.7.2, delete the file to free it"]
    assert ipam.lease_of("net1", "a", "net1") is None  # whose it was cannot be read
    assert addresses(ipam, "net1", "a") == ["192.168.7.4/29"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="vdpa_operator.cni.ipam_node"):
        assert ipam.gc("net1", []) == ["192.168.7.3", "192.168.7.4"]
    assert damaged.exists()
    assert [record.levelname for record in caplog.records if record.levelno >= logging.WARNING] == ["WARNING"]
    damaged.unlink()
    assert addresses(ipam, "net1", "c") == ["192.168.7.2/29"]


@pytest.mark.parametrize(("content", "reason"), [
    (b"a\nne", "is truncated (4 bytes, no final newline)"),
    (b"a\n", "does not hold '<container id>\\n<ifname>\\n'"),
    (b"../a\nnet1\n", "does not hold"),
    (b"\xff\xfe\n", "is not UTF-8"),
])
def test_a_damaged_lease_is_named_with_what_is_wrong(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                      content: bytes, reason: str) -> None:
    (tmp_path / "net1").mkdir()
    (tmp_path / "net1" / "192.168.7.2").write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="vdpa_operator.cni.ipam_node"):
        assert addresses(NodeIpam(tmp_path, SMALL), "net1", "a") == ["192.168.7.3/29"]
    assert reason in caplog.text


def test_files_that_are_no_leases_are_ignored(tmp_path: Path) -> None:
    (tmp_path / "net1").mkdir()
    for name in ("last_reserved_ip.0", "notes.txt", "lock"):
        (tmp_path / "net1" / name).write_text("x")
    assert addresses(NodeIpam(tmp_path, SMALL), "net1", "a") == ["192.168.7.2/29"]


@pytest.mark.parametrize(("network", "container", "ifname", "code", "message"), [
    ("../etc", "c1", "net1", INVALID_CONFIG, "network name '../etc' is not a valid CNI name"),
    ("net/1", "c1", "net1", INVALID_CONFIG, "network name 'net/1'"),
    (".hidden", "c1", "net1", INVALID_CONFIG, "network name '.hidden'"),
    ("net1", "../../x", "net1", INVALID_ENVIRONMENT, "CNI_CONTAINERID '../../x' is not a valid CNI name"),
    ("net1", "", "net1", INVALID_ENVIRONMENT, "CNI_CONTAINERID ''"),
    ("net1", "c1\nnet9", "net1", INVALID_ENVIRONMENT, "CNI_CONTAINERID"),
    ("net1", "c1\n", "net1", INVALID_ENVIRONMENT, "CNI_CONTAINERID"),  # a lease file's line break
    ("net1", "c1", "", INVALID_ENVIRONMENT, "CNI_IFNAME '': interface name is empty"),
    ("net1", "c1", "a/b", INVALID_ENVIRONMENT, "CNI_IFNAME 'a/b': interface name contains / or :"),
    ("net1", "c1", "net\n1", INVALID_ENVIRONMENT, "contains / or : or whitespace characters"),
    ("net1", "c1", "x" * 16, INVALID_ENVIRONMENT, "interface name is too long"),
])
def test_names_that_could_escape_the_store_are_refused(tmp_path: Path, network: str, container: str, ifname: str,
                                                        code: int, message: str) -> None:
    store = tmp_path / "store"
    ipam = NodeIpam(store, SMALL)
    for call in (ipam.allocate, ipam.release, ipam.lease_of):
        with pytest.raises(CniError, match=message) as caught:
            call(network, container, ifname)
        assert caught.value.code == code
    assert not store.exists()


@pytest.mark.parametrize(("subnet", "options", "message"), [
    ("10.0.0.0/31", {}, "subnet 10.0.0.0/31 is too small to allocate from"),
    ("fd00::/127", {}, "subnet fd00::/127 is too small"),
    ("10.0.0.0/24", {"range_start": "10.0.1.5"}, "range_start 10.0.1.5 is not a host address of subnet 10.0.0.0/24"),
    ("10.0.0.0/24", {"range_end": "10.0.0.255"}, "range_end 10.0.0.255 is not a host address"),
    ("10.0.0.0/24", {"gateway": "10.0.0.0"}, "gateway 10.0.0.0 is not a host address"),
    ("10.0.0.0/24", {"range_start": "fd00::5"}, "range_start fd00::5 is not a host address of subnet 10.0.0.0/24"),
    ("10.0.0.0/24", {"range_start": "10.0.0.9", "range_end": "10.0.0.8"}, "range_start 10.0.0.9 is above range_end"),
    ("10.0.0.0/24", {"range_start": "10.0.0.1", "range_end": "10.0.0.1"}, "holds only the gateway"),
])
def test_a_range_that_cannot_be_used_is_invalid_config(tmp_path: Path, subnet: str, options: dict[str, str],
                                                       message: str) -> None:
    with pytest.raises(CniError, match=message) as caught:
        NodeIpam(tmp_path, ip_network(subnet), **{key: ip_address(value) for key, value in options.items()})
    assert caught.value.code == INVALID_CONFIG


def test_a_store_that_cannot_be_written_is_an_ipam_failure_naming_the_path(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.write_text("a file where the store directory belongs")
    with pytest.raises(CniError) as caught:
        NodeIpam(store, SMALL).allocate("net1", "c1", "net1")
    assert caught.value.code == IPAM_FAILURE
    assert caught.value.msg.startswith(f"cannot create the lease directory {store / 'net1'}: ")
    assert "writable local directory" in caught.value.details
