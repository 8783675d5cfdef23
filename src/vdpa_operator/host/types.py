"""Value types that cross the Host port.

Frozen, slotted dataclasses and small enums only: adapters never hand pyroute2 messages, ovsdbapp rows or
sysfs paths to their callers. Kernel spellings (`pci/0000:65:00.4`, `pf0vf3`, `virtio_vdpa`) stay as strings
where the kernel shows them to users, so logs and status read like `devlink`/`vdpa`/`ip` output.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import NewType

PciAddress = NewType("PciAddress", str)
"""A PCI function address in the kernel's canonical form, e.g. `0000:65:00.4`. Build it with `pci_address()`."""

_PCI_RE = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")


def pci_address(text: str) -> PciAddress:
    """Parse a PCI address; a bare `65:00.4` gets domain 0000. Raises ValueError naming the bad text."""
    value = text.strip().lower()
    if re.fullmatch(r"[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]", value):
        value = "0000:" + value
    if not _PCI_RE.fullmatch(value):
        raise ValueError(f"{text!r} is not a PCI address (expected DDDD:BB:DD.F, e.g. 0000:65:00.4)")
    return PciAddress(value)


def is_pci_address(text: str) -> bool:
    return bool(_PCI_RE.fullmatch(text))


def vdpa_name(vf: PciAddress) -> str:
    """The one vDPA device name per VF (upstream `generateVDPADevName`); `ethtool -i` shows it as bus-info."""
    return f"vdpa:{vf}"


class EswitchMode(enum.StrEnum):
    LEGACY = "legacy"
    SWITCHDEV = "switchdev"


class VdpaDriver(enum.StrEnum):
    """vdpa bus drivers, named as in `/sys/bus/vdpa/drivers/`."""

    VIRTIO = "virtio_vdpa"
    VHOST = "vhost_vdpa"


VDPA_DRIVER_FOR_TYPE = {"virtio": VdpaDriver.VIRTIO, "vhost": VdpaDriver.VHOST}
"""The policy's `vdpaType` → the vdpa bus driver that gives it (upstream `pkg/host/internal/vdpa`)."""
_TYPE_FOR_DRIVER: dict[str, str] = {driver.value: vdpa_type for vdpa_type, driver in VDPA_DRIVER_FOR_TYPE.items()}


# --- PCI / SR-IOV -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PciFunction:
    """One PCI function as `/sys/bus/pci/devices/<addr>/` shows it."""

    address: PciAddress
    vendor: str
    """Hex without `0x`, lower case: `15b3`."""
    device: str
    """Hex without `0x`, lower case: `101d`."""
    class_code: str
    """`0x020000` for an Ethernet controller."""
    driver: str | None
    """Basename of the `driver` link, None when unbound."""
    physfn: PciAddress | None = None
    """Set for a VF: its PF's address (the `physfn` link)."""
    netdevs: tuple[str, ...] = ()
    """Names under `net/`: for a switchdev PF that includes its representors (kernel >= 5.8)."""
    numa_node: int | None = None
    """`numa_node`; None where the platform gives no topology (the kernel shows -1, or no attribute)."""
    acpi_index: str = ""
    """`acpi_index` (the firmware's instance number, what systemd names `eno<N>` after); "" when absent."""


@dataclass(frozen=True, slots=True)
class SriovCapability:
    totalvfs: int
    numvfs: int


@dataclass(frozen=True, slots=True)
class Vf:
    """A VF of a PF, found through the PF's `virtfnN` links."""

    index: int
    address: PciAddress
    driver: str | None


# --- Netdevs ----------------------------------------------------------------------------------------------------


Netns = str | None
"""Where a netdev lives: None for the adapter's own namespace, else a netns name or a path such as
`/proc/<pid>/ns/net` or `/var/run/netns/<name>` (CNI_NETNS)."""


@dataclass(frozen=True, slots=True)
class Link:
    index: int
    name: str
    mtu: int
    mac: str
    """Lower-case colon form; empty for links without an L2 address."""
    admin_up: bool
    oper_state: str
    """`up`, `down`, `unknown`, … as IFLA_OPERSTATE names it, lower case."""
    kind: str = ""
    """IFLA_INFO_KIND (`veth`, `dummy`, …); empty for hardware netdevs."""
    altnames: tuple[str, ...] = ()
    link_type: str = "ether"
    """`ether` or `infiniband` (upstream maps these to ETH/IB)."""


@dataclass(frozen=True, slots=True)
class Address:
    address: str
    prefixlen: int

    def __str__(self) -> str:
        return f"{self.address}/{self.prefixlen}"


@dataclass(frozen=True, slots=True)
class Route:
    dst: str
    """CIDR, `0.0.0.0/0` for the default route."""
    gateway: str | None
    dev: str | None


@dataclass(frozen=True, slots=True)
class SwitchPort:
    """What makes a netdev a switchdev port: `/sys/class/net/<if>/phys_port_name` and `phys_switch_id`."""

    port_name: str
    switch_id: str


