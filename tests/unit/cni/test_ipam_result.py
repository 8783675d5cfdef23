"""IPAM results of every CNI version into one value: the spec's appendix examples, what Debian's host-local and
static (containernetworking-plugins 1.1.1) print for 0.2.0, 0.3.1, 0.4.0 and 1.0.0 configs, a 1.1.0 result with
every route attribute, and one DECODING_FAILURE per kind of bad field, naming the field."""

from __future__ import annotations

import json
from ipaddress import ip_address, ip_interface, ip_network
from typing import Any

import pytest

from vdpa_operator.cni.errors import DECODING_FAILURE, CniError
from vdpa_operator.cni.ipam import DnsConfig, IpamResult, IpConfig, RouteConfig, parse_ipam_result
from vdpa_operator.cni.ipam_result import version_key

# SPEC appendix, "Add example": what host-local returns to bridge (no cniVersion, no interface index) ...
SPEC_HOST_LOCAL = """{"ips": [{"address": "10.1.0.5/16", "gateway": "10.1.0.1"}],
                      "routes": [{"dst": "0.0.0.0/0"}], "dns": {"nameservers": ["10.1.0.1"]}}"""
# ... and bridge's full result built from it.
SPEC_BRIDGE = """{"ips": [{"address": "10.1.0.5/16", "gateway": "10.1.0.1", "interface": 2}],
                  "routes": [{"dst": "0.0.0.0/0"}],
                  "interfaces": [{"name": "cni0", "mac": "00:11:22:33:44:55"},
                                 {"name": "veth3243", "mac": "55:44:33:22:11:11"},
                                 {"name": "eth0", "mac": "99:88:77:66:55:44", "sandbox": "/var/run/netns/blue"}],
                  "dns": {"nameservers": ["10.1.0.1"]}}"""
SPEC_RESULT = IpamResult(ips=(IpConfig(ip_interface("10.1.0.5/16"), ip_address("10.1.0.1")),),
                         routes=(RouteConfig(ip_network("0.0.0.0/0")),), dns=DnsConfig(nameservers=("10.1.0.1",)))

# Debian's host-local for a dual-stack config (ranges 10.56.1.2-10.56.1.254 of 10.56.0.0/16 and fd00::/64, routes
# 0.0.0.0/0 and 192.168.0.0/16 via 10.56.0.254), one ADD per config version; output as printed.
HOST_LOCAL_0_2_0 = """{"cniVersion": "0.2.0",
    "ip4": {"ip": "10.56.1.2/16", "gateway": "10.56.0.1",
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "10.56.0.254"}]},
    "ip6": {"ip": "fd00::2/64", "gateway": "fd00::1"},
    "dns": {}}"""
HOST_LOCAL_0_3_1 = """{"cniVersion": "0.3.1",
    "ips": [{"version": "4", "address": "10.56.1.2/16", "gateway": "10.56.0.1"},
            {"version": "6", "address": "fd00::2/64", "gateway": "fd00::1"}],
    "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "10.56.0.254"}],
    "dns": {}}"""
HOST_LOCAL_1_0_0 = """{"cniVersion": "1.0.0",
    "ips": [{"address": "10.56.1.2/16", "gateway": "10.56.0.1"}, {"address": "fd00::2/64", "gateway": "fd00::1"}],
    "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "10.56.0.254"}],
    "dns": {}}"""
HOST_LOCAL_RESULT = IpamResult(
    ips=(IpConfig(ip_interface("10.56.1.2/16"), ip_address("10.56.0.1")),
         IpConfig(ip_interface("fd00::2/64"), ip_address("fd00::1"))),
    routes=(RouteConfig(ip_network("0.0.0.0/0")), RouteConfig(ip_network("192.168.0.0/16"), ip_address("10.56.0.254"))))

