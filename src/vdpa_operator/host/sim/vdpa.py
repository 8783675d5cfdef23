"""`Vdpa` on the simulated host: the Linux adapter's own policy (`KernelVdpa`: sorting, the missing family, the
EOPNOTSUPP retry, the read-back, `missing_ok`, errno → HostError) over a transport that answers the `vdpa` genl
commands from the kernel model (rules 16–20, 29 and 30 in `kernel/vdpa.py`), and binding through the Linux adapter's
`VdpaSysfs` on the simulated tree, so everything above the genl commands is the product code itself.

The model's answers (`KernelError`, `FamilyMissing`) become the Linux transport's one error type,
`GenlCommandError` (errno, extack, `family_missing`).
"""

from __future__ import annotations

import errno
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from vdpa_operator.host.linux.genl import GenlCommandError
from vdpa_operator.host.linux.vdpa import KernelVdpa, VdpaSysfs
from vdpa_operator.host.port import NO_CONFIG
from vdpa_operator.host.sim.kernel import FamilyMissing, KernelError, SimKernel
from vdpa_operator.host.sim.sysfs import SimSysfs
from vdpa_operator.host.types import VdpaConfig, VdpaDevice, VdpaMgmtDev, VdpaNetConfig


@contextmanager
def _as_genl() -> Iterator[None]:
    try:
        yield
    except KernelError as exc:
        missing = isinstance(exc, FamilyMissing)
        raise GenlCommandError(exc.errno or errno.EIO, exc.detail, family_missing=missing) from exc


class SimVdpaTransport:
    """`VdpaTransport` over the kernel model."""

    def __init__(self, kernel: SimKernel) -> None:
        self.kernel = kernel

    def mgmtdev_list(self) -> Sequence[VdpaMgmtDev]:
        with _as_genl():
            return self.kernel.vdpa_mgmtdevs()

    def dev_list(self) -> Sequence[VdpaDevice]:
        with _as_genl():
            return self.kernel.vdpa_devices()

    def dev_get(self, name: str) -> VdpaDevice | None:
        with _as_genl():
            return self.kernel.vdpa_device(name)

    def dev_new(self, name: str, mgmtdev: VdpaMgmtDev, config: VdpaConfig = NO_CONFIG) -> None:
        with _as_genl():
            self.kernel.vdpa_dev_new(name, mgmtdev, config)

    def dev_del(self, name: str) -> None:
        with _as_genl():
            self.kernel.vdpa_dev_del(name)

    def dev_attr_set(self, name: str, mac: str) -> None:
        with _as_genl():
            self.kernel.vdpa_dev_attr_set(name, mac)

    def dev_config_get(self, name: str) -> VdpaNetConfig | None:
        with _as_genl():
            return self.kernel.vdpa_dev_config(name)


class SimVdpa(KernelVdpa):
    def __init__(self, sysfs: SimSysfs) -> None:
        super().__init__(SimVdpaTransport(sysfs.kernel), VdpaSysfs(sysfs, sysfs.kernel.dev_root))
