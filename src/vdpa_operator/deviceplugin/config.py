"""The resource config (`--config-file`, upstream's `/etc/pcidp/config.json`): JSON text → `ResourceConfig`s.

Read the way upstream's Go parser reads it, so the ConfigMap the operator renders (`{"resourceList":[…]}` with
`IsRdma`, `NeedVhostNet` and a stray `SelectorObj`) means the same here: keys match case-insensitively
(`encoding/json`), unknown keys are ignored (with a warning here, except the operator's own stray), `selectors` is
one object or a list of them, `deviceType` defaults to `netDevice`. Stricter than upstream where upstream silently
serves less: a value of the wrong type, a resource name kubelet would refuse, a malformed `#first-last` range, an
unknown `vdpaType` or `isRdma` with `vdpaType` is an error naming the entry and the field (upstream drops the
resource or selects nothing). Pure: text in, values out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vdpa_operator import bounded
from vdpa_operator.api.golang import atoi
from vdpa_operator.errors import VdpaOperatorError
from vdpa_operator.host.types import VDPA_DRIVER_FOR_TYPE

NET_DEVICE = "netDevice"
OTHER_DEVICE_TYPES = ("accelerator", "auxNetDevice")
"""Upstream device types this plugin does not serve (it serves VFs as net devices only)."""
DEFAULT_RESOURCE_PREFIX = "openshift.io"

_RESOURCE_NAME = re.compile(r"^[a-zA-Z0-9_-]+$")
"""Upstream `ValidResourceName`."""
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


class ConfigError(VdpaOperatorError, ValueError):
    """The config cannot be served: says which file, which entry and which field, and what to do."""


@dataclass(frozen=True, slots=True)
class NetSelector:
    """One selector object (upstream `NetDeviceSelectors`). Empty lists select everything."""

    vendors: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    drivers: tuple[str, ...] = ()
    pci_addresses: tuple[str, ...] = ()
    acpi_indexes: tuple[str, ...] = ()
    pf_names: tuple[str, ...] = ()
    root_devices: tuple[str, ...] = ()
    link_types: tuple[str, ...] = ()
    ddp_profiles: tuple[str, ...] = ()
    pkeys: tuple[str, ...] = ()
    is_rdma: bool = False
    need_vhost_net: bool = False
    vdpa_type: str = ""


@dataclass(frozen=True, slots=True)
class ResourceConfig:
    """One entry of `resourceList` with the command line's prefix applied (a resource's own prefix wins)."""

    name: str
    prefix: str
    selectors: tuple[NetSelector, ...]
    exclude_topology: bool = False
    additional_info: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """`additionalInfo`: `*` (every device) or a PCI address → extra key/values for the `_INFO` env."""

    @property
    def resource_name(self) -> str:
        """The extended resource kubelet advertises: `openshift.io/mlxnics`."""
        return f"{self.prefix}/{self.name}"


@dataclass(frozen=True, slots=True)
class Config:
    resources: tuple[ResourceConfig, ...]
    warnings: tuple[str, ...] = ()


# --- Go's encoding/json, for the shapes this config uses ---------------------------------------------------------

_JSON_KINDS = {dict: "object", list: "array", str: "string", bool: "bool", int: "number", float: "number"}


def _kind(value: object) -> str:
    return _JSON_KINDS.get(type(value), "null")


OPERATOR_STRAYS = frozenset({"SelectorObj"})
"""Keys the operator writes (a Go field of its own, always null) that upstream's plugin ignores: ignored without a
word, or every device plugin would warn about its own operator's ConfigMap at each start."""


class _Fields:
    """One JSON object decoded like a Go struct: each key goes to the field whose name equals it, else to one
    whose name equals it ignoring case (the last such key wins); other keys are reported as unknown."""

    def __init__(self, obj: Mapping[str, Any], names: Sequence[str], where: str, warnings: list[str]) -> None:
        self.where = where
        self.values: dict[str, Any] = {}
        folded = {name.casefold(): name for name in names}
        for key, value in obj.items():
            name = key if key in names else folded.get(key.casefold())
            if name is not None:
                self.values[name] = value
            elif key not in OPERATOR_STRAYS:
                warnings.append(f"{where}: unknown field {key!r} ignored")

    def _typed(self, name: str, kind: str, check: Callable[[Any], bool]) -> Any:
        value = self.values.get(name)
        if value is None:
            return None
        if not check(value):
            raise ConfigError(f"{self.where}.{name}: expected {kind}, got {_kind(value)} {json.dumps(value)}")
        return value

    def string(self, name: str) -> str:
        return self._typed(name, "a string", lambda v: isinstance(v, str)) or ""

    def boolean(self, name: str) -> bool:
        return bool(self._typed(name, "true or false", lambda v: isinstance(v, bool)))

    def strings(self, name: str) -> tuple[str, ...]:
        """A `[]string`: a list whose items are strings (a null item is "", as in Go)."""
        items = self._typed(name, "a list of strings", lambda v: isinstance(v, list)) or []
        for index, item in enumerate(items):
            if item is not None and not isinstance(item, str):
                raise ConfigError(f"{self.where}.{name}[{index}]: expected a string, got {_kind(item)} "
                                  f"{json.dumps(item)}")
        return tuple(item or "" for item in items)

    def raw(self, name: str) -> Any:
        return self.values.get(name)