# Debian's static with two addresses, CNI_ARGS IP=10.10.0.7/24, three routes (one dst with host bits) and full DNS.
STATIC_0_3_1 = """{"cniVersion": "0.3.1",
    "ips": [{"version": "4", "address": "10.10.0.1/24", "gateway": "10.10.0.254"},
            {"version": "6", "address": "3ffe:ffff:0:1ff::1/64", "gateway": "3ffe:ffff::1"},
            {"version": "4", "address": "10.10.0.7/24"}],
    "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "10.10.5.1"}, {"dst": "3ffe:ffff:0:1ff::1/64"}],
    "dns": {"nameservers": ["8.8.8.8"], "domain": "example.com", "search": ["example.com"], "options": ["ndots:2"]}}"""
STATIC_RESULT = IpamResult(
    ips=(IpConfig(ip_interface("10.10.0.1/24"), ip_address("10.10.0.254")),
         IpConfig(ip_interface("3ffe:ffff:0:1ff::1/64"), ip_address("3ffe:ffff::1")),
         IpConfig(ip_interface("10.10.0.7/24"))),
    routes=(RouteConfig(ip_network("0.0.0.0/0")), RouteConfig(ip_network("192.168.0.0/16"), ip_address("10.10.5.1")),
            RouteConfig(ip_network("3ffe:ffff:0:1ff::/64"))),
    dns=DnsConfig(("8.8.8.8",), "example.com", ("example.com",), ("ndots:2",)))


def parse(text: str) -> IpamResult:
    return parse_ipam_result(json.loads(text))


@pytest.mark.parametrize("text", [SPEC_HOST_LOCAL, SPEC_BRIDGE], ids=["ipam-result", "bridge-result"])
def test_the_spec_appendix_results(text: str) -> None:
    assert parse(text) == SPEC_RESULT


