"""`SimSysfs`: the Linux adapter's `Sysfs` on the simulated tree, with the kernel's side effects on write.

Reads are plain file reads of the rendered tree (`tree.py`), so `SysfsPci` and `VdpaSysfs` run unchanged. A
write is resolved the way the VFS resolves it — symlinked directories followed, so
`bus/pci/devices/X/driver/unbind` lands on `bus/pci/drivers/mlx5_core/unbind` — and the canonical attribute is
dispatched to the kernel model, which answers with the kernel's errno as an `OSError`; `Sysfs`'s own mapping
then turns it into the HostError family, exactly as for a failing write(2) on the real /sys.

Writable attributes modelled: `sriov_numvfs`, `sriov_drivers_autoprobe`, PCI and vdpa `driver_override`,
`bus/{pci,vdpa}/drivers/<drv>/{bind,unbind}`, `bus/{pci,vdpa}/{drivers_probe,drivers_autoprobe}` and
`class/net/<if>/mtu`; any other existing file is read-only here (EACCES), a directory EISDIR, a missing path
ENOENT.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

from vdpa_operator.host.linux.sysfs import Sysfs
from vdpa_operator.host.sim.kernel import KernelError, SimKernel

_BUS_DRIVER = re.compile(r"^bus/(pci|vdpa)/drivers/([^/]+)/(bind|unbind)$")
_BUS_ATTR = re.compile(r"^bus/(pci|vdpa)/(drivers_probe|drivers_autoprobe)$")
_DEVICE_ATTR = re.compile(r"^devices/.*/([^/]+)/([^/]+)$")
_NETDEV_MTU = re.compile(r"^devices/.*/net/([^/]+)/mtu$")


class SimSysfs(Sysfs):
    def __init__(self, kernel: SimKernel) -> None:
        super().__init__(kernel.sys_root)
        self.kernel = kernel

    def path(self, rel: str) -> Path:
        """Every access to the tree goes through here (`Sysfs` builds each path with it), so reads see time
        pass first: VFs whose creation was delayed appear when due."""
        self.kernel.tick()
        return super().path(rel)

    def _write_file(self, path: Path, value: str) -> None:
        self._dispatch(self._canonical(path), value)

    def _canonical(self, path: Path) -> str:
        """The attribute's path relative to the root after following symlinks, as open(2) would."""
        real = os.path.realpath(path)
        root = os.path.realpath(self.root)
        if not os.path.lexists(real) or os.path.commonpath([real, root]) != root:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path))
        if os.path.isdir(real):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        return os.path.relpath(real, root)

    def _dispatch(self, rel: str, value: str) -> None:
        k = self.kernel
        name = value[:-1] if value.endswith("\n") else value  # bus_find_device_by_name uses sysfs_streq
        if match := _BUS_DRIVER.match(rel):
            bus, driver, action = match.groups()
            (k.write_bind if action == "bind" else k.write_unbind)(bus, driver, name)
            return
        if match := _BUS_ATTR.match(rel):
            bus, attr = match.groups()
            if attr == "drivers_probe":
                k.write_probe(bus, name)
            else:
                k.write_autoprobe(bus, value)
            return
        if match := _NETDEV_MTU.match(rel):
            try:
                mtu = int(value.strip(), 0)
            except ValueError:
                raise KernelError(errno.EINVAL, f"not a number: {value!r}") from None
            k.set_link_mtu(match.group(1), mtu)
            return
        if match := _DEVICE_ATTR.match(rel):
            device, attr = match.groups()
            subsystem = self.link_name(f"{os.path.dirname(rel)}/subsystem")
            if subsystem in ("pci", "vdpa") and attr == "driver_override":
                k.write_driver_override(subsystem, device, value)
                return
            store = {"sriov_numvfs": k.write_sriov_numvfs, "sriov_drivers_autoprobe": k.write_sriov_autoprobe}
            if subsystem == "pci" and attr in store:
                store[attr](device, value)
                return
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), rel)
