"""Kernel modules: is a module present, and `modprobe` it when not.

Presence is read from the kernel, not from `lsmod | grep` as upstream does: `/proc/modules` for loadable
modules (absent on kernels built without module support), `/sys/module/<name>` for loaded and built-in
modules alike (a loaded module has `initstate`, a built-in has none), and `modules.builtin` for built-ins that
have no parameters and so no `/sys/module` entry (veth, for one). Loading shells out to `modprobe`, which
resolves dependencies, options and blacklists the way the distribution configured them; the daemon runs it
as `chroot /host modprobe` when it lives in a container. Unloading is left out on purpose: the operator never
removes modules.
"""

from __future__ import annotations

import errno
import logging
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from vdpa_operator.host.errors import (
    MODULE_MISSING_HINT,
    HostError,
    HostTimeout,
    KernelModuleMissing,
    error_from_os_error,
)
from vdpa_operator.host.linux.sysfs import Sysfs

logger = logging.getLogger(__name__)

MODPROBE_TIMEOUT = 60.0


def module_name(name: str) -> str:
    """The kernel's spelling: `vhost-vdpa` and `vhost_vdpa` are the same module."""
    return name.strip().replace("-", "_")


class KernelModules:
    """The `Modules` port. `modprobe` is the command prefix to run (`("chroot", "/host", "modprobe")` in a
    container); `modules_dir` holds `modules.builtin` (default `/lib/modules/<running release>`)."""

    def __init__(
        self,
        proc_root: str | os.PathLike[str] = "/proc",
        sysfs: Sysfs | None = None,
        *,
        modules_dir: str | os.PathLike[str] | None = None,
        modprobe: Sequence[str] = ("modprobe",),
    ) -> None:
        self.proc_root = Path(proc_root)
        self.sysfs = sysfs if sysfs is not None else Sysfs()
        self.modules_dir = Path(modules_dir) if modules_dir is not None else Path("/lib/modules", os.uname().release)
        self.modprobe = tuple(modprobe)

    def is_loaded(self, name: str) -> bool:
        module = module_name(name)
        state = self._proc_state(module)
        if state is not None:
            return state == "Live"
        if self.sysfs.exists(f"module/{module}"):
            initstate = self.sysfs.read_optional(f"module/{module}/initstate")
            return initstate is None or initstate.strip() == "live"  # no initstate: built in
        return module in self._builtin()

    def load(self, name: str) -> None:
        module = module_name(name)
        if self.is_loaded(module):
            logger.debug("kernel module %s is already loaded", module)
            return
        command = [*self.modprobe, module]
        op = "load kernel module"
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=MODPROBE_TIMEOUT, check=False)
        except subprocess.TimeoutExpired as exc:
            raise HostTimeout(op, module, errno.ETIMEDOUT, detail=f"{' '.join(command)} ran over "
                              f"{MODPROBE_TIMEOUT:g}s") from exc
        except OSError as exc:
            raise HostError(op, module, exc.errno, detail=f"cannot run {command[0]}",
                            hint="install kmod (modprobe) on the node") from exc
        stderr = result.stderr.strip()
        if result.returncode == 0:
            logger.info("loaded kernel module %s", module)
            return
        if "not found" in stderr:
            # modprobe: FATAL: Module x not found in directory /lib/modules/<release>
            raise KernelModuleMissing(op, module, errno.ENOENT, detail=stderr,
                                      hint=MODULE_MISSING_HINT)
        raise HostError(op, module, detail=stderr or f"{' '.join(command)} exited {result.returncode}")

    def _proc_state(self, module: str) -> str | None:
        """The module's state column in /proc/modules (`Live`, `Loading`, `Unloading`); None when not listed."""
        try:
            text = (self.proc_root / "modules").read_text()
        except FileNotFoundError:
            return None  # CONFIG_MODULES=n: everything present is built in
        except OSError as exc:
            raise error_from_os_error(exc, "read", str(self.proc_root / "modules")) from exc
        for line in text.splitlines():
            fields = line.split()
            if fields and fields[0] == module:
                return fields[4] if len(fields) > 4 else "Live"
        return None

    def _builtin(self) -> frozenset[str]:
        """Module names from `modules.builtin` (`kernel/drivers/net/veth.ko` → `veth`); empty when unreadable."""
        try:
            text = (self.modules_dir / "modules.builtin").read_text()
        except OSError:
            return frozenset()
        return frozenset(module_name(Path(line.strip()).name.removesuffix(".ko"))
                         for line in text.splitlines() if line.strip())
