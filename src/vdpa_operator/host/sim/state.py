"""The simulated host's state: plain dataclasses that round-trip through `<root>/state.json`.

Everything a second process needs to attach to the same simulated host lives here (configuration, PCI
functions, eswitch state, netdevs, vDPA devices, loaded modules, injected faults), and nothing else: the
sysfs tree under `<root>/sys` is rendered from it (`tree.py`) and never read back.

Derived facts (devlink ports, vdpa management devices, connected routes, link-local addresses) are computed
from this state on every query instead of being stored, so they can never disagree with it.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from vdpa_operator.host.types import SwitchPort

T = TypeVar("T")

MELLANOX = "15b3"
CX6DX_PF = "101d"
CX6DX_VF = "101e"
ETHERNET_CLASS = "0x020000"
PCI_DRIVER_MODULES = {"mlx5_core": "mlx5_core", "vfio-pci": "vfio_pci"}
"""PCI driver name → the module that registers it."""
VDPA_BUS_DRIVERS = ("virtio_vdpa", "vhost_vdpa")
MLX5_MAX_MTU = 9978
"""The largest MTU mlx5 netdevs (PF, VF, representor) take."""
DEFAULT_PARENT = "pci0000:64/0000:64:00.0"
"""Root port above the NIC: the PF directory is `devices/pci0000:64/0000:64:00.0/0000:65:00.0`."""


# --- configuration (fixed when the host is created) ---------------------------------------------------------------


@dataclass(frozen=True)
class PfSpec:
    """One port of a NIC: its PCI address (function number = port), netdev name and `sriov_totalvfs`."""

    address: str
    netdev: str
    totalvfs: int = 8


@dataclass(frozen=True)
class NicSpec:
    """One ConnectX-6 Dx card: its PFs (functions of one PCI device) and the root port above it."""

    pfs: tuple[PfSpec, ...]
    parent: str = DEFAULT_PARENT
    numa_node: int = 0
    """The node of the socket the root port hangs off; -1 as on a machine without NUMA information."""


DEFAULT_NICS = (NicSpec((PfSpec("0000:65:00.0", "ens1f0"), PfSpec("0000:65:00.1", "ens1f1"))),)


@dataclass
class Config:
    nics: list[NicSpec]
    kernel_release: str = "6.1.0-sim"
    """What `ethtool -i` shows as version for drivers that set none (mlx5): the kernel's UTS_RELEASE."""
    fw_version: str = "22.36.1010 (MT_0000000359)"
    vdpa_config_attrs: list[str] = field(default_factory=lambda: ["mac", "mtu", "max_vqp"])
    """The mgmtdev's `config_attr_mask`: 6.1 mlx5 = MAC|MAX_VQP|MTU; older kernels MAC only."""
    vdpa_attr_set: bool = True
    """Whether the vdpa family has VDPA_CMD_DEV_ATTR_SET (Linux >= 6.12, with mlx5's `dev_set_attr`); False
    models an older kernel, which answers EOPNOTSUPP."""
    switchdev_requires_unbound_vfs: bool = True
    vf_create_delay: float = 0.0
    max_virtio_queues: int = 256
    """`max_num_virtio_queues` of the VF (mgmtdev `max_supported_vqs` is this + 1)."""
    smfs_supported: bool = True
    vhost_major: int = 246
    node_netns: str | None = None
    """The real netns that backs the simulated node's own namespace (privileged mode), else None."""
    real_netdevs: bool = False


# --- runtime state ------------------------------------------------------------------------------------------------


@dataclass
class PciFn:
    address: str
    parent: str
    """Directory under `devices/` that holds the function (`pci0000:64/0000:64:00.0`)."""
    device: str
    pf: str | None = None
    vf_index: int | None = None
    driver: str | None = None
    driver_override: str | None = None
    vnet: bool = False
    """A VF probed by mlx5_core while its PF was in switchdev has the vDPA emulation capability (auxiliary
    `mlx5_core.vnet` device → mlx5_vdpa management device)."""
    flow_steering: str = "dmfs"
    vendor: str = MELLANOX
    class_code: str = ETHERNET_CLASS


@dataclass
class PfState:
    address: str
    netdev: str
    totalvfs: int
    offset: int
    stride: int
    pfnum: int
    vhca_id: int
    nic: int
    mac: str
    switch_id: str
    numvfs: int = 0
    eswitch: str = "legacy"
    drivers_autoprobe: bool = True
    vf_macs: dict[str, str] = field(default_factory=dict)
    pending_numvfs: int = 0
    pending_at: float = 0.0
    """VFs promised by a `sriov_numvfs` write that appear at `pending_at` (the `vf_create_delay` knob)."""


