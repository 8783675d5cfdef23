"""Addresses OVN-Kubernetes has already allocated, read from its annotations, read as its own
`UnmarshalPodAnnotation` and `ParseNodeHostSubnetAnnotation` read them.

`k8s.ovn.org/pod-networks` on a pod maps a network (`default`, or `<namespace>/<nad>` for a secondary network) to
`ip_addresses`, `gateway_ips`, `routes` (`dest`/`nextHop`) and `mac_address`; annotations from before dual-stack
carry only the singular `ip_address` and `gateway_ip`, and where both forms are set they must agree. As OVN-K's CNI
does, each gateway also gives a default route of its family (unless the annotation lists one already).
`k8s.ovn.org/node-subnets` on a node maps a network to its CIDR, or to a list of CIDRs when dual-stack.

A malformed annotation is INVALID_CONFIG (7) naming the field. A network the annotation has no entry for (or an
empty annotation) is `NotAnnotated`, a CniError with the same code, so a caller that can wait for OVN-K (which
writes the annotation once it has allocated) catches that one and retries. Pure: text in, values out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from vdpa_operator.bounded import loads_json
from vdpa_operator.cni.errors import INVALID_CONFIG, CniError
from vdpa_operator.cni.ipam_result import (
    DEFAULT_ROUTES,
    FieldError,
    IpAddress,
    IpamResult,
    IpConfig,
    IpNetwork,
    RouteConfig,
    as_mapping,
    as_text,
    get_field,
    get_items,
    parse_address,
    parse_cidr_address,
    parse_cidr_network,
)

POD_NETWORKS = "k8s.ovn.org/pod-networks"
NODE_SUBNETS = "k8s.ovn.org/node-subnets"
_T = TypeVar("_T")
_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
class NotAnnotated(CniError):
    """The annotation has no entry for the network (yet): OVN-K has not allocated for it."""

    def __init__(self, annotation: str, network: str, present: list[str]) -> None:
        listed = ", ".join(present) if present else "none"
        super().__init__(INVALID_CONFIG, f"{annotation} has no entry for network {network!r}",
                         f"networks annotated: {listed}; OVN-Kubernetes writes the entry once it has allocated the "
                         "addresses: retry then, or check that the network is one OVN-Kubernetes serves")


def from_pod_networks(annotation: str, network: str = "default") -> tuple[IpamResult, str | None]:
    """The pod's addresses, gateways and routes on `network` from `k8s.ovn.org/pod-networks`, and its MAC address
    (lower case; None when the entry has none). NotAnnotated when there is no entry for `network`."""
    entry = _entry(annotation, network, POD_NETWORKS)
    where = f"[{network!r}]"
    try:
        body = as_mapping(entry, where)
        addresses = _plural(body, "ip_addresses", "ip_address", where, parse_cidr_address)
        if not addresses:
            raise FieldError(f"{where}.ip_addresses", "missing (and no ip_address either)")
        gateways = _plural(body, "gateway_ips", "gateway_ip", where, parse_address)
        routes = [_route(item, at) for at, item in get_items(body, "routes", where)]
        mac = get_field(body, "mac_address", where, lambda value: None if value == "" else _mac(value))
    except FieldError as error:
        raise CniError(INVALID_CONFIG, f"{POD_NETWORKS}: {error.where}", error.reason) from None
    ips = tuple(IpConfig(address, _same_family(gateways, address.version)) for address in addresses)
    defaults = [RouteConfig(DEFAULT_ROUTES[gateway.version], gateway) for gateway in gateways
                if not any(route.dst == DEFAULT_ROUTES[gateway.version] for route in routes)]
    return IpamResult(ips=ips, routes=(*defaults, *routes)), mac


def node_subnet(annotation: str, network: str = "default") -> IpNetwork:
    """The node's subnet for `network` from `k8s.ovn.org/node-subnets`: the first IPv4 one, else the first."""
    entry = _entry(annotation, network, NODE_SUBNETS)
    where = f"[{network!r}]"
    values: list[tuple[str, object]] = [(where, entry)] if isinstance(entry, str) else \
        [(f"{where}[{index}]", item) for index, item in enumerate(entry)] if isinstance(entry, list) else []
    if not values:
        raise CniError(INVALID_CONFIG, f"{NODE_SUBNETS}: {where}", f"{entry!r} is neither a CIDR nor a list of them")
    subnets: list[IpNetwork] = []
    for at, value in values:
        try:
            subnets.append(parse_cidr_network(value))
        except ValueError as error:
            raise CniError(INVALID_CONFIG, f"{NODE_SUBNETS}: {at}", str(error)) from None
    return next((subnet for subnet in subnets if subnet.version == 4), subnets[0])


def _entry(annotation: str, network: str, name: str) -> object:
    if not annotation.strip():
        raise NotAnnotated(name, network, [])
    try:
        body = loads_json(annotation, name)
    except ValueError as error:  # not JSON, or past the loader's limits (ParseError)
        raise CniError(INVALID_CONFIG, f"{name} cannot be read as JSON", f"{error}: {annotation[:200]!r}") from None
    if not isinstance(body, dict):
        raise CniError(INVALID_CONFIG, f"{name} is not a JSON object", annotation[:200])
    if body.get(network) is None:
        raise NotAnnotated(name, network, sorted(body))
    return body[network]


def _plural(body: Mapping[str, Any], plural: str, singular: str, where: str,
            read: Callable[[object], _T]) -> list[_T]:
    """`plural`'s values, else `singular`'s one; where both are set the singular must be the plural's first. An
    empty string is an unset singular, as OVN-K reads it."""
    many = [_read(at, item, read) for at, item in get_items(body, plural, where)]
    one = get_field(body, singular, where, lambda value: None if value == "" else read(value))
    if not many:
        return [one] if one is not None else []
    if one is not None and one != many[0]:
        raise FieldError(f"{where}.{singular}", f"{one} contradicts {plural}[0] {many[0]}")
    return many


def _read(where: str, value: object, read: Callable[[object], _T]) -> _T:
    try:
        return read(value)
    except ValueError as error:
        raise FieldError(where, str(error)) from None


def _route(item: object, where: str) -> RouteConfig:
    entry = as_mapping(item, where)
    dest = get_field(entry, "dest", where, parse_cidr_network)
    if dest is None:
        raise FieldError(f"{where}.dest", "missing")
    next_hop = get_field(entry, "nextHop", where, lambda value: parse_address(value) if value != "" else None)
    if next_hop is not None and next_hop.version != dest.version:
        raise FieldError(f"{where}.nextHop", f"{next_hop} is not of the family of dest {dest}")
    return RouteConfig(dest, next_hop)


def _mac(value: object) -> str:
    text = as_text(value)
    if not _MAC.match(text):
        raise ValueError(f"{text!r} is not a MAC address (like 0a:58:0a:f4:01:05)")
    return text.lower()


def _same_family(gateways: list[IpAddress], version: int) -> IpAddress | None:
    return next((gateway for gateway in gateways if gateway.version == version), None)
