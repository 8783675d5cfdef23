"""`Devlink` on the real kernel: eswitch mode, ports and parameters over devlink generic netlink.

The wire format is in `genl.devlink_proto`; this module opens a socket per operation and turns kernel answers
into `host.types` values and `HostError`s. Errors are mapped in one place (`_host_error`), with the kernel's
extack text (e.g. mlx5's "Can't change mode when vfs are bound") in `detail`.

Family absent (a kernel without devlink): `ports()` is [] and `param()` None — there is nothing to list — while
`eswitch_mode`, `set_eswitch_mode` and `set_param` raise KernelModuleMissing; the daemon treats any failure to
read the eswitch mode as legacy itself (upstream `GetNicSriovMode`), so this layer does not guess.

Right after VFs appear, a port dump can transiently come back empty (research/kernel-testbed.md, gotcha 6):
`ports()` reports what the kernel sent; callers waiting for representor ports poll.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Sequence

from vdpa_operator.host.errors import HostError, KernelModuleMissing, error_from_errno
from vdpa_operator.host.linux.genl import FamilyNotFound, GenlCommandError
from vdpa_operator.host.linux.genl import devlink_proto as proto
from vdpa_operator.host.types import DevlinkHandle, DevlinkParam, DevlinkPort, EswitchMode

logger = logging.getLogger(__name__)

_FAMILY_HINT = ("this kernel has no devlink generic netlink family (CONFIG_NET_DEVLINK); "
                "a NIC driver with devlink support (mlx5_core) registers it")


def _host_error(exc: GenlCommandError | FamilyNotFound | ValueError, op: str, target: str,
                hint: str = "") -> HostError:
    """The one translation from wire-layer failures to HostError."""
    if isinstance(exc, FamilyNotFound):
        return KernelModuleMissing(op, target, hint=_FAMILY_HINT, detail=str(exc))
    if isinstance(exc, ValueError):
        return error_from_errno(errno.EINVAL, op, target, hint=hint, detail=str(exc))
    return error_from_errno(exc.errno, op, target, hint=hint, detail=exc.extack)


class GenlDevlink:
    """The `Devlink` Protocol over the kernel's devlink family. Stateless; safe to share between threads
    (each call opens its own socket)."""

    def eswitch_mode(self, handle: DevlinkHandle) -> EswitchMode:
        op, target = "get eswitch mode of", str(handle)
        try:
            with proto.DevlinkSocket() as sock:
                replies = sock.request(proto.eswitch_get(handle))
            if not replies:
                raise ValueError("kernel sent no eswitch reply")
            return proto.parse_eswitch_mode(replies[0])
        except (FamilyNotFound, GenlCommandError, ValueError) as exc:
            raise _host_error(exc, op, target) from exc

    def set_eswitch_mode(self, handle: DevlinkHandle, mode: EswitchMode) -> None:
        op, target = f"set eswitch mode {mode} on", str(handle)
        hint = ("unbind the VFs from their driver first (mlx5 refuses while VFs are bound)"
                if mode is EswitchMode.SWITCHDEV else "")
        try:
            with proto.DevlinkSocket() as sock:
                sock.request(proto.eswitch_set(handle, mode))
        except GenlCommandError as exc:
            raise _host_error(exc, op, target, hint=hint if exc.errno == errno.EBUSY else "") from exc
        except (FamilyNotFound, ValueError) as exc:
            raise _host_error(exc, op, target) from exc
        logger.info("devlink %s: eswitch mode %s", handle, mode)

    def ports(self, handle: DevlinkHandle | None = None) -> Sequence[DevlinkPort]:
        op, target = "list devlink ports of", str(handle) if handle else "all devices"
        try:
            with proto.DevlinkSocket() as sock:
                replies = sock.request(proto.port_dump(), dump=True)
            ports = [proto.parse_port(reply) for reply in replies]
        except FamilyNotFound:
            logger.debug("devlink family not registered: no ports")
            return []
        except (GenlCommandError, ValueError) as exc:
            raise _host_error(exc, op, target) from exc
        if handle is not None:
            ports = [port for port in ports if port.handle == handle]
        return sorted(ports, key=lambda port: (str(port.handle), port.index))

    def param(self, handle: DevlinkHandle, name: str) -> DevlinkParam | None:
        """The runtime value when the driver reports one, else driverinit, else permanent. None when the
        device has no such parameter (PARAM_GET answers EINVAL) or there is no devlink at all."""
        op, target = f"get devlink param {name} of", str(handle)
        try:
            with proto.DevlinkSocket() as sock:
                replies = sock.request(proto.param_get(handle, name))
            return proto.parse_param(replies[0]) if replies else None
        except FamilyNotFound:
            return None
        except GenlCommandError as exc:
            if exc.errno == errno.EINVAL:
                logger.debug("devlink %s has no parameter %s (%s)", handle, name, exc)
                return None
            raise _host_error(exc, op, target) from exc
        except ValueError as exc:
            raise _host_error(exc, op, target) from exc

    def set_param(self, handle: DevlinkHandle, name: str, value: str | int | bool, cmode: str) -> None:
        """PARAM_GET for the parameter's type, then PARAM_SET (the kernel rejects any other type)."""
        op, target = f"set devlink param {name}={value} ({cmode}) on", str(handle)
        try:
            with proto.DevlinkSocket() as sock:
                try:
                    replies = sock.request(proto.param_get(handle, name))
                except GenlCommandError as exc:
                    if exc.errno == errno.EINVAL:
                        raise _host_error(exc, op, target, hint=f"the device has no parameter {name!r}") from exc
                    raise
                if not replies:
                    raise ValueError("kernel sent no parameter reply")
                sock.request(proto.param_set(handle, name, proto.param_type_of(replies[0]), value, cmode))
        except (FamilyNotFound, GenlCommandError, ValueError) as exc:
            raise _host_error(exc, op, target) from exc
        logger.info("devlink %s: param %s = %s (%s)", handle, name, value, cmode)
