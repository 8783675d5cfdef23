"""One error family for everything the Host port does.

Every failure carries the operation, the object and the errno, so a status line or a CNI error can say
`create vdpa:0000:65:00.4 on pci/0000:65:00.4 failed: EOPNOTSUPP (Operation not supported)` without
anyone re-parsing strings. Adapters translate `OSError` / `NetlinkError` here and nowhere else
(`error_from_errno`), and raise `from` the original exception.

Retry intent is part of the type: `temporary` errors (EBUSY, EAGAIN, timeouts) are worth retrying with
backoff; the rest are permanent until something on the node changes.
"""

from __future__ import annotations

import errno as errno_mod
import os

from vdpa_operator.errors import VdpaOperatorError

_PREFERRED_NAMES = {errno_mod.EOPNOTSUPP: "EOPNOTSUPP", errno_mod.EDEADLK: "EDEADLK"}
"""Python names errno 95 ENOTSUP; the kernel and iproute2 say EOPNOTSUPP."""


class HostError(VdpaOperatorError):
    """A host operation failed: `op` on `target`, with the kernel's errno when there is one."""

    temporary = False

    def __init__(self, op: str, target: str, errno: int | None = None, hint: str = "", detail: str = "") -> None:
        self.op = op
        self.target = target
        self.errno = errno
        self.hint = hint
        self.detail = detail
        super().__init__(self._message())

    @property
    def errno_name(self) -> str:
        if self.errno is None:
            return ""
        return _PREFERRED_NAMES.get(self.errno) or errno_mod.errorcode.get(self.errno, f"errno {self.errno}")

    def _message(self) -> str:
        text = f"{self.op} {self.target} failed"
        if self.errno is not None:
            text += f": {self.errno_name} ({os.strerror(self.errno)})"
        if self.detail:
            text += f": {self.detail}"
        if self.hint:
            text += f"; {self.hint}"
        return text


class DeviceNotFound(HostError):
    """ENODEV / ENOENT / ENXIO: the object is not there (often: nothing to do)."""


class AlreadyExists(HostError):
    """EEXIST: e.g. a vDPA device of that name exists."""


class DeviceBusy(HostError):
    """EBUSY / EAGAIN: the kernel refuses now; retry later (mlx5 refuses switchdev while VFs are bound)."""

    temporary = True


class NoSpace(HostError):
    """ENOSPC: e.g. mlx5 allows one vDPA device per VF."""


class NotSupported(HostError):
    """EOPNOTSUPP / ENOTSUP: the driver or kernel lacks the feature or attribute."""


class InvalidArgument(HostError):
    """EINVAL / ERANGE: the kernel rejected a value."""


class PermissionDenied(HostError):
    """EPERM / EACCES: not privileged enough (CAP_NET_ADMIN, or not in the initial netns for genl vdpa)."""


class KernelModuleMissing(HostError):
    """A kernel interface is absent: a genl family not registered, a driver directory missing."""


MODULE_MISSING_HINT = "install the kernel modules package that provides it"


class HostTimeout(HostError):
    """A kernel-side wait ran past its deadline (VFs not appearing, a netdev not showing up)."""

    temporary = True


_ERRNO_CLASSES: dict[int, type[HostError]] = {
    errno_mod.ENODEV: DeviceNotFound,
    errno_mod.ENOENT: DeviceNotFound,
    errno_mod.ENXIO: DeviceNotFound,
    errno_mod.EEXIST: AlreadyExists,
    errno_mod.EBUSY: DeviceBusy,
    errno_mod.EAGAIN: DeviceBusy,
    errno_mod.ENOSPC: NoSpace,
    errno_mod.EOPNOTSUPP: NotSupported,
    errno_mod.EPROTONOSUPPORT: NotSupported,
    errno_mod.EINVAL: InvalidArgument,
    errno_mod.ERANGE: InvalidArgument,
    errno_mod.EPERM: PermissionDenied,
    errno_mod.EACCES: PermissionDenied,
    errno_mod.ETIMEDOUT: HostTimeout,
}
# NOTE: on Linux ENOTSUP == EOPNOTSUPP (95), so one entry covers both.


def netdev_target(name: str, netns: str | None) -> str:
    """A netdev as messages name it: `eth0`, or `eth0 (netns pod-a)` outside the adapter's own namespace."""
    return name if netns is None else f"{name} (netns {netns})"


def error_from_errno(errno: int | None, op: str, target: str, hint: str = "", detail: str = "") -> HostError:
    """The one errno → error-class table; adapters call this and raise the result `from` the original."""
    cls = _ERRNO_CLASSES.get(abs(errno), HostError) if errno is not None else HostError
    return cls(op, target, abs(errno) if errno is not None else None, hint=hint, detail=detail)


def error_from_os_error(exc: OSError, op: str, target: str, hint: str = "") -> HostError:
    return error_from_errno(exc.errno, op, target, hint=hint)
