"""An IPAM result independent of the CNI version it came in (SPEC §5 "ADD Success", "Delegated plugins (IPAM)").

IPAM plugins answer in the shape of the config's `cniVersion`: 0.1.0/0.2.0 put one address per family in `ip4`
and `ip6` (each with its own `routes`); 0.3.x/0.4.0 list `ips` with a `version` ("4"/"6") and, in a full plugin
result, an `interface` index; 1.0.0 and 1.1.0 drop `version`. `parse_ipam_result` reads all of them into one
frozen `IpamResult`, so the plugin that applies the addresses has one shape to handle (writing a result in the
runtime's version is the plugin's job). Parsing is as lenient as the Go types the plugins use (`null` is an absent
field, a route's `dst` may have host bits set) and strict where Go would fail or the value is unusable (an address
without a prefix length, a `version` that contradicts its address): the error is DECODING_FAILURE (6) and names
the field. Pure: JSON values in, values out.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar

from vdpa_operator.cni.errors import DECODING_FAILURE, CniError
from vdpa_operator.errors import VdpaOperatorError

IpAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IpInterface: TypeAlias = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IpNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

_T = TypeVar("_T")
_ROUTE_NUMBERS = ("mtu", "advmss", "priority", "table", "scope")


@dataclass(frozen=True, slots=True)
class IpConfig:
    """One address with its prefix length (`10.1.0.5/16`) and the subnet's gateway, if it has one."""

    address: IpInterface
    gateway: IpAddress | None = None


@dataclass(frozen=True, slots=True)
class RouteConfig:
    """A route; without `gw` the plugin may use the gateway of the address in the same family (SPEC §5)."""

    dst: IpNetwork
    gw: IpAddress | None = None
    mtu: int | None = None
    advmss: int | None = None
    priority: int | None = None
    table: int | None = None
    scope: int | None = None


DEFAULT_ROUTES: dict[int, IpNetwork] = {4: ipaddress.IPv4Network("0.0.0.0/0"), 6: ipaddress.IPv6Network("::/0")}
"""The default route of each IP version."""


@dataclass(frozen=True, slots=True)
class DnsConfig:
    """Nameservers are kept as the text the plugin gave: Go's types do not parse them either."""

    nameservers: tuple[str, ...] = ()
    domain: str = ""
    search: tuple[str, ...] = ()
    options: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class IpamResult:
    ips: tuple[IpConfig, ...] = ()
    routes: tuple[RouteConfig, ...] = ()
    dns: DnsConfig = DnsConfig()


def version_key(text: object) -> tuple[int, int, int]:
    """`"1.0.0"` → `(1, 0, 0)`, for comparing CNI versions; `"0.4"` reads as 0.4.0, as Go's parser reads it."""
    parts = text.split(".") if isinstance(text, str) else []
    if not 1 <= len(parts) <= 3 or not all(part.isdecimal() and part.isascii() for part in parts):
        raise ValueError(f"{text!r} is not a CNI version (like 1.0.0)")
    numbers = [int(part) for part in parts] + [0, 0]
    return numbers[0], numbers[1], numbers[2]


def parse_cidr_address(text: object) -> IpInterface:
    """An address with its prefix length (`10.1.0.5/16`, `fd00::5/64`), as Go's `net.ParseCIDR` reads one."""
    if isinstance(text, str):
        _, slash, prefix = text.partition("/")
        if slash and prefix.isdecimal() and prefix.isascii():
            try:
                return ipaddress.ip_interface(text)
            except ValueError:
                pass
    raise ValueError(f"{text!r} is not an address in CIDR notation (like 10.1.0.5/16)")


def parse_cidr_network(text: object) -> IpNetwork:
    """A destination in CIDR notation; host bits are dropped, as Go's `net.ParseCIDR` drops them."""
    return parse_cidr_address(text).network


def parse_address(text: object) -> IpAddress:
    if isinstance(text, str):
        try:
            return ipaddress.ip_address(text)
        except ValueError:
            pass
    raise ValueError(f"{text!r} is not an IP address")


def parse_ipam_result(obj: Mapping[str, Any], *, source: str = "IPAM result") -> IpamResult:
    """An IPAM plugin's ADD output of any CNI version. `source` says whose output it is in the error."""
    try:
        return _result(obj)
    except FieldError as error:
        raise CniError(DECODING_FAILURE, f"{source}: cannot decode {error.where}", error.reason) from None


# --- reading ----------------------------------------------------------------------------------------------------


