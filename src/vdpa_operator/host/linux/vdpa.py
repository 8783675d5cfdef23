"""`Vdpa` on the real kernel: the `vdpa` generic netlink family for devices, `/sys/bus/vdpa` for binding.

Two halves, each shared with the simulated host:

- `VdpaSysfs` reads and changes the binding through a `Sysfs` object only, so the simulated host reuses it on
  its own tree (its `Sysfs` subclass gives writes the kernel's side effects).
- `KernelVdpa` is the netlink half's policy (management devices, devices, create, delete) over a
  `VdpaTransport` that only speaks the genl commands; it delegates binding to `VdpaSysfs`. `GenlVdpa` is
  `KernelVdpa` over `GenlVdpaTransport` (wire format in `genl.vdpa_proto`); the sim's `SimVdpa` is the same
  policy over its kernel model.

sysfs layout read here (research/dataplane.md §2; `<root>` is the Sysfs root, normally /sys)::

    <root>/bus/vdpa/devices/<name>            -> ../../../devices/.../<VF PCI>/<name>   (mlx5: parent is the VF)
                                              -> ../../../devices/<name>                (vdpa_sim: no parent)
    <root>/bus/vdpa/devices/<name>/driver     -> .../bus/vdpa/drivers/<virtio_vdpa|vhost_vdpa>  (absent: unbound)
    <root>/bus/vdpa/devices/<name>/driver_override
    <root>/bus/vdpa/devices/<name>/vhost-vdpa-<N>/      bound to vhost_vdpa: char device <dev_root>/vhost-vdpa-<N>
    <resolved dir or its parent>/virtio<N>/             bound to virtio_vdpa: the virtio device; its parent is
                                                        the vdpa *DMA* device — the VF for mlx5, the vdpa device
                                                        itself for vdpa_sim (newer kernels may change it: both
                                                        places are searched)
    <root>/bus/virtio/devices/virtio<N>/net/<ifname>    the virtio_net netdev (absent once moved to another netns)
    <root>/bus/vdpa/drivers/<driver>/{bind,unbind}

Rebinding follows upstream `BindDriverByBusAndDevice` (pkg/host/internal/kernel): unbind from the current
driver, set `driver_override`, write the device to the new driver's `bind`, clear the override
(`Sysfs.driver_override`, shared with the PCI bus).

DEV_NEW with config attributes the management device does not support fails with EOPNOTSUPP ("All provided
attributes are not supported"); like upstream (which retries without `max_vqp` for older mlx5), `create`
retries once without any config attribute and logs what it dropped.

`set_mac` (DEV_ATTR_SET) does not retry or fall back: on kernels before ≈6.12 the command does not exist
(EOPNOTSUPP → NotSupported) and the caller decides what to do instead, typically setting the VF's
administrative MAC before the device is bound.
"""

from __future__ import annotations

import errno
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from vdpa_operator.host.errors import (
    DeviceNotFound,
    HostError,
    KernelModuleMissing,
    error_from_errno,
)
from vdpa_operator.host.linux.genl import GenlCommandError
from vdpa_operator.host.linux.genl import vdpa_proto as proto
from vdpa_operator.host.linux.sysfs import Sysfs
from vdpa_operator.host.port import NO_CONFIG
from vdpa_operator.host.types import VdpaBinding, VdpaConfig, VdpaDevice, VdpaDriver, VdpaMgmtDev, VdpaNetConfig

logger = logging.getLogger(__name__)

_VIRTIO_RE = re.compile(r"virtio\d+")
_VHOST_RE = re.compile(r"vhost-vdpa-\d+")
_ATTR_SET_HINT = ("this kernel or device cannot change a vdpa device's MAC (VDPA_CMD_DEV_ATTR_SET needs Linux "
                  ">= 6.12 and driver support); set the VF's administrative MAC before binding instead")
_FAMILY_HINT = ("load the vdpa kernel modules (modprobe vdpa, and the NIC's vdpa driver such as mlx5_vdpa); "
                "the vdpa netlink family is only visible from the host network namespace (hostNetwork: true)")


def _devices(name: str) -> str:
    return f"bus/vdpa/devices/{name}"


