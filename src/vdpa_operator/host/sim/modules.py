"""`Modules` on the simulated host: which modules are loaded, and `modprobe` with dependencies (rule 27 in
`kernel/modules.py`). Loading a bus driver has the kernel's side effects: virtio_vdpa binds unbound vdpa devices,
vdpa creates `/sys/bus/vdpa`."""

from __future__ import annotations

import errno
import logging

from vdpa_operator.host.errors import MODULE_MISSING_HINT, KernelModuleMissing
from vdpa_operator.host.linux.modules import module_name
from vdpa_operator.host.sim.kernel import KernelError, SimKernel, host_error

logger = logging.getLogger(__name__)


class SimModules:
    def __init__(self, kernel: SimKernel) -> None:
        self.kernel = kernel

    def is_loaded(self, name: str) -> bool:
        return self.kernel.is_loaded(module_name(name))

    def load(self, name: str) -> None:
        module = module_name(name)
        try:
            self.kernel.load_module(module)
        except KernelError as exc:
            if exc.errno == errno.ENOENT:
                raise KernelModuleMissing("load kernel module", module, errno.ENOENT, detail=exc.detail,
                                          hint=MODULE_MISSING_HINT) from exc
            raise host_error(exc, "load kernel module", module) from exc
        logger.info("loaded kernel module %s", module)
