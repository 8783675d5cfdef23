"""The Host port: everything the daemon, device plugin and CNI may ask of a machine.

One small Protocol per kernel interface, grouped in the frozen `Host` value; a consumer takes the narrowest
Protocol it needs. Two adapters implement them: `host.linux` (the real kernel: sysfs, rtnetlink through
pyroute2, devlink and vdpa generic netlink encoded by hand, the ethtool ioctl, `/dev`, OVSDB through ovsdbapp) and
`host.sim` (a ConnectX-6 Dx model with the kernel's sysfs layout, side effects and errno).

Rules every adapter keeps:
- methods take and return `host.types` values, never library objects;
- every failure is a `host.errors.HostError` naming the operation, the object and the errno;
- names say when an operation is idempotent (`missing_ok`, `may_exist`);
- everything is synchronous; services call the Host from one worker thread.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from vdpa_operator.host.types import (
    Address,
    DevlinkHandle,
    DevlinkParam,
    DevlinkPort,
    DriverInfo,
    EswitchMode,
    Link,
    Netns,
    OvsPort,
    PciAddress,
    PciFunction,
    Route,
    SriovCapability,
    SwitchPort,
    VdpaBinding,
    VdpaConfig,
    VdpaDevice,
    VdpaDriver,
    VdpaMgmtDev,
    VdpaNetConfig,
    Vf,
)

NO_CONFIG = VdpaConfig()
"""`VDPA_CMD_DEV_NEW` without net config attributes: the kernel's defaults."""

NUMVFS_TIMEOUT = 120.0
"""Upstream waits up to 120 s for every VF (and its `physfn` link) after writing `sriov_numvfs`."""


class Pci(Protocol):
    """PCI functions and SR-IOV through `/sys/bus/pci` (sysfs root configurable)."""

    def list_functions(self, *, network_only: bool = True) -> Sequence[PciFunction]:
        """Every PCI function (class 0x02xxxx only by default), VFs included; sorted by address."""
        ...

    def get_function(self, address: PciAddress) -> PciFunction:
        """DeviceNotFound when the address does not exist."""
        ...

    def sriov(self, pf: PciAddress) -> SriovCapability | None:
        """`sriov_totalvfs`/`sriov_numvfs`; None when the function is not SR-IOV capable."""
        ...

    def list_vfs(self, pf: PciAddress) -> Sequence[Vf]:
        """VFs from the PF's `virtfnN` links, by index."""
        ...

    def set_numvfs(self, pf: PciAddress, count: int, *, timeout: float = NUMVFS_TIMEOUT) -> None:
        """Write `sriov_numvfs` the way the kernel requires (0 first, then N, when changing a non-zero count),
        then wait until N VFs exist and each has its `physfn` link. HostTimeout after `timeout` seconds."""
        ...

    def unbind(self, address: PciAddress) -> None:
        """Unbind from the current driver; nothing to do when unbound."""
        ...

    def bind(self, address: PciAddress, driver: str) -> None:
        """Bind to `driver` with driver_override (unbinding from another driver first), then clear the override."""
        ...

    def bind_default(self, address: PciAddress) -> None:
        """Give the device back to its default kernel driver (upstream `BindDefaultDriver`): a device already on a
        kernel driver is left alone; one on vfio-pci/igb_uio/uio_pci_generic is unbound first; then
        driver_override is cleared and the address written to `drivers_probe`."""
        ...


