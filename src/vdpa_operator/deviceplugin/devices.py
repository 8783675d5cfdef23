"""What the device plugin knows of a node's net devices, read once per scan (`discovery.scan`) and then only
compared and selected (`pools`, `allocation`): frozen values, no Host."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class VdpaInfo:
    """The vDPA device whose parent (management device `pci/<VF>`) is a VF, as sysfs shows it now."""

    name: str
    """`vdpa:0000:65:00.2` (free-form; the operator names them so)."""
    driver: str | None
    """Bound vdpa bus driver; None when unbound."""
    chardev: str | None = None
    """`/dev/vhost-vdpa-N` when bound to vhost_vdpa and the node exists."""


@dataclass(frozen=True, slots=True)
class NetDevice:
    """One PCI network function the plugin may offer (upstream `pciNetDevice`); its ID is its PCI address."""

    address: str
    vendor: str
    device: str
    driver: str
    """"" when unbound."""
    pf_address: str = ""
    """The PF of a VF; "" for a function that is not a VF."""
    pf_name: str = ""
    """The PF's netdev (the uplink in switchdev), as `pfNames` selectors match it."""
    vf_index: int = -1
    """Index among the PF's VFs (`virtfnN`); -1 for a function that is not a VF."""
    link_type: str = ""
    """`ether`/`infiniband` from the function's netdev, else its PF's; "" when neither is visible."""
    numa_node: int | None = None
    acpi_index: str = ""
    representor: str = ""
    """The VF's representor netdev in switchdev mode."""
    vdpa: VdpaInfo | None = None


@dataclass(frozen=True, slots=True)
class Inventory:
    """One scan of the node."""

    devices: Mapping[str, NetDevice] = field(default_factory=dict)
    """By PCI address, in address order."""
    vhost_net: str | None = None
    """`/dev/vhost-net` when present (for `needVhostNet`)."""
    tun: str | None = None
    """`/dev/net/tun` when present (for `needVhostNet`)."""