# --- the config --------------------------------------------------------------------------------------------------

_RESOURCE_FIELDS = ("resourcePrefix", "resourceName", "deviceType", "excludeTopology", "selectors",
                    "additionalInfo", "SelectorObjs")
_SELECTOR_FIELDS = ("vendors", "devices", "drivers", "pciAddresses", "acpiIndexes", "pfNames", "rootDevices",
                    "linkTypes", "IsRdma", "needVhostNet", "ddpProfiles", "vdpaType", "pKeys")


def parse_config(text: str, *, source: str, default_prefix: str = DEFAULT_RESOURCE_PREFIX) -> Config:
    """Decode and check the whole config; ConfigError (naming `source`) on the first problem."""
    try:
        document = bounded.loads_json(text, source)
    except bounded.LimitExceeded as exc:
        raise ConfigError(str(exc)) from None
    except bounded.ParseError as exc:
        raise ConfigError(f"{exc}; the file must hold {{\"resourceList\": [...]}}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"{source}: expected a JSON object {{\"resourceList\": [...]}}, got {_kind(document)}")
    warnings: list[str] = []
    top = _Fields(document, ("resourceList",), source, warnings)
    entries = top.raw("resourceList")
    if entries is not None and not isinstance(entries, list):
        raise ConfigError(f"{source}: resourceList: expected a list, got {_kind(entries)}")
    resources: list[ResourceConfig] = []
    seen: dict[str, str] = {}
    for index, entry in enumerate(entries or []):
        where = f"{source}: resourceList[{index}]"
        resource = _resource(entry, where, default_prefix, warnings)
        if resource is None:
            continue
        if resource.resource_name in seen:
            raise ConfigError(f"{where}: resource {resource.resource_name} is already defined by "
                              f"{seen[resource.resource_name]}; each resourcePrefix/resourceName must be unique")
        seen[resource.resource_name] = f"resourceList[{index}]"
        resources.append(resource)
    return Config(tuple(resources), tuple(warnings))


def _resource(entry: object, where: str, default_prefix: str, warnings: list[str]) -> ResourceConfig | None:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected an object, got {_kind(entry)}")
    fields = _Fields(entry, _RESOURCE_FIELDS, where, warnings)
    name = fields.string("resourceName")
    label = f"{where} ({name})" if name else where
    device_type = fields.string("deviceType") or NET_DEVICE
    if device_type in OTHER_DEVICE_TYPES:
        warnings.append(f"{label}: deviceType {device_type} is not served by this device plugin (it serves VFs "
                        "as netDevice); resource skipped")
        return None
    if device_type != NET_DEVICE:
        raise ConfigError(f"{label}.deviceType: unsupported device type {device_type!r}; use {NET_DEVICE}")
    own_prefix = fields.string("resourcePrefix")
    _check_names(label, own_prefix or default_prefix, name, prefix_from="" if own_prefix else " (--resource-prefix)")
    return ResourceConfig(
        name=name,
        prefix=own_prefix or default_prefix,
        selectors=_selectors(fields.raw("selectors"), label, warnings),
        exclude_topology=fields.boolean("excludeTopology"),
        additional_info=_additional_info(fields.raw("additionalInfo"), label),
    )


def _check_names(where: str, prefix: str, name: str, *, prefix_from: str) -> None:
    if not name:
        raise ConfigError(f"{where}.resourceName: required")
    if not _RESOURCE_NAME.fullmatch(name):
        raise ConfigError(f"{where}.resourceName: {name!r} contains invalid characters; use letters, digits, "
                          "'_' and '-' only")
    if len(name) > 63 or not _QUALIFIED_NAME.fullmatch(name):
        raise ConfigError(f"{where}.resourceName: {name!r} must be at most 63 characters and start and end "
                          "with a letter or digit; kubelet refuses such extended resource names")
    if len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix):
        raise ConfigError(f"{where}.resourcePrefix{prefix_from}: {prefix!r} is not a DNS subdomain (lower case, e.g. "
                          "openshift.io); kubelet refuses such extended resource names")


def _selectors(raw: object, where: str, warnings: list[str]) -> tuple[NetSelector, ...]:
    """Upstream `parseObjectOrSlice`: one object, or a non-empty list of objects."""
    if raw is None:
        raise ConfigError(f"{where}.selectors: required (an object or a list of objects)")
    if isinstance(raw, dict):
        return (_selector(raw, f"{where}.selectors", warnings),)
    if not isinstance(raw, list):
        raise ConfigError(f"{where}.selectors: expected an object or a list of objects, got {_kind(raw)}")
    if not raw:
        raise ConfigError(f"{where}.selectors: need at least one selector, got an empty list")
    return tuple(_selector(item, f"{where}.selectors[{i}]", warnings) for i, item in enumerate(raw))


def _selector(raw: object, where: str, warnings: list[str]) -> NetSelector:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected an object, got {_kind(raw)}")
    f = _Fields(raw, _SELECTOR_FIELDS, where, warnings)
    selector = NetSelector(
        vendors=f.strings("vendors"), devices=f.strings("devices"), drivers=f.strings("drivers"),
        pci_addresses=f.strings("pciAddresses"), acpi_indexes=f.strings("acpiIndexes"),
        pf_names=f.strings("pfNames"), root_devices=f.strings("rootDevices"), link_types=f.strings("linkTypes"),
        ddp_profiles=f.strings("ddpProfiles"), pkeys=f.strings("pKeys"), is_rdma=f.boolean("IsRdma"),
        need_vhost_net=f.boolean("needVhostNet"), vdpa_type=f.string("vdpaType"),
    )
    if selector.vdpa_type and selector.vdpa_type not in VDPA_DRIVER_FOR_TYPE:
        raise ConfigError(f"{where}.vdpaType: {selector.vdpa_type!r} is not a vDPA type; use virtio or vhost")
    if selector.vdpa_type and selector.is_rdma:
        raise ConfigError(f"{where}: vdpaType and isRdma are mutually exclusive; a vDPA pool cannot be an RDMA "
                          "pool (drop one of them)")
    for name, entries in (("pfNames", selector.pf_names), ("rootDevices", selector.root_devices)):
        for index, entry in enumerate(entries):
            try:
                parse_function_range(entry)
            except ValueError as exc:
                raise ConfigError(f"{where}.{name}[{index}]: {exc}") from None
    return selector


def _additional_info(raw: object, where: str) -> dict[str, dict[str, str]]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}.additionalInfo: expected an object of objects, got {_kind(raw)}")
    info: dict[str, dict[str, str]] = {}
    for device, values in raw.items():
        if values is None:
            continue
        if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
            raise ConfigError(f"{where}.additionalInfo.{device}: expected an object of strings")
        info[device] = dict(values)
    return info