class Links(Protocol):
    """Netdevs through rtnetlink, plus the two switchdev sysfs attributes. `netns` None = the host's own (the
    adapter's own namespace); otherwise a netns name (`ip netns` style) or a path (CNI_NETNS)."""

    def list(self, netns: Netns = None) -> Sequence[Link]: ...

    def get(self, name: str, netns: Netns = None) -> Link:
        """DeviceNotFound when no link has that name (or alt name)."""
        ...

    def find(self, name: str, netns: Netns = None) -> Link | None: ...

    def set_up(self, name: str, up: bool = True, netns: Netns = None) -> None: ...

    def set_mtu(self, name: str, mtu: int, netns: Netns = None) -> None: ...

    def set_mac(self, name: str, mac: str, netns: Netns = None) -> None: ...

    def rename(self, name: str, new_name: str, netns: Netns = None) -> None:
        """Brings the link down first when needed (the kernel refuses to rename a running link)."""
        ...

    def move_to_netns(self, name: str, target: Netns, netns: Netns = None, *, new_name: str | None = None) -> None:
        """Move a link from `netns` into `target`: a netns name or path, or None for the host's own namespace
        (the adapter's), which is how a CNI DEL gives a pod's netdev back. A path to that same namespace works
        too, e.g. `/proc/1/ns/net` where the adapter runs in PID 1's netns (a hostNetwork pod); the simulated
        host reads `/proc/1/ns/net` and `/proc/self/ns/net` as its node's. The kernel takes the link down and
        drops its addresses and routes.

        With `new_name`, the link is called that in `target` (one RTM_NEWLINK with IFLA_NET_NS_FD and
        IFLA_IFNAME: the kernel moves, then renames the now-down link; its current name may be taken there).
        `new_name` taken in `target` is EEXIST with the link left where it was."""
        ...

    def netns_exists(self, netns: str) -> bool:
        """Whether `netns` (a name or a path) refers to a network namespace: a path must be an nsfs file of
        type net (a regular file, a directory or another namespace type is not). What a CNI ADD checks before
        it moves a netdev into CNI_NETNS."""
        ...

    def add_address(self, name: str, address: Address, netns: Netns = None) -> None: ...

    def addresses(self, name: str, netns: Netns = None) -> Sequence[Address]: ...

    def add_route(self, route: Route, netns: Netns = None) -> None: ...

    def routes(self, netns: Netns = None) -> Sequence[Route]: ...

    def switch_port(self, name: str) -> SwitchPort | None:
        """`phys_port_name` + `phys_switch_id` from sysfs; None for netdevs that are not switch ports."""
        ...

    def speed(self, name: str) -> int | None:
        """`/sys/class/net/<if>/speed` in Mb/s; None when the driver does not know it (no carrier, virtual)."""
        ...

    def set_vf_mac(self, pf: str, vf: int, mac: str, netns: Netns = None) -> None:
        """The administrative MAC of VF `vf`, set on the PF netdev (IFLA_VF_MAC)."""
        ...

    def vf_macs(self, pf: str, netns: Netns = None) -> Mapping[int, str]:
        """IFLA_VFINFO_LIST of the PF: VF index → administrative MAC."""
        ...


class Ethtool(Protocol):
    def driver_info(self, name: str, netns: Netns = None) -> DriverInfo:
        """SIOCETHTOOL ETHTOOL_GDRVINFO, i.e. `ethtool -i`."""
        ...

    def feature(self, name: str, feature: str, netns: Netns = None) -> bool | None:
        """A feature by its `ethtool -k` name (`hw-tc-offload`); None when the device does not have it."""
        ...

    def set_feature(self, name: str, feature: str, enabled: bool, netns: Netns = None) -> None:
        """NotSupported when the device does not have the feature or it is fixed."""
        ...


class Devlink(Protocol):
    def eswitch_mode(self, handle: DevlinkHandle) -> EswitchMode: ...

    def set_eswitch_mode(self, handle: DevlinkHandle, mode: EswitchMode) -> None: ...

    def ports(self, handle: DevlinkHandle | None = None) -> Sequence[DevlinkPort]:
        """All ports, or those of one device; sorted by (handle, index)."""
        ...

    def param(self, handle: DevlinkHandle, name: str) -> DevlinkParam | None:
        """None when the device has no such parameter."""
        ...

    def set_param(self, handle: DevlinkHandle, name: str, value: str | int | bool, cmode: str) -> None: ...


class Vdpa(Protocol):
    """The kernel's `vdpa` generic netlink family plus `/sys/bus/vdpa`. A missing family means no vDPA here:
    list calls return nothing and deletes have nothing to do; create raises KernelModuleMissing."""

    def mgmtdevs(self) -> Sequence[VdpaMgmtDev]: ...

    def devices(self) -> Sequence[VdpaDevice]: ...

    def get(self, name: str) -> VdpaDevice | None: ...

    def create(self, name: str, mgmtdev: VdpaMgmtDev, config: VdpaConfig = NO_CONFIG) -> VdpaDevice:
        """VDPA_CMD_DEV_NEW. When the kernel answers EOPNOTSUPP to the config attributes, retry once without
        them (upstream does this for `max_vqp` on older mlx5). AlreadyExists on a duplicate name, NoSpace when
        the management device allows no more devices."""
        ...

    def delete(self, name: str, *, missing_ok: bool = True) -> None:
        """VDPA_CMD_DEV_DEL; a missing device or family is nothing to do unless missing_ok is False."""
        ...

    def binding(self, name: str, *, virtio_netdev: bool = True) -> VdpaBinding:
        """Bound driver and the consumer-facing object (virtio netdev or `/dev/vhost-vdpa-N`), from sysfs.
        `virtio_netdev=False` leaves the virtio netdev out (None): a driver-and-chardev read for pollers, without
        the directory walk that finds the netdev."""
        ...

    def bind(self, name: str, driver: VdpaDriver) -> None:
        """Rebind on the vdpa bus via driver_override (upstream `BindDriverByBusAndDevice`)."""
        ...

    def set_mac(self, name: str, mac: str) -> None:
        """VDPA_CMD_DEV_ATTR_SET: the MAC in the device's virtio config space, what its consumer (virtio_net at
        its next probe, or the vhost user) reads. NotSupported where the kernel lacks the command (before
        ≈6.12) or the device cannot change it: callers then set the VF's administrative MAC
        (`Links.set_vf_mac`). DeviceNotFound for a missing device; InvalidArgument for a malformed MAC, raised
        before anything is sent."""
        ...

    def net_config(self, name: str) -> VdpaNetConfig:
        """VDPA_CMD_DEV_CONFIG_GET: MAC, MTU, queue pairs and link status as the device reports them (what a CNI
        CHECK compares with what it set). DeviceNotFound for a missing device."""
        ...