@dataclass
class Netdev:
    ifindex: int
    name: str
    kind: str
    """`loopback`, `pf`, `vf`, `rep` or `virtio`."""
    netns: str | None = None
    mtu: int = 1500
    min_mtu: int = 68
    max_mtu: int = 9978
    mac: str = "00:00:00:00:00:00"
    up: bool = False
    altnames: list[str] = field(default_factory=list)
    addresses: list[str] = field(default_factory=list)
    pci: str | None = None
    """The PCI function the netdev belongs to: PF for PF and representors, VF for VF and virtio netdevs."""
    vf: int | None = None
    vdpa: str | None = None
    """Set for a virtio netdev: the vdpa device that gave it (whose `virtio` index names its `virtio<N>`)."""
    hw_tc: bool | None = None
    """`hw-tc-offload`; None when the netdev does not have the feature."""
    real: bool = False
    """Backed by a real veth end in the node netns (privileged mode)."""


@dataclass
class RouteEntry:
    netns: str | None
    dst: str
    gateway: str | None
    ifindex: int | None


@dataclass
class VdpaDev:
    name: str
    vf: str
    mac: str | None
    mtu: int
    max_vqp: int | None
    nvqs: int
    driver: str | None = None
    driver_override: str | None = None
    virtio: int | None = None
    vhost_minor: int | None = None


@dataclass
class Fault:
    op: str
    errno: int | None = None
    delay: float = 0.0
    times: int | None = 1
    target: str | None = None
    after: int = 0
    """Matching operations that still succeed before this fault starts to hit (counted down)."""


@dataclass
class State:
    config: Config
    pci: dict[str, PciFn] = field(default_factory=dict)
    pfs: dict[str, PfState] = field(default_factory=dict)
    netdevs: list[Netdev] = field(default_factory=list)
    routes: list[RouteEntry] = field(default_factory=list)
    vdpa: dict[str, VdpaDev] = field(default_factory=dict)
    vdpa_autoprobe: bool = True
    pci_autoprobe: bool = True
    modules: list[str] = field(default_factory=list)
    """Loaded modules in load order (the vdpa bus binds a new device to the first registered driver)."""
    faults: list[Fault] = field(default_factory=list)
    next_ifindex: int = 2
    generation: int = 0


# --- derived facts -------------------------------------------------------------------------------------------


def vfs_of(state: State, pf: str) -> list[PciFn]:
    """The PF's VFs that exist (as PCI functions), by VF index."""
    return sorted((fn for fn in state.pci.values() if fn.pf == pf), key=lambda f: f.vf_index or 0)


def reps_of(state: State, pf: str) -> list[Netdev]:
    """The PF's representors."""
    return [n for n in state.netdevs if n.kind == "rep" and n.pci == pf]


def netdev_of(state: State, kind: str, pci: str) -> Netdev | None:
    """The netdev of `kind` (pf, vf) a PCI function has, if any."""
    return next((n for n in state.netdevs if n.kind == kind and n.pci == pci), None)


def pf_netdev_name(state: State, pf: PfState) -> str:
    """The PF netdev's name now (it may have been renamed), or the one it is created with."""
    nd = netdev_of(state, "pf", pf.address)
    return nd.name if nd is not None else pf.netdev


Representors = dict[tuple[str | None, int | None], Netdev]
"""Representors by (PF address, VF index): one pass over the netdevs for a caller that asks about many."""


def representors(state: State) -> Representors:
    return {(n.pci, n.vf): n for n in state.netdevs if n.kind == "rep"}


def rep_of(state: State, nd: Netdev, reps: Representors | None = None) -> Netdev | None:
    """The representor of the VF a VF or virtio netdev belongs to (looked up in `reps` when given)."""
    fn = state.pci.get(nd.pci or "")
    if fn is None or fn.pf is None:
        return None
    if reps is not None:
        return reps.get((fn.pf, fn.vf_index))
    return next((n for n in state.netdevs if n.kind == "rep" and n.pci == fn.pf and n.vf == fn.vf_index), None)


def carrier(state: State, nd: Netdev, reps: Representors | None = None) -> bool:
    """Link up as the driver reports it: VF and virtio netdevs of a switchdev PF follow their representor's
    admin state (mlx5 sets the VF vport's state from the representor)."""
    if not nd.up:
        return False
    if nd.kind in ("vf", "virtio"):
        fn = state.pci.get(nd.pci or "")
        if fn is not None and fn.pf is not None and state.pfs[fn.pf].eswitch == "switchdev":
            rep = rep_of(state, nd, reps)
            return rep is not None and rep.up
    return True