class VdpaSysfs:
    """The sysfs half of `Vdpa`: which driver a device is bound to, what that gives consumers, rebinding."""

    def __init__(self, sysfs: Sysfs, dev_root: Path = Path("/dev")) -> None:
        self.sysfs = sysfs
        self.dev_root = Path(dev_root)

    def _require_device(self, name: str, op: str) -> None:
        if not self.sysfs.exists(_devices(name)):
            raise DeviceNotFound(op, f"vdpa device {name}", errno.ENODEV,
                                 detail=f"{self.sysfs.path(_devices(name))} does not exist")

    def driver(self, name: str) -> str | None:
        """Basename of `bus/vdpa/devices/<name>/driver`; None when unbound (or the device does not exist)."""
        return self.sysfs.link_name(f"{_devices(name)}/driver")

    def binding(self, name: str, *, virtio_netdev: bool = True) -> VdpaBinding:
        op = "read binding of"
        self._require_device(name, op)
        driver = self.driver(name)
        if driver == VdpaDriver.VIRTIO:
            return VdpaBinding(driver=driver, virtio_netdev=self._virtio_netdev(name, op) if virtio_netdev else None)
        if driver == VdpaDriver.VHOST:
            return VdpaBinding(driver=driver, vhost_chardev=self._vhost_chardev(name, op))
        return VdpaBinding(driver=driver)

    def _virtio_netdev(self, name: str, op: str) -> str | None:
        """The netdev of the device's `virtioN` child; None when the virtio device or its netdev is not (or no
        longer) visible from here, e.g. after the netdev was moved into a pod's namespace."""
        device_dir = self.sysfs.resolve(_devices(name))
        candidates: list[str] = []
        for directory in (device_dir, os.path.dirname(device_dir)):
            found = [entry for entry in self.sysfs.listdir(directory) if _VIRTIO_RE.fullmatch(entry)]
            if found:
                candidates = found
                break
        if not candidates:
            return None
        if len(candidates) > 1:
            raise HostError(op, f"vdpa device {name}",
                            detail=f"several virtio devices next to it: {', '.join(candidates)}",
                            hint="cannot tell which belongs to this vdpa device; check `ethtool -i` bus-info")
        netdevs = self.sysfs.listdir(f"bus/virtio/devices/{candidates[0]}/net")
        if len(netdevs) > 1:
            raise HostError(op, f"vdpa device {name}",
                            detail=f"{candidates[0]} has several netdevs: {', '.join(netdevs)}")
        return netdevs[0] if netdevs else None

    def _vhost_chardev(self, name: str, op: str) -> str | None:
        children = [entry for entry in self.sysfs.listdir(_devices(name)) if _VHOST_RE.fullmatch(entry)]
        if not children:
            return None
        if len(children) > 1:
            raise HostError(op, f"vdpa device {name}",
                            detail=f"several vhost-vdpa children: {', '.join(children)}")
        chardev = self.dev_root / children[0]
        if not os.path.exists(chardev):
            raise DeviceNotFound(op, f"vdpa device {name}", errno.ENOENT,
                                 detail=f"sysfs shows {children[0]} but {chardev} does not exist",
                                 hint=f"is devtmpfs mounted at {self.dev_root} (mount the host's /dev)?")
        return str(chardev)

    def bind(self, name: str, driver: str) -> None:
        """Bind `name` to `driver` on the vdpa bus (upstream `BindDriverByBusAndDevice`); nothing to do when it
        is already bound to it. KernelModuleMissing when the driver is not loaded (checked before unbinding,
        so a missing module never leaves the device unbound)."""
        op = f"bind to {driver}"
        target = f"vdpa device {name}"
        self._require_device(name, op)
        current = self.driver(name)
        if current == driver:
            logger.debug("vdpa %s already bound to %s", name, driver)
            return
        if not self.sysfs.exists(f"bus/vdpa/drivers/{driver}"):
            raise KernelModuleMissing(op, target, errno.ENOENT,
                                      detail=f"{self.sysfs.path(f'bus/vdpa/drivers/{driver}')} does not exist",
                                      hint=f"load the kernel module: modprobe {driver}")
        if current is not None:
            self.sysfs.write(f"bus/vdpa/drivers/{current}/unbind", name)
        with self.sysfs.driver_override(_devices(name), driver):
            self.sysfs.write(f"bus/vdpa/drivers/{driver}/bind", name)
        logger.info("vdpa %s: bound to %s (was %s)", name, driver, current or "unbound")