class DevNodes(Protocol):
    """Device nodes under `/dev` (root configurable): the device plugin hands pods `/dev/vhost-vdpa-N` (and
    `/dev/vhost-net`, `/dev/net/tun`) and has to know first which of them this node has."""

    def char_device(self, name: str) -> str | None:
        """The absolute path of `<dev root>/<name>` (`vhost-net`, `net/tun`) when it is a character device;
        None when it is absent or something else. InvalidArgument for a name that leaves the dev root."""
        ...


class Modules(Protocol):
    def is_loaded(self, name: str) -> bool: ...

    def load(self, name: str) -> None:
        """modprobe; KernelModuleMissing when the module does not exist."""
        ...


class Udev(Protocol):
    """Rule files in the udev rules directory (upstream §4.8), and asking udev to re-run them."""

    def rules(self, prefix: str = "") -> Mapping[str, str]:
        """File name → content for rule files starting with `prefix`."""
        ...

    def write_rule(self, filename: str, content: str) -> bool:
        """Atomically write a rule file; False when it already had exactly this content."""
        ...

    def remove_rule(self, filename: str) -> bool:
        """False when there was nothing to remove."""
        ...

    def reload(self) -> None:
        """`udevadm control --reload-rules` and trigger `add` for net devices; nothing when udev is absent."""
        ...


class Ovs(Protocol):
    """The Open_vSwitch database through OVSDB."""

    def other_config(self) -> Mapping[str, str]: ...

    def external_ids(self) -> Mapping[str, str]:
        """The Open_vSwitch row's external_ids (`ovn-remote`, `ovn-encap-ip`, `system-id`, …)."""
        ...

    def set_other_config(self, key: str, value: str | None) -> None:
        """None removes the key."""
        ...

    def bridges(self) -> Sequence[str]: ...

    def add_bridge(self, name: str, *, datapath_type: str = "", may_exist: bool = True) -> None: ...

    def delete_bridge(self, name: str, *, missing_ok: bool = True) -> None: ...

    def ports(self, bridge: str | None = None) -> Sequence[OvsPort]: ...

    def add_port(
        self,
        bridge: str,
        name: str,
        *,
        external_ids: Mapping[str, str] | None = None,
        port_other_config: Mapping[str, str] | None = None,
        mtu_request: int | None = None,
        may_exist: bool = True,
    ) -> None:
        """Add a port and its Interface in one transaction (OVN-Kubernetes' `--may-exist add-port br-int REP
        other_config:transient=true -- set interface REP external_ids:… mtu_request=…`): `external_ids` and
        `mtu_request` on the Interface row, `port_other_config` on the Port row. An existing port on the same
        bridge (may_exist) gets these keys and the MTU set, keeping its other keys."""
        ...

    def interface_external_ids(self, name: str) -> Mapping[str, str] | None:
        """The external_ids of Interface `name`; None when there is no such interface."""
        ...

    def delete_port(self, name: str, *, missing_ok: bool = True) -> None:
        """Remove the port from the database; ovs-vswitchd takes it out of the datapath on its own time
        (`ovs-vsctl --no-wait del-port`): nothing later depends on it, and a following add waits for it."""
        ...


@dataclass(frozen=True)
class Host:
    """One machine, as the services see it."""

    pci: Pci
    links: Links
    ethtool: Ethtool
    devlink: Devlink
    vdpa: Vdpa
    dev: DevNodes
    modules: Modules
    udev: Udev
    ovs: Ovs | None
    """None where no OVSDB socket is configured or reachable."""
