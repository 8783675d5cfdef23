"""The CNI protocol as `vdpa-cni` speaks it (containernetworking/cni SPEC.md, versions 0.3.0 to 1.1.0): which
verbs each version has, the environment and the network config a request carries, checked the way libcni's
`skel` checks them, and the result written in the version the config asked for. Pure: values in, values out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vdpa_operator import bounded
from vdpa_operator.cni.errors import (
    DECODING_FAILURE,
    INCOMPATIBLE_VERSION,
    INVALID_CONFIG,
    INVALID_ENVIRONMENT,
    UNKNOWN_CONTAINER,
    CniError,
)
from vdpa_operator.cni.ipam_result import DnsConfig, IpamResult, IpConfig, RouteConfig, parse_ipam_result

SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
LATEST = SUPPORTED_VERSIONS[-1]
COMMANDS = ("ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION")
SINCE = {"CHECK": "0.4.0", "STATUS": "1.1.0", "GC": "1.1.0"}
"""Verbs newer than the oldest version we speak, and the version that brought them."""
VALID_ATTACHMENTS = ("cni.dev/valid-attachments", "cni.dev/attachments")
"""GC's list of attachments to keep: the 1.1.0 spec's key, and the name libcni used before it."""

NAME_RULE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.\-]*")
"""libcni `cniValidNameChars` (use `fullmatch`): container IDs and network names; no path separator, never `.`
or `..`, so the node allocator's lease store may use them as file names."""
MAX_IFNAME = 15
"""IFNAMSIZ - 1 bytes."""


