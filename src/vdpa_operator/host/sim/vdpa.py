"""`Vdpa` on the simulated host: the `vdpa` genl family's semantics on the kernel model (rules 16–20 in
`kernel.py`), and binding through the Linux adapter's `VdpaSysfs` on the simulated tree, so bind and
binding discovery are the product code itself.

Like `GenlVdpa`, `create` retries once without config attributes when the management device answers
EOPNOTSUPP (mgmtdevs that only take a MAC, modelled with `vdpa_config_attrs`), and logs what it dropped.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Sequence
from pathlib import Path

from vdpa_operator.host.errors import DeviceNotFound, KernelModuleMissing
from vdpa_operator.host.linux.vdpa import VdpaSysfs
from vdpa_operator.host.port import NO_CONFIG
from vdpa_operator.host.sim.kernel import FamilyMissing, KernelError, SimKernel, host_error
from vdpa_operator.host.sim.sysfs import SimSysfs
from vdpa_operator.host.types import VdpaBinding, VdpaConfig, VdpaDevice, VdpaDriver, VdpaMgmtDev

logger = logging.getLogger(__name__)

_FAMILY_HINT = "load the vdpa kernel modules (modprobe vdpa, and the NIC's vdpa driver such as mlx5_vdpa)"


class SimVdpa:
    def __init__(self, kernel: SimKernel, sysfs: SimSysfs, dev_root: Path) -> None:
        self.kernel = kernel
        self.sysfs_half = VdpaSysfs(sysfs, dev_root)

    def mgmtdevs(self) -> Sequence[VdpaMgmtDev]:
        try:
            return self.kernel.vdpa_mgmtdevs()
        except FamilyMissing:
            return []

    def devices(self) -> Sequence[VdpaDevice]:
        try:
            return self.kernel.vdpa_devices()
        except FamilyMissing:
            return []

    def get(self, name: str) -> VdpaDevice | None:
        try:
            return self.kernel.vdpa_device(name)
        except FamilyMissing:
            return None
        except KernelError as exc:
            if exc.errno in (errno.ENODEV, errno.ENOENT):
                return None
            raise host_error(exc, "get vdpa device", name) from exc

    def create(self, name: str, mgmtdev: VdpaMgmtDev, config: VdpaConfig = NO_CONFIG) -> VdpaDevice:
        op, target = "create vdpa device", f"{name} on {mgmtdev}"
        try:
            try:
                self.kernel.vdpa_dev_new(name, mgmtdev, config)
            except KernelError as exc:
                if exc.errno != errno.EOPNOTSUPP or config.is_empty() or isinstance(exc, FamilyMissing):
                    raise
                logger.warning("%s %s: the kernel does not support %s (%s); retrying without them",
                               op, target, _config_names(config), exc.detail)
                self.kernel.vdpa_dev_new(name, mgmtdev)
        except KernelError as exc:
            hint = _FAMILY_HINT if isinstance(exc, FamilyMissing) else (
                "the management device allows no more vdpa devices (mlx5: one per VF)"
                if exc.errno == errno.ENOSPC else "")
            raise host_error(exc, op, target, hint) from exc
        device = self.get(name)
        if device is None:
            raise DeviceNotFound(op, target, errno.ENODEV, detail="created, but DEV_GET does not find it")
        logger.info("vdpa %s: created on %s", name, mgmtdev)
        return device

    def delete(self, name: str, *, missing_ok: bool = True) -> None:
        op = "delete vdpa device"
        try:
            self.kernel.vdpa_dev_del(name)
        except FamilyMissing as exc:
            if missing_ok:
                return
            raise KernelModuleMissing(op, name, hint=_FAMILY_HINT, detail=exc.detail) from exc
        except KernelError as exc:
            if missing_ok and exc.errno in (errno.ENODEV, errno.ENOENT):
                return
            raise host_error(exc, op, name) from exc
        logger.info("vdpa %s: deleted", name)

    def binding(self, name: str) -> VdpaBinding:
        return self.sysfs_half.binding(name)

    def bind(self, name: str, driver: VdpaDriver) -> None:
        self.sysfs_half.bind(name, driver)


def _config_names(config: VdpaConfig) -> str:
    return ", ".join(key for key, value in (("mac", config.mac), ("mtu", config.mtu), ("max_vqp", config.max_vqp))
                     if value is not None)