PF_SPEED_MBPS = 100000
"""A ConnectX-6 Dx port with a 100G link."""


def link_speed(state: State, nd: Netdev, has_carrier: bool | None = None) -> int | None:
    """`speed`: the PF's link speed while it has carrier; the kernel answers EINVAL otherwise, and VF,
    representor and virtio netdevs here report none. `has_carrier`: `carrier`'s answer, when known."""
    if nd.kind != "pf":
        return None
    return PF_SPEED_MBPS if (carrier(state, nd) if has_carrier is None else has_carrier) else None


def oper_state(state: State, nd: Netdev, has_carrier: bool | None = None) -> str:
    """IFLA_OPERSTATE, lower case; lo reports `unknown` when up, as it has no carrier notion. `has_carrier`:
    `carrier`'s answer, when known."""
    if nd.kind == "loopback":
        return "unknown" if nd.up else "down"
    return "up" if (carrier(state, nd) if has_carrier is None else has_carrier) else "down"


def switch_port(state: State, nd: Netdev) -> SwitchPort | None:
    """`phys_port_name`/`phys_switch_id`: the PF (uplink, also in legacy: mlx5e registers a physical devlink
    port with the switch id) and representors; None where the kernel answers EOPNOTSUPP (VF, virtio, lo)."""
    if nd.kind == "pf" and nd.pci is not None:
        pf = state.pfs[nd.pci]
        return SwitchPort(f"p{pf.pfnum}", pf.switch_id)
    if nd.kind == "rep" and nd.pci is not None:
        pf = state.pfs[nd.pci]
        return SwitchPort(f"pf{pf.pfnum}vf{nd.vf}", pf.switch_id)
    return None


# --- JSON round trip ----------------------------------------------------------------------------------------------


def to_json(state: State) -> dict[str, Any]:
    """What `dataclasses.asdict` gives, without its deep copy of every leaf (the state is saved on every
    change)."""
    result: dict[str, Any] = _dumper(State)(state)
    return result


def from_json(data: dict[str, Any]) -> State:
    return convert(State, data)


def _convert(tp: Any, value: Any) -> Any:
    """Rebuild `tp` from what `dataclasses.asdict` produced (lists for tuples, dicts for dataclasses)."""
    return _converter(tp)(value)


@functools.cache
def _converter(tp: Any) -> Callable[[Any], Any]:
    """One function per type, built once: the state is re-read on every kernel call, so the type inspection is
    done here and not per value."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        inner = _converter(next(arg for arg in typing.get_args(tp) if arg is not type(None)))
        return lambda value: None if value is None else inner(value)
    if origin in (list, tuple):
        item = _converter(typing.get_args(tp)[0])
        build = list if origin is list else tuple
        return lambda value: None if value is None else build(item(v) for v in value)
    if origin is dict:
        item = _converter(typing.get_args(tp)[1])
        return lambda value: None if value is None else {str(k): item(v) for k, v in value.items()}
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        fields = tuple((name, _converter(hint)) for name, hint in _fields(tp))
        cls = tp

        def build_dataclass(value: Any) -> Any:
            if value is None:
                return None
            return cls(**{name: conv(value[name]) for name, conv in fields if name in value})

        return build_dataclass
    return lambda value: value


@functools.cache
def _dumper(tp: Any) -> Callable[[Any], Any]:
    """The inverse of `_converter`: plain lists and dicts of the leaves (str, int, float, bool, None)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        inner = _dumper(next(arg for arg in typing.get_args(tp) if arg is not type(None)))
        return lambda value: None if value is None else inner(value)
    if origin in (list, tuple):
        item = _dumper(typing.get_args(tp)[0])
        return lambda value: None if value is None else [item(v) for v in value]
    if origin is dict:
        item = _dumper(typing.get_args(tp)[1])
        return lambda value: None if value is None else {k: item(v) for k, v in value.items()}
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        fields = tuple((name, _dumper(hint)) for name, hint in _fields(tp))
        return lambda value: None if value is None else {name: dump(getattr(value, name)) for name, dump in fields}
    return lambda value: value


@functools.cache
def _fields(tp: type) -> tuple[tuple[str, Any], ...]:
    hints = typing.get_type_hints(tp)
    return tuple((f.name, hints[f.name]) for f in dataclasses.fields(tp))


def convert(tp: type[T], value: Any) -> T:
    result: T = _convert(tp, value)
    return result