@pytest.mark.parametrize("text", [HOST_LOCAL_0_2_0, HOST_LOCAL_0_3_1, HOST_LOCAL_0_3_1.replace("0.3.1", "0.4.0"),
                                  HOST_LOCAL_1_0_0, HOST_LOCAL_1_0_0.replace("1.0.0", "1.1.0")],
                         ids=["0.2.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
def test_host_local_in_every_version_reads_the_same(text: str) -> None:
    assert parse(text) == HOST_LOCAL_RESULT


def test_static_with_dns_and_a_route_whose_dst_has_host_bits() -> None:
    assert parse(STATIC_0_3_1) == STATIC_RESULT
    without_version = json.loads(STATIC_0_3_1)
    without_version["cniVersion"] = "1.0.0"
    for ip in without_version["ips"]:
        del ip["version"]
    assert parse_ipam_result(without_version) == STATIC_RESULT


def test_a_legacy_result_is_recognised_without_cni_version() -> None:
    body = json.loads(HOST_LOCAL_0_2_0)
    del body["cniVersion"]
    assert parse_ipam_result(body) == HOST_LOCAL_RESULT


def test_route_attributes_of_1_1_0() -> None:
    body = {"cniVersion": "1.1.0", "ips": [{"address": "192.0.2.5/24"}],
            "routes": [{"dst": "198.51.100.0/24", "gw": "192.0.2.1", "mtu": 1400, "advmss": 1360, "priority": 10,
                        "table": 100, "scope": 0}]}
    assert parse_ipam_result(body).routes == (
        RouteConfig(ip_network("198.51.100.0/24"), ip_address("192.0.2.1"), mtu=1400, advmss=1360, priority=10,
                    table=100, scope=0),)


def test_null_fields_are_absent_ones_and_an_empty_result_is_empty() -> None:
    body = {"cniVersion": "1.0.0", "ips": [{"address": "192.0.2.5/24", "gateway": None}], "routes": None,
            "dns": None}
    assert parse_ipam_result(body) == IpamResult(ips=(IpConfig(ip_interface("192.0.2.5/24")),))
    assert parse_ipam_result({"cniVersion": "1.0.0"}) == IpamResult()


BAD: list[tuple[str, dict[str, Any], str, str]] = [
    ("address without prefix", {"ips": [{"address": "10.1.0.5"}]}, "ips[0].address", "CIDR notation"),
    ("address netmask form", {"ips": [{"address": "10.1.0.5/255.255.0.0"}]}, "ips[0].address", "CIDR notation"),
    ("address not a string", {"ips": [{"address": 17}]}, "ips[0].address", "CIDR notation"),
    ("address missing", {"ips": [{"gateway": "10.1.0.1"}]}, "ips[0].address", "missing"),
    ("gateway not an address", {"ips": [{"address": "10.1.0.5/16", "gateway": "10.1.0"}]}, "ips[0].gateway",
     "not an IP address"),
    ("version contradicts address", {"cniVersion": "0.4.0", "ips": [{"version": "6", "address": "10.1.0.5/16"}]},
     "ips[0].version", "IPv4"),
    ("interface index negative", {"ips": [{"address": "10.1.0.5/16", "interface": -1}]}, "ips[0].interface",
     "non-negative"),
    ("ips an object", {"ips": {"address": "10.1.0.5/16"}}, "ips", "where a list belongs"),
    ("ip entry a string", {"ips": ["10.1.0.5/16"]}, "ips[0]", "where an object belongs"),
    ("route without dst", {"routes": [{"gw": "10.1.0.1"}]}, "routes[0].dst", "missing"),
    ("route mtu a boolean", {"routes": [{"dst": "0.0.0.0/0", "mtu": True}]}, "routes[0].mtu", "non-negative"),
    ("route table a string", {"routes": [{"dst": "0.0.0.0/0", "table": "100"}]}, "routes[0].table", "non-negative"),
    ("nameservers a string", {"dns": {"nameservers": "8.8.8.8"}}, "dns.nameservers", "list of strings"),
    ("domain a list", {"dns": {"domain": ["a"]}}, "dns.domain", "where a string belongs"),
    ("cniVersion not a version", {"cniVersion": "one"}, "cniVersion", "not a CNI version"),
    ("legacy ip4 holds IPv6", {"cniVersion": "0.2.0", "ip4": {"ip": "fd00::2/64"}}, "ip4.ip", "not an IPv4"),
    ("legacy ip6 without ip", {"cniVersion": "0.2.0", "ip6": {"gateway": "fd00::1"}}, "ip6.ip", "missing"),
    ("legacy route bad", {"cniVersion": "0.2.0", "ip4": {"ip": "10.0.0.2/8", "routes": [{"dst": "x"}]}},
     "ip4.routes[0].dst", "CIDR notation"),
]


@pytest.mark.parametrize(("body", "where", "reason"), [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_a_bad_field_is_a_decoding_failure_naming_it(body: dict[str, Any], where: str, reason: str) -> None:
    with pytest.raises(CniError) as caught:
        parse_ipam_result(body, source="IPAM plugin host-local ADD result")
    assert caught.value.code == DECODING_FAILURE
    assert caught.value.msg == f"IPAM plugin host-local ADD result: cannot decode {where}"
    assert reason in caught.value.details


def test_a_result_that_is_no_object() -> None:
    with pytest.raises(CniError, match="cannot decode the result"):
        parse_ipam_result([1, 2])  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "key"), [("1.1.0", (1, 1, 0)), ("0.4.0", (0, 4, 0)), ("0.4", (0, 4, 0)),
                                           ("1", (1, 0, 0)), ("0.10.0", (0, 10, 0))])
def test_version_key(text: str, key: tuple[int, int, int]) -> None:
    assert version_key(text) == key


@pytest.mark.parametrize("text", ["", "1.0.0.0", "v1.0.0", "1.x.0", "1..0", None, 1.0, "١.0.0"])
def test_version_key_refuses(text: object) -> None:
    with pytest.raises(ValueError, match="is not a CNI version"):
        version_key(text)
