"""OVN-Kubernetes' annotations as its own unmarshalling reads them: today's pod-networks (plural fields), the
singular fields of older annotations, dual stack, secondary networks, node-subnets as a string or a list, and one
INVALID_CONFIG per malformed field; a network without an entry is NotAnnotated, for the caller to retry."""

from __future__ import annotations

import json
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_interface, ip_network
from typing import Any

import pytest

from vdpa_operator.cni.errors import INVALID_CONFIG, CniError
from vdpa_operator.cni.ipam import IpamResult, IpConfig, NotAnnotated, RouteConfig, from_pod_networks, node_subnet

BRIEF = {"default": {"ip_addresses": ["10.244.1.5/24"], "mac_address": "0a:58:0a:f4:01:05",
                     "gateway_ips": ["10.244.1.1"], "routes": [{"dest": "10.244.0.0/16", "nextHop": "10.244.1.1"}],
                     "ip_address": "10.244.1.5/24", "gateway_ip": "10.244.1.1"}}
V4 = ip_interface("10.244.1.5/24")
GW4 = ip_address("10.244.1.1")
DEFAULT4 = RouteConfig(ip_network("0.0.0.0/0"), GW4)


def test_todays_annotation_with_a_default_route_via_the_gateway() -> None:
    result, mac = from_pod_networks(json.dumps(BRIEF))
    assert result == IpamResult(ips=(IpConfig(V4, GW4),),
                                routes=(DEFAULT4, RouteConfig(ip_network("10.244.0.0/16"), GW4)))
    assert mac == "0a:58:0a:f4:01:05"


def test_an_older_annotation_with_singular_fields_only() -> None:
    old = {"default": {"ip_address": "10.244.1.5/24", "mac_address": "0A:58:0A:F4:01:05", "gateway_ip": "10.244.1.1"}}
    assert from_pod_networks(json.dumps(old)) == (IpamResult(ips=(IpConfig(V4, GW4),), routes=(DEFAULT4,)),
                                                  "0a:58:0a:f4:01:05")


def test_dual_stack_gives_each_address_its_familys_gateway_and_a_default_route_per_gateway() -> None:
    annotation = {"default": {"ip_addresses": ["10.244.1.5/24", "fd00:10:244:2::5/64"],
                              "gateway_ips": ["10.244.1.1", "fd00:10:244:2::1"], "mac_address": "0a:58:0a:f4:01:05",
                              "routes": [{"dest": "0.0.0.0/0", "nextHop": "10.244.1.254"}]}}
    result, _ = from_pod_networks(json.dumps(annotation))
    gw6 = ip_address("fd00:10:244:2::1")
    assert result.ips == (IpConfig(V4, GW4), IpConfig(ip_interface("fd00:10:244:2::5/64"), gw6))
    # the annotation's own IPv4 default route stands; IPv6 gets one via its gateway
    assert result.routes == (RouteConfig(ip_network("::/0"), gw6),
                             RouteConfig(ip_network("0.0.0.0/0"), ip_address("10.244.1.254")))


def test_a_secondary_network_without_gateway_or_mac() -> None:
    annotation = {"default": BRIEF["default"], "ns1/vdpa-net": {"ip_addresses": ["192.168.50.7/24"], "routes": None}}
    assert from_pod_networks(json.dumps(annotation), "ns1/vdpa-net") == (
        IpamResult(ips=(IpConfig(ip_interface("192.168.50.7/24")),)), None)


@pytest.mark.parametrize("annotation", ["", "  ", json.dumps({"ns1/other": BRIEF["default"]}),
                                        json.dumps({"default": None})])
def test_no_entry_for_the_network_is_not_annotated(annotation: str) -> None:
    with pytest.raises(NotAnnotated) as caught:
        from_pod_networks(annotation)
    assert caught.value.code == INVALID_CONFIG
    assert caught.value.msg == "k8s.ovn.org/pod-networks has no entry for network 'default'"
    assert "retry" in caught.value.details


def test_not_annotated_lists_the_networks_that_are() -> None:
    with pytest.raises(NotAnnotated, match="networks annotated: default, ns1/a"):
        from_pod_networks(json.dumps({"ns1/a": BRIEF["default"], "default": BRIEF["default"]}), "ns1/b")


def entry(**fields: Any) -> str:
    return json.dumps({"default": {**BRIEF["default"], **fields}})


