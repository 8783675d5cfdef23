"""`Devlink` on the simulated host: eswitch mode, ports and parameters answered by the kernel model with the
errno mlx5 and the devlink core give (rules 8–13 in `kernel/eswitch.py`)."""

from __future__ import annotations

import errno
import logging
from collections.abc import Sequence

from vdpa_operator.host.sim.kernel import KernelError, SimKernel, host_error, host_errors
from vdpa_operator.host.types import DevlinkHandle, DevlinkParam, DevlinkPort, EswitchMode

logger = logging.getLogger(__name__)


class SimDevlink:
    def __init__(self, kernel: SimKernel) -> None:
        self.kernel = kernel

    def eswitch_mode(self, handle: DevlinkHandle) -> EswitchMode:
        with host_errors("get eswitch mode of", str(handle)):
            return EswitchMode(self.kernel.eswitch_mode(handle))

    def set_eswitch_mode(self, handle: DevlinkHandle, mode: EswitchMode) -> None:
        try:
            self.kernel.set_eswitch_mode(handle, str(mode))
        except KernelError as exc:
            hint = ("unbind the VFs from their driver first (mlx5 refuses while VFs are bound)"
                    if mode is EswitchMode.SWITCHDEV and exc.errno == errno.EBUSY else "")
            raise host_error(exc, f"set eswitch mode {mode} on", str(handle), hint) from exc
        logger.info("devlink %s: eswitch mode %s", handle, mode)

    def ports(self, handle: DevlinkHandle | None = None) -> Sequence[DevlinkPort]:
        return self.kernel.devlink_ports(handle)

    def param(self, handle: DevlinkHandle, name: str) -> DevlinkParam | None:
        try:
            return self.kernel.devlink_param(handle, name)
        except KernelError as exc:
            if exc.errno == errno.EINVAL:
                return None
            raise host_error(exc, f"get devlink param {name} of", str(handle)) from exc

    def set_param(self, handle: DevlinkHandle, name: str, value: str | int | bool, cmode: str) -> None:
        with host_errors(f"set devlink param {name}={value} ({cmode}) on", str(handle)):
            self.kernel.set_devlink_param(handle, name, value, cmode)
        logger.info("devlink %s: param %s = %s (%s)", handle, name, value, cmode)