def version_key(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError:
        raise CniError(DECODING_FAILURE, f"invalid cniVersion {version!r}",
                       "expected a version such as 1.0.0") from None


# --- the request -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NetConf:
    """The plugin configuration on stdin, with what libcni and Multus add to it."""

    cni_version: str
    name: str
    type: str
    raw: Mapping[str, Any]
    """Everything, as decoded (delegated IPAM plugins get the same bytes)."""
    device_id: str = ""
    """The VF's PCI address: top-level `deviceID` as Multus injects it, else `runtimeConfig.deviceID`."""
    device_info_file: str = ""
    """`runtimeConfig.CNIDeviceInfoFile`, when the config declares that capability."""
    ipam: Mapping[str, Any] = field(default_factory=dict)
    mtu: int | None = None
    mac: str = ""
    """`mac`, or `runtimeConfig.mac` (the `mac` capability)."""
    server_socket: str = ""
    prev_result: Mapping[str, Any] | None = None
    valid_attachments: tuple[tuple[str, str], ...] | None = None
    """GC: the (containerID, ifname) pairs to keep."""


@dataclass(frozen=True)
class CniRequest:
    command: str
    config: NetConf
    config_bytes: bytes
    env: Mapping[str, str]
    """The CNI_* environment, passed on to delegated plugins as received."""
    container_id: str = ""
    netns: str = ""
    ifname: str = ""
    args: Mapping[str, str] = field(default_factory=dict)
    """`CNI_ARGS` as key → value (`K8S_POD_NAMESPACE`, `K8S_POD_NAME`, `K8S_POD_UID`, …)."""
    device_info: Mapping[str, Any] | None = None
    """The device-info file's content, read by the shim (it runs where the runtime put the file)."""

    @property
    def pod(self) -> tuple[str, str]:
        return self.args.get("K8S_POD_NAMESPACE", ""), self.args.get("K8S_POD_NAME", "")


_REQUIRED = {
    # variable: the commands that need it (libcni skel's table; CNI_NETNS is optional on DEL)
    "CNI_CONTAINERID": ("ADD", "CHECK", "DEL"),
    "CNI_NETNS": ("ADD", "CHECK"),
    "CNI_IFNAME": ("ADD", "CHECK", "DEL"),
    "CNI_PATH": ("ADD", "CHECK", "DEL", "GC", "STATUS"),
}


def parse_request(env: Mapping[str, str], stdin: bytes, device_info: str | None = None) -> CniRequest:
    """A request from the CNI environment and stdin; CniError with the spec's code for what is wrong, checked
    before anything is done (skel's order: the environment, then the config, then the version)."""
    command = env.get("CNI_COMMAND", "")
    if command not in COMMANDS:
        raise CniError(INVALID_ENVIRONMENT, f"unknown CNI_COMMAND {command!r}" if command else
                       "required env variables [CNI_COMMAND] missing", f"one of {', '.join(COMMANDS)}")
    missing = [name for name, commands in _REQUIRED.items() if command in commands and not env.get(name)]
    if missing:
        raise CniError(INVALID_ENVIRONMENT, f"required env variables [{','.join(missing)}] missing")
    container_id, ifname = env.get("CNI_CONTAINERID", ""), env.get("CNI_IFNAME", "")
    if command in ("ADD", "CHECK", "DEL"):
        check_container_id(container_id)
        check_ifname(ifname)
    config = parse_config(stdin, command)
    return CniRequest(
        command=command, config=config, config_bytes=stdin,
        env={k: v for k, v in env.items() if k.startswith("CNI_")},
        container_id=container_id, netns=env.get("CNI_NETNS", ""), ifname=ifname,
        args=parse_args(env.get("CNI_ARGS", "")), device_info=_device_info(device_info, config),
    )


def check_container_id(container_id: str) -> None:
    if not container_id:
        raise CniError(UNKNOWN_CONTAINER, "missing containerID")
    if not NAME_RULE.fullmatch(container_id):
        raise CniError(INVALID_ENVIRONMENT, "invalid characters in containerID", container_id)


def check_ifname(ifname: str) -> None:
    problem = ifname_problem(ifname)
    if problem:
        raise CniError(INVALID_ENVIRONMENT, *problem)


def ifname_problem(ifname: str) -> tuple[str, str] | None:
    """libcni `ValidateInterfaceName` (the kernel's `dev_valid_name`): its (message, details), None when valid."""
    if not ifname:
        return "interface name is empty", ""
    if len(ifname.encode()) > MAX_IFNAME:  # Go's len(): bytes
        return "interface name is too long", f"interface name should be less than {MAX_IFNAME + 1} characters"
    if ifname in (".", ".."):
        return "interface name is . or ..", ""
    if any(c in "/:" or c.isspace() for c in ifname):
        return "interface name contains / or : or whitespace characters", ""
    return None


def parse_args(text: str) -> dict[str, str]:
    """`CNI_ARGS`: `K=V;K=V` (libcni's `LoadArgs` splits on ';' then the first '=')."""
    args = {}
    for pair in filter(None, text.split(";")):
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CniError(INVALID_ENVIRONMENT, "invalid CNI_ARGS pair", f"{pair!r} in CNI_ARGS is not K=V")
        args[key] = value
    return args


def parse_config(stdin: bytes, command: str = "ADD") -> NetConf:
    try:
        raw = bounded.loads_json(stdin or b"null", "stdin")
    except bounded.ParseError as exc:
        raise CniError(DECODING_FAILURE, f"error unmarshall network config: {exc}") from None
    if not isinstance(raw, dict):
        raise CniError(DECODING_FAILURE, "error unmarshall network config: expected a JSON object")
    version = _string(raw, "cniVersion") or "0.1.0"
    if command == "VERSION":
        return NetConf(cni_version=version, name="", type="", raw=raw)
    name = _string(raw, "name")
    if not name:
        raise CniError(INVALID_CONFIG, "missing network name")
    if not NAME_RULE.fullmatch(name):
        raise CniError(INVALID_CONFIG, "invalid characters found in network name", name)
    if version not in SUPPORTED_VERSIONS:
        version_key(version)
        raise CniError(INCOMPATIBLE_VERSION, "incompatible CNI versions",
                       f"config is {version!r}, plugin supports {list(SUPPORTED_VERSIONS)}")
    since = SINCE.get(command)
    if since is not None and version_key(version) < version_key(since):
        raise CniError(INCOMPATIBLE_VERSION, f"config version does not allow {command}",
                       f"{command} needs cniVersion {since} or later; the config says {version}")
    runtime = raw.get("runtimeConfig") or {}
    if not isinstance(runtime, dict):
        raise CniError(INVALID_CONFIG, "runtimeConfig must be an object")
    ipam = raw.get("ipam") or {}
    if not isinstance(ipam, dict):
        raise CniError(INVALID_CONFIG, "ipam must be an object", json.dumps(ipam))
    prev = raw.get("prevResult")
    if prev is not None and not isinstance(prev, dict):
        raise CniError(DECODING_FAILURE, "prevResult must be an object")
    mtu = raw.get("mtu")
    if mtu is not None and (isinstance(mtu, bool) or not isinstance(mtu, int) or not 68 <= mtu <= 65535):
        raise CniError(INVALID_CONFIG, "invalid mtu", f"mtu {mtu!r} is not an integer from 68 to 65535")
    return NetConf(
        cni_version=version, name=name, type=_string(raw, "type"), raw=raw,
        device_id=_string(raw, "deviceID") or _string(runtime, "deviceID"),
        device_info_file=_string(runtime, "CNIDeviceInfoFile"), ipam=ipam, mtu=mtu,
        mac=_string(raw, "mac") or _string(runtime, "mac"), server_socket=_string(raw, "serverSocket"),
        prev_result=prev, valid_attachments=_valid_attachments(raw) if command == "GC" else None,
    )


def _string(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise CniError(INVALID_CONFIG, f"{key} must be a string", json.dumps(value))
    return value


def _valid_attachments(raw: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    entries: list[Any] = []
    for key in VALID_ATTACHMENTS:
        value = raw.get(key)
        if value is None:
            continue
        if not isinstance(value, list):
            raise CniError(INVALID_CONFIG, f"{key} must be a list of {{containerID, ifname}}")
        entries += value
    pairs = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("containerID"), str) \
                or not isinstance(entry.get("ifname"), str):
            raise CniError(INVALID_CONFIG, "a valid attachment needs containerID and ifname", json.dumps(entry))
        pairs.append((entry["containerID"], entry["ifname"]))
    return tuple(pairs)


def _device_info(text: str | None, config: NetConf) -> Mapping[str, Any] | None:
    if text is None:
        return None
    try:
        info = bounded.loads_json(text, config.device_info_file)
    except bounded.ParseError as exc:
        raise CniError(DECODING_FAILURE, "the device-info file is not JSON", str(exc)) from None
    if not isinstance(info, dict):
        raise CniError(DECODING_FAILURE, "the device-info file is not a JSON object", config.device_info_file)
    return info


# --- the result --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Interface:
    name: str
    mac: str = ""
    sandbox: str = ""
    mtu: int | None = None
    pci_id: str = ""


@dataclass(frozen=True)
class Result:
    interfaces: tuple[Interface, ...]
    ips: tuple[tuple[IpConfig, int | None], ...] = ()
    """Each IP with the index of its interface in `interfaces`."""
    routes: tuple[RouteConfig, ...] = ()
    dns: DnsConfig = field(default_factory=DnsConfig)

    @classmethod
    def of(cls, interfaces: Sequence[Interface], ipam: IpamResult | None, interface: int) -> Result:
        if ipam is None:
            return cls(tuple(interfaces))
        return cls(tuple(interfaces), tuple((ip, interface) for ip in ipam.ips), ipam.routes, ipam.dns)

    def to_json(self, version: str) -> dict[str, Any]:
        """The result as `version` writes it: 0.3.x/0.4.0 carry `version` in each IP; 1.1.0 adds the
        interface MTU and PCI ID and the route attributes."""
        new = version_key(version) >= (1, 1, 0)
        legacy = version_key(version) < (1, 0, 0)
        out: dict[str, Any] = {"cniVersion": version}
        if self.interfaces:
            out["interfaces"] = [_interface(i, new) for i in self.interfaces]
        if self.ips:
            out["ips"] = [_ip(ip, index, legacy) for ip, index in self.ips]
        if self.routes:
            out["routes"] = [_route(r, new) for r in self.routes]
        dns = _dns(self.dns)
        if dns or not legacy:
            out["dns"] = dns
        return out


def _interface(i: Interface, new: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"name": i.name}
    if i.mac:
        out["mac"] = i.mac
    if new and i.mtu:
        out["mtu"] = i.mtu
    if i.sandbox:
        out["sandbox"] = i.sandbox
    if new and i.pci_id:
        out["pciID"] = i.pci_id
    return out


def _ip(ip: IpConfig, index: int | None, legacy: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if legacy:
        out["version"] = str(ip.address.version)
    out["address"] = str(ip.address)
    if ip.gateway is not None:
        out["gateway"] = str(ip.gateway)
    if index is not None:
        out["interface"] = index
    return out


def _route(r: RouteConfig, new: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"dst": str(r.dst)}
    if r.gw is not None:
        out["gw"] = str(r.gw)
    if new:
        for key in ("mtu", "advmss", "priority", "table", "scope"):
            value = getattr(r, key)
            if value is not None:
                out[key] = value
    return out


def _dns(dns: DnsConfig) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if dns.nameservers:
        out["nameservers"] = list(dns.nameservers)
    if dns.domain:
        out["domain"] = dns.domain
    if dns.search:
        out["search"] = list(dns.search)
    if dns.options:
        out["options"] = list(dns.options)
    return out


def parse_result(obj: Mapping[str, Any]) -> Result:
    """A `prevResult` (any version) back into a Result: what CHECK compares against."""
    ipam = parse_ipam_result(obj)
    interfaces = []
    for entry in obj.get("interfaces") or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise CniError(DECODING_FAILURE, "prevResult.interfaces: each entry needs a name", json.dumps(entry))
        interfaces.append(Interface(entry["name"], str(entry.get("mac") or ""), str(entry.get("sandbox") or ""),
                                    entry.get("mtu"), str(entry.get("pciID") or "")))
    indexes = [ip.get("interface") if isinstance(ip, dict) else None for ip in obj.get("ips") or []]
    return Result(tuple(interfaces), tuple(zip(ipam.ips, indexes, strict=True)), ipam.routes, ipam.dns)


def version_result(cni_version: str) -> dict[str, Any]:
    """VERSION's answer: the version asked about, and every version this plugin speaks."""
    return {"cniVersion": cni_version, "supportedVersions": list(SUPPORTED_VERSIONS)}