class FieldError(VdpaOperatorError, ValueError):
    """A JSON value that cannot be read: where it is (`ips[0].address`) and why. Callers turn it into a CniError
    with their own code (a plugin's result is DECODING_FAILURE, an annotation or a config INVALID_CONFIG)."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason


def get_field(obj: Mapping[str, Any], key: str, where: str, read: Callable[[object], _T]) -> _T | None:
    """`obj[key]` read by `read`, or None when absent or null; a value `read` refuses is a FieldError."""
    value = obj.get(key)
    if value is None:
        return None
    try:
        return read(value)
    except ValueError as error:
        raise FieldError(_join(where, key), str(error)) from None


def get_items(obj: Mapping[str, Any], key: str, where: str) -> list[tuple[str, object]]:
    """The elements of the list `obj[key]` with their paths (`routes[1]`); absent or null is no elements."""
    value = obj.get(key)
    if value is None:
        return []
    path = _join(where, key)
    if not isinstance(value, list):
        raise FieldError(path, f"{_json_type(value)} where a list belongs")
    return [(f"{path}[{index}]", item) for index, item in enumerate(value)]


def as_mapping(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise FieldError(where, f"{_json_type(value)} where an object belongs")
    return value


def as_text(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{_json_type(value)} where a string belongs")
    return value


def as_strings(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"{value!r} is not a list of strings")
    return tuple(value)


def as_unsigned(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{value!r} is not a non-negative integer")
    return value


def _result(obj: object) -> IpamResult:
    body = as_mapping(obj, "the result")
    version = get_field(body, "cniVersion", "", version_key)
    legacy = version < (0, 3, 0) if version is not None else "ips" not in body and ("ip4" in body or "ip6" in body)
    dns = _dns(body.get("dns"))
    if legacy:
        return _legacy_result(body, dns)
    ips = tuple(_ip(item, where) for where, item in get_items(body, "ips", ""))
    routes = tuple(_route(item, where) for where, item in get_items(body, "routes", ""))
    return IpamResult(ips=ips, routes=routes, dns=dns)


def _legacy_result(body: Mapping[str, Any], dns: DnsConfig) -> IpamResult:
    ips: list[IpConfig] = []
    routes: list[RouteConfig] = []
    for family, key in ((4, "ip4"), (6, "ip6")):
        if body.get(key) is None:
            continue
        section = as_mapping(body[key], key)
        address = get_field(section, "ip", key, parse_cidr_address)
        if address is None:
            raise FieldError(f"{key}.ip", "missing")
        if address.version != family:
            raise FieldError(f"{key}.ip", f"{address} is not an IPv{family} address")
        ips.append(IpConfig(address, get_field(section, "gateway", key, parse_address)))
        routes.extend(_route(item, where) for where, item in get_items(section, "routes", key))
    return IpamResult(ips=tuple(ips), routes=tuple(routes), dns=dns)


def _ip(item: object, where: str) -> IpConfig:
    entry = as_mapping(item, where)
    address = get_field(entry, "address", where, parse_cidr_address)
    if address is None:
        raise FieldError(f"{where}.address", "missing")
    family = get_field(entry, "version", where, as_text)
    if family is not None and family != str(address.version):
        raise FieldError(f"{where}.version", f"{family!r} but the address is {address} (IPv{address.version})")
    get_field(entry, "interface", where, as_unsigned)
    return IpConfig(address, get_field(entry, "gateway", where, parse_address))


def _route(item: object, where: str) -> RouteConfig:
    entry = as_mapping(item, where)
    dst = get_field(entry, "dst", where, parse_cidr_network)
    if dst is None:
        raise FieldError(f"{where}.dst", "missing")
    numbers = {key: get_field(entry, key, where, as_unsigned) for key in _ROUTE_NUMBERS}
    return RouteConfig(dst, get_field(entry, "gw", where, parse_address), **numbers)


def _dns(value: object) -> DnsConfig:
    if value is None:
        return DnsConfig()
    body = as_mapping(value, "dns")
    return DnsConfig(
        nameservers=get_field(body, "nameservers", "dns", as_strings) or (),
        domain=get_field(body, "domain", "dns", as_text) or "",
        search=get_field(body, "search", "dns", as_strings) or (),
        options=get_field(body, "options", "dns", as_strings) or (),
    )


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _json_type(value: object) -> str:
    names: Sequence[tuple[type, str]] = ((bool, "a boolean"), (str, "a string"), (int, "a number"),
                                         (float, "a number"), (list, "a list"), (dict, "an object"))
    return next((f"{name} ({value!r})" for kind, name in names if isinstance(value, kind)), repr(value))
