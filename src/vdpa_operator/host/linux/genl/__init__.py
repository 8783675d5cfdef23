"""Generic netlink plumbing shared by the `vdpa` and `devlink` wire modules (`vdpa_proto`, `devlink_proto`).

Why this layer exists: pyroute2's `GenericNetlinkSocket` resolves a family through nlctrl
(`CTRL_CMD_GETFAMILY`) but reports a family that is not registered as a bare `NetlinkError(ENOENT)` — the same
errno a command can return for a missing object — and logs it at error level on the root logger. Here that one
case becomes `FamilyNotFound` (a `GenlCommandError` with `family_missing` set), every other kernel error
becomes `GenlCommandError(errno, extack)`, and the adapters (`host.linux.vdpa`, `host.linux.devlink`) map
those to `HostError`s. No pyroute2 type leaves this package.

Every message on the wire (host byte order; NLAs padded to 4 bytes, their length field unpadded)::

    struct nlmsghdr   u32 nlmsg_len | u16 nlmsg_type (= family id) | u16 nlmsg_flags | u32 seq | u32 pid
    struct genlmsghdr u8 cmd | u8 version | u16 reserved
    struct nlattr...  u16 nla_len (4 + payload) | u16 nla_type (bit 15 NLA_F_NESTED) | payload | pad to 4

Requests carry `NLM_F_REQUEST` plus `NLM_F_ACK` (do) or `NLM_F_DUMP` (dump). Sockets are opened with
`NETLINK_EXT_ACK`, so the kernel's extack string (`NLMSGERR_ATTR_MSG`, e.g. "device not found") comes back
with an error and ends up in `GenlCommandError.extack`.

A socket is cheap (family resolution is one round trip, well under a millisecond), so adapters open one per
operation: pyroute2's synchronous sockets are bound to the thread that created them and to their own event
loop, and a short-lived socket keeps both questions out of the callers' way.
"""

from __future__ import annotations

import errno
import os
import struct
from typing import Any, ClassVar, Self, TypeVar

from pyroute2.netlink import NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST  # type: ignore[import-untyped]
from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]
from pyroute2.netlink.generic import (  # type: ignore[import-untyped]
    AsyncGenericNetlinkSocket,
    GenericNetlinkSocket,
)

from vdpa_operator.errors import VdpaOperatorError

M = TypeVar("M")

__all__ = [
    "FamilyNotFound",
    "GenlCommandError",
    "GenlSocket",
    "decode",
    "encode",
    "message",
]


class GenlCommandError(VdpaOperatorError):
    """The kernel answered a request with a negative errno; `extack` is its message, "" when it sent none.
    `family_missing` is true when the family itself is not registered (see `FamilyNotFound`); other models of
    a genl family (the simulated kernel) raise this type with the flag set instead of the subclass."""

    def __init__(self, code: int, extack: str = "", *, family_missing: bool = False) -> None:
        self.errno = abs(code)
        self.extack = extack
        self.family_missing = family_missing
        text = os.strerror(self.errno)
        super().__init__(f"{text}: {extack}" if extack else text)


class FamilyNotFound(GenlCommandError):
    """The generic netlink family is not registered: its module is not loaded, or (for families with
    `netnsok = false`, such as vdpa) this process is not in the initial network namespace. nlctrl answers
    ENOENT; `extack` (and `str()`) is the sentence saying which family."""

    def __init__(self, family: str) -> None:
        super().__init__(errno.ENOENT, f"generic netlink family {family!r} is not registered", family_missing=True)
        self.family = family

    def __str__(self) -> str:
        return self.extack


def _from_netlink_error(exc: Any) -> GenlCommandError:
    code = int(getattr(exc, "code", 0) or errno.EIO)
    message = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], str) else ""
    # pyroute2 puts strerror() there when the kernel sent no extack; keep only real extack text.
    extack = "" if message == os.strerror(code) else message
    return GenlCommandError(code, extack)


class _AsyncGenlSocket(AsyncGenericNetlinkSocket):  # type: ignore[misc]
    # A missing family is an expected answer here (no vDPA on this node), not an error worth a log line.
    module_err_level = "debug"


class GenlSocket(GenericNetlinkSocket):  # type: ignore[misc]
    """A synchronous socket bound to one generic netlink family at construction.

    Subclasses set `family`, `message_class` and `version`. Use as a context manager::

        with VdpaSocket() as sock:            # FamilyNotFound when "vdpa" is not registered
            replies = sock.request(msg, dump=True)
    """

    async_class = _AsyncGenlSocket
    family: ClassVar[str] = ""
    message_class: ClassVar[type[Any]]
    version: ClassVar[int] = 1

    def __init__(self) -> None:
        super().__init__(ext_ack=True)
        try:
            self.bind(self.family, self.message_class)
        except NetlinkError as exc:
            self.close()
            if exc.code == errno.ENOENT:
                raise FamilyNotFound(self.family) from exc
            raise _from_netlink_error(exc) from exc
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def family_id(self) -> int:
        return int(self.prid)

    def request(self, msg: Any, *, dump: bool = False) -> list[Any]:
        """Send `msg` (its `cmd` and attrs set; version filled in here) and return the family's reply
        messages — not filtered by `cmd`, because several families answer a GET with the NEW command number.
        An ack-only command returns []. Kernel errors raise GenlCommandError."""
        msg["version"] = self.version
        flags = NLM_F_REQUEST | (NLM_F_DUMP if dump else NLM_F_ACK)
        try:
            replies = self.nlm_request(msg, msg_type=self.prid, msg_flags=flags)
            return [reply for reply in replies if isinstance(reply, self.message_class)]
        except NetlinkError as exc:
            raise _from_netlink_error(exc) from exc


def message(message_class: type[M], cmd: int, attrs: list[tuple[str, Any]], version: int = 1) -> M:
    """A request of a family: `cmd` with `attrs` (NLA names as in `message_class.nla_map`)."""
    msg = message_class()
    fields: Any = msg  # a pyroute2 genlmsg: untyped, indexed by field name
    fields["cmd"] = cmd
    fields["version"] = version
    fields["attrs"] = attrs
    return msg


def encode(msg: Any, *, family_id: int, flags: int = NLM_F_REQUEST | NLM_F_ACK, seq: int = 0, pid: int = 0,
           version: int = 1) -> bytes:
    """The bytes a socket would send for `msg` (for golden tests and for models of the kernel)."""
    msg["version"] = version
    msg["header"]["type"] = family_id
    msg["header"]["flags"] = flags
    msg["header"]["sequence_number"] = seq
    msg["header"]["pid"] = pid
    msg.reset()
    msg.encode()
    return bytes(msg.data)


def decode(message_class: type[Any], data: bytes) -> list[Any]:
    """Split a buffer of netlink messages (as one recv() returns them) and decode each with `message_class`.
    `NLMSG_ERROR`/`NLMSG_DONE` frames are skipped (types 2 and 3)."""
    messages: list[Any] = []
    offset = 0
    while offset + 16 <= len(data):
        length, msg_type = struct.unpack_from("=IH", data, offset)
        if length < 16 or offset + length > len(data):
            raise ValueError(f"truncated netlink message at offset {offset}: length {length}, have {len(data)}")
        if msg_type > 3:
            msg = message_class(data[offset:offset + length])
            msg.decode()
            messages.append(msg)
        offset += (length + 3) & ~3
    return messages