class VdpaTransport(Protocol):
    """The `vdpa` genl commands' semantics, without policy: one call per command, kernel values in and out.
    Every kernel answer other than success is a `GenlCommandError` (errno, extack, `family_missing` when the
    family is not registered); a request the attribute policy would reject raises ValueError before it is
    sent. `GenlVdpaTransport` speaks to the kernel; the simulated host has one over its kernel model."""

    def mgmtdev_list(self) -> Sequence[VdpaMgmtDev]:
        """VDPA_CMD_MGMTDEV_GET, dump."""
        ...

    def dev_list(self) -> Sequence[VdpaDevice]:
        """VDPA_CMD_DEV_GET, dump."""
        ...

    def dev_get(self, name: str) -> VdpaDevice | None:
        """VDPA_CMD_DEV_GET for one device (ENODEV when it does not exist); None when no reply came back."""
        ...

    def dev_new(self, name: str, mgmtdev: VdpaMgmtDev, config: VdpaConfig = NO_CONFIG) -> None:
        """VDPA_CMD_DEV_NEW."""
        ...

    def dev_del(self, name: str) -> None:
        """VDPA_CMD_DEV_DEL."""
        ...

    def dev_attr_set(self, name: str, mac: str) -> None:
        """VDPA_CMD_DEV_ATTR_SET with DEV_NET_CFG_MACADDR."""
        ...

    def dev_config_get(self, name: str) -> VdpaNetConfig | None:
        """VDPA_CMD_DEV_CONFIG_GET for one device (ENODEV when it does not exist); None when no reply came back."""
        ...


class GenlVdpaTransport:
    """`VdpaTransport` over the kernel's `vdpa` family; each command opens its own socket."""

    def mgmtdev_list(self) -> Sequence[VdpaMgmtDev]:
        with proto.VdpaSocket() as sock:
            replies = sock.request(proto.mgmtdev_get(), dump=True)
        return [proto.parse_mgmtdev(reply) for reply in replies]

    def dev_list(self) -> Sequence[VdpaDevice]:
        with proto.VdpaSocket() as sock:
            replies = sock.request(proto.dev_get(), dump=True)
        return [proto.parse_device(reply) for reply in replies]

    def dev_get(self, name: str) -> VdpaDevice | None:
        with proto.VdpaSocket() as sock:
            replies = sock.request(proto.dev_get(name))
        return proto.parse_device(replies[0]) if replies else None

    def dev_new(self, name: str, mgmtdev: VdpaMgmtDev, config: VdpaConfig = NO_CONFIG) -> None:
        request = proto.dev_new(name, mgmtdev, config)  # ValueError here: nothing reaches the kernel
        with proto.VdpaSocket() as sock:
            sock.request(request)

    def dev_del(self, name: str) -> None:
        with proto.VdpaSocket() as sock:
            sock.request(proto.dev_del(name))

    def dev_attr_set(self, name: str, mac: str) -> None:
        request = proto.dev_attr_set(name, mac)  # ValueError here: nothing reaches the kernel
        with proto.VdpaSocket() as sock:
            sock.request(request)

    def dev_config_get(self, name: str) -> VdpaNetConfig | None:
        with proto.VdpaSocket() as sock:
            replies = sock.request(proto.dev_config_get(name))
        return proto.parse_net_config(replies[0]) if replies else None