@dataclass(frozen=True, slots=True)
class DriverInfo:
    """`ethtool -i`: ETHTOOL_GDRVINFO."""

    driver: str
    version: str
    firmware_version: str
    bus_info: str


# --- devlink ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DevlinkHandle:
    """A devlink device: `pci/0000:65:00.0`, or `netdevsim/netdevsim1` on the test bed."""

    bus: str
    name: str

    @classmethod
    def pci(cls, address: PciAddress) -> DevlinkHandle:
        return cls("pci", address)

    def __str__(self) -> str:
        return f"{self.bus}/{self.name}"


class PortFlavour(enum.StrEnum):
    """`enum devlink_port_flavour`, named as `devlink port show` prints it."""

    PHYSICAL = "physical"
    CPU = "cpu"
    DSA = "dsa"
    PCI_PF = "pcipf"
    PCI_VF = "pcivf"
    VIRTUAL = "virtual"
    UNUSED = "unused"
    PCI_SF = "pcisf"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class DevlinkPort:
    handle: DevlinkHandle
    index: int
    flavour: PortFlavour
    netdev: str | None = None
    pfnum: int | None = None
    vfnum: int | None = None
    number: int | None = None
    """DEVLINK_ATTR_PORT_NUMBER of physical ports (the `1` of netdevsim's `p1`)."""
    """Only for `pcivf` ports: the VF index the port represents."""


@dataclass(frozen=True, slots=True)
class DevlinkParam:
    name: str
    value: str | int | bool
    cmode: str
    """`runtime`, `driverinit` or `permanent`."""


# --- vDPA -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VdpaMgmtDev:
    """A vDPA management device: `pci/0000:65:00.4` for an mlx5 VF, bus-less `vdpasim_net` on the test bed."""

    bus: str | None
    name: str
    supported_classes: int = 0
    """Bitmap of virtio device ids (bit 1 = net)."""
    max_vqs: int = 0

    def __str__(self) -> str:
        return f"{self.bus}/{self.name}" if self.bus else self.name

    @classmethod
    def parse(cls, text: str) -> VdpaMgmtDev:
        """`pci/0000:65:00.4` or `vdpasim_net` (govdpa `ExtractBusAndMgmtDevice`: at most one `/`)."""
        bus, sep, name = text.partition("/")
        if not sep:
            return cls(None, text)
        if not bus or not name or "/" in name:
            raise ValueError(f"{text!r} is not a vdpa management device (expected BUS/NAME or NAME)")
        return cls(bus, name)


@dataclass(frozen=True, slots=True)
class VdpaConfig:
    """Optional net config for `VDPA_CMD_DEV_NEW`; None leaves the kernel's default."""

    mac: str | None = None
    mtu: int | None = None
    max_vqp: int | None = None

    def is_empty(self) -> bool:
        return self.mac is None and self.mtu is None and self.max_vqp is None


@dataclass(frozen=True, slots=True)
class VdpaDevice:
    name: str
    mgmtdev: VdpaMgmtDev
    device_id: int = 1
    """Virtio device id: 1 = net."""
    vendor_id: int = 0
    max_vqs: int = 0
    max_vq_size: int = 0


@dataclass(frozen=True, slots=True)
class VdpaNetConfig:
    """The virtio-net config space of a vDPA device as `VDPA_CMD_DEV_CONFIG_GET` reports it (`vdpa dev config
    show`). None where the kernel leaves the field out, as it does when the device lacks the feature that makes
    it valid (MAC without VIRTIO_NET_F_MAC, max_vqp without MQ/RSS)."""

    mac: str | None = None
    """Lower-case colon form."""
    mtu: int | None = None
    max_vqp: int | None = None
    link_up: bool | None = None
    """VIRTIO_NET_S_LINK_UP of the status field."""


@dataclass(frozen=True, slots=True)
class VdpaBinding:
    """What a vDPA device looks like to consumers once bound (dataplane.md §2.2)."""

    driver: str | None
    """Bound vdpa bus driver (`virtio_vdpa`, `vhost_vdpa`, something else), None when unbound."""
    virtio_netdev: str | None = None
    """The `virtio_net` netdev in the initial namespace, when bound to virtio_vdpa and not moved away."""
    vhost_chardev: str | None = None
    """`/dev/vhost-vdpa-N` when bound to vhost_vdpa."""

    @property
    def vdpa_type(self) -> str:
        """`virtio`, `vhost` or "" — the NodeState's `vdpaType` (upstream `DiscoverVDPAType`)."""
        return _TYPE_FOR_DRIVER.get(self.driver or "", "")


# --- OVS --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OvsPort:
    name: str
    bridge: str
    external_ids: dict[str, str] = field(default_factory=dict, hash=False)
    """The Interface row's external_ids (what OVN-Kubernetes keys on: iface-id, iface-id-ver, vf-netdev-name…)."""
    other_config: dict[str, str] = field(default_factory=dict, hash=False)
    """The Port row's other_config (OVN-Kubernetes sets `transient=true`: vswitchd drops such ports on restart)."""
    mtu_request: int | None = None
    """The Interface row's mtu_request; None when unset (vswitchd leaves the MTU alone)."""
