"""A PF's netdevs as upstream tells them apart: its uplink and, in switchdev, the VF representors.

Why here: the node daemon's discovery and the device plugin both need the same answers, and both must reach
the machine through the Host port only. These are functions over the port, with no I/O of their own; each
netdev's switch port is read once per call.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from vdpa_operator.host.errors import HostError
from vdpa_operator.host.port import Host
from vdpa_operator.host.types import DevlinkHandle, EswitchMode, PciAddress, PciFunction, SwitchPort

logger = logging.getLogger(__name__)

_UPLINK_PORT = re.compile(r"^p\d+$")


@dataclass(frozen=True, slots=True)
class PfNetdevs:
    uplink: str
    """The PF's own netdev (upstream `TryGetInterfaceName`); "" when the PF has none."""
    uplink_port: SwitchPort | None
    """The uplink's switch port (`p<N>` on mlx5, in either mode); None when it is not a switch port."""
    representors: Mapping[int, str] = field(default_factory=dict, hash=False)
    """VF index → representor netdev; empty unless the eswitch is in switchdev mode."""


def pf_netdevs(host: Host, fn: PciFunction, *, mode: str | None = None) -> PfNetdevs:
    """The netdevs under the PF's `net/` sorted out. `mode` is the PF's eswitch mode when the caller has read it
    already (`eswitch_mode`); otherwise it is read here, and only when some netdev looks like a representor."""
    ports = {netdev: host.links.switch_port(netdev) for netdev in fn.netdevs}
    name, port = _uplink(fn, ports)
    representors = _representors(ports, port)
    if representors and (mode if mode is not None else eswitch_mode(host, fn.address)) != EswitchMode.SWITCHDEV:
        representors = {}
    return PfNetdevs(uplink=name, uplink_port=port, representors=representors)


def eswitch_mode(host: Host, pf: PciAddress) -> str:
    """Upstream `GetNicSriovMode`: any devlink failure (no devlink, no eswitch, an old kernel) reads legacy."""
    try:
        return str(host.devlink.eswitch_mode(DevlinkHandle.pci(pf)))
    except HostError as exc:
        logger.debug("eswitch mode of pci/%s unreadable, reporting legacy: %s", pf, exc)
        return str(EswitchMode.LEGACY)


def _uplink(fn: PciFunction, ports: Mapping[str, SwitchPort | None]) -> tuple[str, SwitchPort | None]:
    """Upstream `TryGetInterfaceName`: the only netdev, else the one that is the uplink switch port `p<N>`
    (in switchdev the representors share the PF's `net/` directory)."""
    for name, port in ports.items():
        if port is not None and _UPLINK_PORT.match(port.port_name):
            return name, port
    if fn.netdevs:
        return fn.netdevs[0], ports[fn.netdevs[0]]
    return "", None


def _representors(ports: Mapping[str, SwitchPort | None], uplink: SwitchPort | None) -> dict[int, str]:
    """VF index → representor netdev among the PF's netdevs: same switch id, `phys_port_name` `pf<N>vf<M>`
    (sriovnet `GetVfRepresentor`)."""
    if uplink is None:
        return {}
    prefix = f"pf{uplink.port_name.removeprefix('p')}vf"
    found = {}
    for name, port in ports.items():
        if port is not None and port.switch_id == uplink.switch_id and port.port_name.startswith(prefix):
            index = port.port_name.removeprefix(prefix)
            if index.isdigit():
                found[int(index)] = name
    return found