# --- `name#first-last,n` entries of pfNames and rootDevices ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FunctionRange:
    """`ens1f0#0-3,7`: a PF (name or PCI address) and, optionally, which of its VF indexes."""

    pf: str
    indexes: tuple[tuple[int, int], ...] | None
    """Inclusive (first, last) ranges; None = every VF."""

    def selects(self, vf_index: int) -> bool:
        return self.indexes is None or any(first <= vf_index <= last for first, last in self.indexes)


def parse_function_range(entry: str) -> FunctionRange:
    """Upstream `isSelected`'s syntax (Go `strconv.Atoi` for the numbers); ValueError says what is wrong."""
    pf, hash_sign, spec = entry.partition("#")
    if not hash_sign:
        return FunctionRange(pf, None)
    if "#" in spec:
        raise ValueError(f"{entry!r}: more than one '#'; expected <pf>#<first>-<last>[,<index>...]")
    ranges = []
    for part in spec.split(","):
        first, dash, last = part.partition("-")
        try:
            start = atoi(first)
            end = atoi(last) if dash else start
        except ValueError as exc:
            raise ValueError(f"{entry!r}: {exc}; expected <pf>#<first>-<last>[,<index>...]") from None
        if dash and "-" in last:
            raise ValueError(f"{entry!r}: bad range {part!r}; expected <first>-<last>")
        ranges.append((start, end))
    return FunctionRange(pf, tuple(ranges))