class KernelVdpa:
    """The `Vdpa` Protocol over any `VdpaTransport`: the policy both adapters share (sorting, the missing
    family, the EOPNOTSUPP retry, the read-back after create, `missing_ok`, errno → HostError with hints),
    with binding delegated to `VdpaSysfs`."""

    def __init__(self, transport: VdpaTransport, sysfs_half: VdpaSysfs) -> None:
        self.transport = transport
        self.sysfs_half = sysfs_half

    # --- genl --------------------------------------------------------------------------------------------------

    def mgmtdevs(self) -> Sequence[VdpaMgmtDev]:
        try:
            return sorted(self.transport.mgmtdev_list(), key=str)
        except (GenlCommandError, ValueError) as exc:
            if _family_missing(exc):
                return []
            raise _host_error(exc, "list vdpa management devices", "on this host") from exc

    def devices(self) -> Sequence[VdpaDevice]:
        try:
            return sorted(self.transport.dev_list(), key=lambda device: device.name)
        except (GenlCommandError, ValueError) as exc:
            if _family_missing(exc):
                return []
            raise _host_error(exc, "list vdpa devices", "on this host") from exc

    def get(self, name: str) -> VdpaDevice | None:
        try:
            return self._get(name)
        except (GenlCommandError, ValueError) as exc:
            if _family_missing(exc):
                return None
            raise _host_error(exc, "get vdpa device", name) from exc

    def _get(self, name: str) -> VdpaDevice | None:
        try:
            return self.transport.dev_get(name)
        except GenlCommandError as exc:
            if _no_such_device(exc):
                return None
            raise

    def create(self, name: str, mgmtdev: VdpaMgmtDev, config: VdpaConfig = NO_CONFIG) -> VdpaDevice:
        op, target = "create vdpa device", f"{name} on {mgmtdev}"
        try:
            try:
                self.transport.dev_new(name, mgmtdev, config)
            except GenlCommandError as exc:
                if exc.errno != errno.EOPNOTSUPP or exc.family_missing or config.is_empty():
                    raise
                logger.warning("%s %s: the kernel does not support %s (%s); retrying without them",
                               op, target, _config_names(config), exc)
                self.transport.dev_new(name, mgmtdev)
            device = self._get(name)
        except (GenlCommandError, ValueError) as exc:
            raise _host_error(exc, op, target) from exc
        if device is None:
            raise DeviceNotFound(op, target, errno.ENODEV, detail="created, but DEV_GET does not find it")
        logger.info("vdpa %s: created on %s", name, mgmtdev)
        return device

    def delete(self, name: str, *, missing_ok: bool = True) -> None:
        op, target = "delete vdpa device", name
        try:
            self.transport.dev_del(name)
        except (GenlCommandError, ValueError) as exc:
            if missing_ok and (_family_missing(exc) or _no_such_device(exc)):
                return
            raise _host_error(exc, op, target) from exc
        logger.info("vdpa %s: deleted", name)

    def set_mac(self, name: str, mac: str) -> None:
        op, target = f"set mac {mac} on vdpa device", name
        try:
            proto.check_mac(mac)  # before anything is sent, on every transport
            self.transport.dev_attr_set(name, mac)
        except (GenlCommandError, ValueError) as exc:
            hint = _ATTR_SET_HINT if isinstance(exc, GenlCommandError) and exc.errno == errno.EOPNOTSUPP else ""
            raise _host_error(exc, op, target, hint) from exc
        logger.info("vdpa %s: mac set to %s", name, mac.lower())

    def net_config(self, name: str) -> VdpaNetConfig:
        op, target = "read net config of vdpa device", name
        try:
            config = self.transport.dev_config_get(name)
        except (GenlCommandError, ValueError) as exc:
            raise _host_error(exc, op, target) from exc
        if config is None:
            raise DeviceNotFound(op, target, errno.ENODEV, detail="DEV_CONFIG_GET sent no reply")
        return config

    # --- sysfs -------------------------------------------------------------------------------------------------

    def binding(self, name: str, *, virtio_netdev: bool = True) -> VdpaBinding:
        return self.sysfs_half.binding(name, virtio_netdev=virtio_netdev)

    def bind(self, name: str, driver: VdpaDriver) -> None:
        self.sysfs_half.bind(name, driver)


class GenlVdpa(KernelVdpa):
    """The `Vdpa` Protocol on the real kernel. Stateless apart from its sysfs root; each netlink operation
    opens its own socket."""

    def __init__(self, sysfs: Sysfs, dev_root: Path = Path("/dev")) -> None:
        super().__init__(GenlVdpaTransport(), VdpaSysfs(sysfs, dev_root))


def _family_missing(exc: Exception) -> bool:
    return isinstance(exc, GenlCommandError) and exc.family_missing


def _no_such_device(exc: Exception) -> bool:
    return isinstance(exc, GenlCommandError) and not exc.family_missing and exc.errno in (errno.ENODEV, errno.ENOENT)


def _config_names(config: VdpaConfig) -> str:
    """The config attributes of a DEV_NEW request, as `vdpa dev add` spells them."""
    names = [key for key, value in (("mac", config.mac), ("mtu", config.mtu), ("max_vqp", config.max_vqp))
             if value is not None]
    return ", ".join(names)


def _host_error(exc: GenlCommandError | ValueError, op: str, target: str, hint: str = "") -> HostError:
    """The one translation from transport failures to HostError (ValueError: a request the kernel's
    policy would reject, reported as EINVAL). `hint` replaces the errno's default one."""
    if isinstance(exc, ValueError):
        return error_from_errno(errno.EINVAL, op, target, detail=str(exc))
    if exc.family_missing:
        return KernelModuleMissing(op, target, hint=_FAMILY_HINT, detail=exc.extack)
    if not hint and exc.errno == errno.ENOSPC:
        hint = "the management device allows no more vdpa devices (mlx5: one per VF)"
    elif not hint and exc.errno == errno.EPERM:
        hint = "changing vdpa devices needs CAP_NET_ADMIN"
    return error_from_errno(exc.errno, op, target, hint=hint, detail=exc.extack)