@pytest.mark.parametrize(("annotation", "where", "reason"), [
    ("{not json", "k8s.ovn.org/pod-networks cannot be read as JSON", "Expecting property name"),
    ("[]", "k8s.ovn.org/pod-networks is not a JSON object", "[]"),
    (json.dumps({"default": "10.244.1.5/24"}), "k8s.ovn.org/pod-networks: ['default']", "where an object belongs"),
    (entry(ip_addresses=[], ip_address=""), "k8s.ovn.org/pod-networks: ['default'].ip_addresses",
     "missing (and no ip_address either)"),
    (entry(ip_addresses=["10.244.1.5"]), "k8s.ovn.org/pod-networks: ['default'].ip_addresses[0]", "CIDR notation"),
    (entry(ip_addresses="10.244.1.5/24"), "k8s.ovn.org/pod-networks: ['default'].ip_addresses",
     "where a list belongs"),
    (entry(ip_address="10.244.1.6/24"), "k8s.ovn.org/pod-networks: ['default'].ip_address",
     "10.244.1.6/24 contradicts ip_addresses[0] 10.244.1.5/24"),
    (entry(gateway_ips=["10.244.1.x"]), "k8s.ovn.org/pod-networks: ['default'].gateway_ips[0]", "not an IP address"),
    (entry(gateway_ip="10.244.1.2"), "k8s.ovn.org/pod-networks: ['default'].gateway_ip", "contradicts gateway_ips[0]"),
    (entry(mac_address="0a:58:0a:f4:01"), "k8s.ovn.org/pod-networks: ['default'].mac_address", "not a MAC address"),
    (entry(routes=[{"nextHop": "10.244.1.1"}]), "k8s.ovn.org/pod-networks: ['default'].routes[0].dest", "missing"),
    (entry(routes=[{"dest": "fd00::/64", "nextHop": "10.244.1.1"}]),
     "k8s.ovn.org/pod-networks: ['default'].routes[0].nextHop", "not of the family of dest fd00::/64"),
])
def test_a_malformed_pod_annotation_is_invalid_config_naming_the_field(annotation: str, where: str,
                                                                       reason: str) -> None:
    with pytest.raises(CniError) as caught:
        from_pod_networks(annotation)
    assert not isinstance(caught.value, NotAnnotated)
    assert caught.value.code == INVALID_CONFIG
    assert caught.value.msg == where
    assert reason in caught.value.details


def test_a_route_without_next_hop() -> None:
    result, _ = from_pod_networks(entry(routes=[{"dest": "10.96.0.0/16", "nextHop": ""}], gateway_ips=None,
                                        gateway_ip=None))
    assert result.routes == (RouteConfig(ip_network("10.96.0.0/16")),)
    assert result.ips == (IpConfig(V4),)


@pytest.mark.parametrize(("annotation", "subnet"), [
    ('{"default":"10.244.1.0/24"}', IPv4Network("10.244.1.0/24")),
    ('{"default":["10.244.1.0/24","fd00:10:244:2::/64"]}', IPv4Network("10.244.1.0/24")),
    ('{"default":["fd00:10:244:2::/64","10.244.1.0/24"]}', IPv4Network("10.244.1.0/24")),
    ('{"default":["fd00:10:244:2::/64"]}', IPv6Network("fd00:10:244:2::/64")),
    ('{"default":"10.244.1.0/24","ns1/l3":"10.200.1.0/24"}', IPv4Network("10.244.1.0/24")),
])
def test_node_subnet(annotation: str, subnet: IPv4Network | IPv6Network) -> None:
    assert node_subnet(annotation) == subnet


def test_node_subnet_of_a_secondary_network() -> None:
    assert node_subnet('{"default":"10.244.1.0/24","ns1/l3":["10.200.1.0/24"]}', "ns1/l3") == \
        IPv4Network("10.200.1.0/24")


@pytest.mark.parametrize(("annotation", "message", "details"), [
    ('{"default":"10.244.1.0"}', "k8s.ovn.org/node-subnets: ['default']", "CIDR notation"),
    ('{"default":["10.244.1.0/24","x"]}', "k8s.ovn.org/node-subnets: ['default'][1]", "'x' is not an address"),
    ('{"default":[]}', "k8s.ovn.org/node-subnets: ['default']", "neither a CIDR nor a list"),
    ('{"default":{"cidr":"10.244.1.0/24"}}', "k8s.ovn.org/node-subnets: ['default']", "neither a CIDR nor a list"),
    ('"10.244.1.0/24"', "k8s.ovn.org/node-subnets is not a JSON object", "10.244.1.0/24"),
])
def test_a_malformed_node_annotation(annotation: str, message: str, details: str) -> None:
    with pytest.raises(CniError) as caught:
        node_subnet(annotation)
    assert (caught.value.code, caught.value.msg) == (INVALID_CONFIG, message)
    assert details in caught.value.details


def test_node_subnet_without_an_entry_is_not_annotated() -> None:
    with pytest.raises(NotAnnotated) as caught:
        node_subnet('{"default":"10.244.1.0/24"}', "ns1/l3")
    assert caught.value.msg == "k8s.ovn.org/node-subnets has no entry for network 'ns1/l3'"
