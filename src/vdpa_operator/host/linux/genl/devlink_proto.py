"""The kernel's `devlink` generic netlink family on the wire: the eswitch, port and parameter commands.

Followed: `include/uapi/linux/devlink.h` of Linux 6.1 (Debian bookworm `linux-libc-dev` 6.1.x) and the encoders
in 6.1's `net/core/devlink.c` (`devlink_nl_eswitch_fill`, `devlink_nl_port_fill`, `devlink_nl_param_fill`).
Kernel names (`DEVLINK_CMD_*`, `DEVLINK_ATTR_*`) live in this module only.

Why not pyroute2's `pyroute2.netlink.devlink.devlinkcmd`: its ids agree with the 6.1 header for every id it
defines (0–148; `tests/unit/host/test_linux_genl_devlink.py` checks that), but it stops at 148, so a 6.1 port
reply's PORT_EXTERNAL (149), PORT_CONTROLLER_NUMBER (150) and PORT_PCI_SF_NUMBER (164) decode as unknown, and it
types PARAM_VALUE_DATA as `none`, which can neither decode nor encode a parameter value. The class below maps
only the attributes this project reads or writes, with explicit ids, and carries PARAM_VALUE_DATA as raw bytes
interpreted by PARAM_TYPE.

Family `"devlink"`, version 1. Commands used::

     5 PORT_GET      dump (6.1 ignores a handle in a dump: filter client-side); replies carry cmd 7 PORT_NEW
    29 ESWITCH_GET   do: BUS_NAME, DEV_NAME → ESWITCH_MODE u16, ESWITCH_INLINE_MODE u8, ESWITCH_ENCAP_MODE u8
    30 ESWITCH_SET   do: BUS_NAME, DEV_NAME, ESWITCH_MODE u16 (0 legacy, 1 switchdev)
    38 PARAM_GET     do: BUS_NAME, DEV_NAME, PARAM_NAME → reply cmd 38; EINVAL when the device has no such param
    39 PARAM_SET     do: BUS_NAME, DEV_NAME, PARAM_NAME, PARAM_TYPE u8, PARAM_VALUE_CMODE u8, [PARAM_VALUE_DATA]

Attributes used (`enum devlink_attr`)::

      1 BUS_NAME string         2 DEV_NAME string        3 PORT_INDEX u32          4 PORT_TYPE u16
      6 PORT_NETDEV_IFINDEX u32 7 PORT_NETDEV_NAME string 8 PORT_IBDEV_NAME string
     25 ESWITCH_MODE u16       26 ESWITCH_INLINE_MODE u8  61 PAD                   62 ESWITCH_ENCAP_MODE u8
     77 PORT_FLAVOUR u16       78 PORT_NUMBER u32        79 PORT_SPLIT_SUBPORT_NUMBER u32
     80 PARAM nest             81 PARAM_NAME string      82 PARAM_GENERIC flag    83 PARAM_TYPE u8
     84 PARAM_VALUES_LIST nest 85 PARAM_VALUE nest       86 PARAM_VALUE_DATA (typed by PARAM_TYPE)
     87 PARAM_VALUE_CMODE u8  127 PORT_PCI_PF_NUMBER u16 128 PORT_PCI_VF_NUMBER u16
    147 PORT_LANES u32        148 PORT_SPLITTABLE u8    149 PORT_EXTERNAL u8     150 PORT_CONTROLLER_NUMBER u32
    164 PORT_PCI_SF_NUMBER u32

A PARAM_GET reply nests (6.1 uses nla_nest_start_noflag, so no NLA_F_NESTED bit; newer kernels may set it,
pyroute2 masks it)::

    BUS_NAME, DEV_NAME, PARAM { PARAM_NAME, [PARAM_GENERIC], PARAM_TYPE,
                                PARAM_VALUES_LIST { PARAM_VALUE { PARAM_VALUE_CMODE, [PARAM_VALUE_DATA] } ... } }

PARAM_TYPE values are the kernel's NLA types (`DEVLINK_VAR_ATTR_TYPE_*` in newer headers): 1 u8, 2 u16,
3 u32, 4 u64 (newer kernels), 5 string (NUL-terminated), 6 flag (a bool: DATA present = true, absent = false).
Configuration modes (`enum devlink_param_cmode`): 0 runtime, 1 driverinit, 2 permanent.

Port flavours (`enum devlink_port_flavour`): 0 physical, 1 cpu, 2 dsa, 3 pcipf, 4 pcivf, 5 virtual,
6 unused, 7 pcisf. A pcivf port carries PORT_CONTROLLER_NUMBER, PORT_PCI_PF_NUMBER, PORT_PCI_VF_NUMBER and
PORT_EXTERNAL; physical ports carry PORT_NUMBER.

A dump can come back empty for a moment right after VFs (and their representor ports) appear
(research/kernel-testbed.md, gotcha 6); this layer reports what the kernel sent, callers that need the ports
poll.
"""

from __future__ import annotations

import struct
from typing import Any

from pyroute2.netlink import genlmsg, nla  # type: ignore[import-untyped]

from vdpa_operator.host.linux.genl import GenlSocket, message
from vdpa_operator.host.types import DevlinkHandle, DevlinkParam, DevlinkPort, EswitchMode, PortFlavour

DEVLINK_GENL_NAME = "devlink"
DEVLINK_GENL_VERSION = 1

DEVLINK_CMD_PORT_GET = 5
DEVLINK_CMD_PORT_NEW = 7
DEVLINK_CMD_ESWITCH_GET = 29
DEVLINK_CMD_ESWITCH_SET = 30
DEVLINK_CMD_PARAM_GET = 38
DEVLINK_CMD_PARAM_SET = 39

DEVLINK_ATTR_BUS_NAME = 1
DEVLINK_ATTR_DEV_NAME = 2
DEVLINK_ATTR_PORT_INDEX = 3
DEVLINK_ATTR_PORT_TYPE = 4
DEVLINK_ATTR_PORT_NETDEV_IFINDEX = 6
DEVLINK_ATTR_PORT_NETDEV_NAME = 7
DEVLINK_ATTR_PORT_IBDEV_NAME = 8
DEVLINK_ATTR_ESWITCH_MODE = 25
DEVLINK_ATTR_ESWITCH_INLINE_MODE = 26
DEVLINK_ATTR_PAD = 61
DEVLINK_ATTR_ESWITCH_ENCAP_MODE = 62
DEVLINK_ATTR_PORT_FLAVOUR = 77
DEVLINK_ATTR_PORT_NUMBER = 78
DEVLINK_ATTR_PORT_SPLIT_SUBPORT_NUMBER = 79
DEVLINK_ATTR_PARAM = 80
DEVLINK_ATTR_PARAM_NAME = 81
DEVLINK_ATTR_PARAM_GENERIC = 82
DEVLINK_ATTR_PARAM_TYPE = 83
DEVLINK_ATTR_PARAM_VALUES_LIST = 84
DEVLINK_ATTR_PARAM_VALUE = 85
DEVLINK_ATTR_PARAM_VALUE_DATA = 86
DEVLINK_ATTR_PARAM_VALUE_CMODE = 87
DEVLINK_ATTR_PORT_PCI_PF_NUMBER = 127
DEVLINK_ATTR_PORT_PCI_VF_NUMBER = 128
DEVLINK_ATTR_PORT_LANES = 147
DEVLINK_ATTR_PORT_SPLITTABLE = 148
DEVLINK_ATTR_PORT_EXTERNAL = 149
DEVLINK_ATTR_PORT_CONTROLLER_NUMBER = 150
DEVLINK_ATTR_PORT_PCI_SF_NUMBER = 164

DEVLINK_ESWITCH_MODE_LEGACY = 0
DEVLINK_ESWITCH_MODE_SWITCHDEV = 1

DEVLINK_PORT_FLAVOUR_PHYSICAL = 0
DEVLINK_PORT_FLAVOUR_CPU = 1
DEVLINK_PORT_FLAVOUR_DSA = 2
DEVLINK_PORT_FLAVOUR_PCI_PF = 3
DEVLINK_PORT_FLAVOUR_PCI_VF = 4
DEVLINK_PORT_FLAVOUR_VIRTUAL = 5
DEVLINK_PORT_FLAVOUR_UNUSED = 6
DEVLINK_PORT_FLAVOUR_PCI_SF = 7

DEVLINK_PARAM_CMODE_RUNTIME = 0
DEVLINK_PARAM_CMODE_DRIVERINIT = 1
DEVLINK_PARAM_CMODE_PERMANENT = 2

# enum devlink_param_type (= NLA_* / DEVLINK_VAR_ATTR_TYPE_*)
DEVLINK_PARAM_TYPE_U8 = 1
DEVLINK_PARAM_TYPE_U16 = 2
DEVLINK_PARAM_TYPE_U32 = 3
DEVLINK_PARAM_TYPE_U64 = 4
DEVLINK_PARAM_TYPE_STRING = 5
DEVLINK_PARAM_TYPE_BOOL = 6

_ESWITCH_MODES = {
    DEVLINK_ESWITCH_MODE_LEGACY: EswitchMode.LEGACY,
    DEVLINK_ESWITCH_MODE_SWITCHDEV: EswitchMode.SWITCHDEV,
}
_FLAVOURS = {
    DEVLINK_PORT_FLAVOUR_PHYSICAL: PortFlavour.PHYSICAL,
    DEVLINK_PORT_FLAVOUR_CPU: PortFlavour.CPU,
    DEVLINK_PORT_FLAVOUR_DSA: PortFlavour.DSA,
    DEVLINK_PORT_FLAVOUR_PCI_PF: PortFlavour.PCI_PF,
    DEVLINK_PORT_FLAVOUR_PCI_VF: PortFlavour.PCI_VF,
    DEVLINK_PORT_FLAVOUR_VIRTUAL: PortFlavour.VIRTUAL,
    DEVLINK_PORT_FLAVOUR_UNUSED: PortFlavour.UNUSED,
    DEVLINK_PORT_FLAVOUR_PCI_SF: PortFlavour.PCI_SF,
}
CMODES = {
    DEVLINK_PARAM_CMODE_RUNTIME: "runtime",
    DEVLINK_PARAM_CMODE_DRIVERINIT: "driverinit",
    DEVLINK_PARAM_CMODE_PERMANENT: "permanent",
}
"""cmode id → the name `devlink dev param` uses."""

_INT_FORMATS = {
    DEVLINK_PARAM_TYPE_U8: "=B",
    DEVLINK_PARAM_TYPE_U16: "=H",
    DEVLINK_PARAM_TYPE_U32: "=I",
    DEVLINK_PARAM_TYPE_U64: "=Q",
}

_ATTRS = (
    (DEVLINK_ATTR_BUS_NAME, "DEVLINK_ATTR_BUS_NAME", "asciiz"),
    (DEVLINK_ATTR_DEV_NAME, "DEVLINK_ATTR_DEV_NAME", "asciiz"),
    (DEVLINK_ATTR_PORT_INDEX, "DEVLINK_ATTR_PORT_INDEX", "uint32"),
    (DEVLINK_ATTR_PORT_TYPE, "DEVLINK_ATTR_PORT_TYPE", "uint16"),
    (DEVLINK_ATTR_PORT_NETDEV_IFINDEX, "DEVLINK_ATTR_PORT_NETDEV_IFINDEX", "uint32"),
    (DEVLINK_ATTR_PORT_NETDEV_NAME, "DEVLINK_ATTR_PORT_NETDEV_NAME", "asciiz"),
    (DEVLINK_ATTR_PORT_IBDEV_NAME, "DEVLINK_ATTR_PORT_IBDEV_NAME", "asciiz"),
    (DEVLINK_ATTR_ESWITCH_MODE, "DEVLINK_ATTR_ESWITCH_MODE", "uint16"),
    (DEVLINK_ATTR_ESWITCH_INLINE_MODE, "DEVLINK_ATTR_ESWITCH_INLINE_MODE", "uint8"),
    (DEVLINK_ATTR_PAD, "DEVLINK_ATTR_PAD", "none"),
    (DEVLINK_ATTR_ESWITCH_ENCAP_MODE, "DEVLINK_ATTR_ESWITCH_ENCAP_MODE", "uint8"),
    (DEVLINK_ATTR_PORT_FLAVOUR, "DEVLINK_ATTR_PORT_FLAVOUR", "uint16"),
    (DEVLINK_ATTR_PORT_NUMBER, "DEVLINK_ATTR_PORT_NUMBER", "uint32"),
    (DEVLINK_ATTR_PORT_SPLIT_SUBPORT_NUMBER, "DEVLINK_ATTR_PORT_SPLIT_SUBPORT_NUMBER", "uint32"),
    (DEVLINK_ATTR_PARAM, "DEVLINK_ATTR_PARAM", "nest"),
    (DEVLINK_ATTR_PARAM_NAME, "DEVLINK_ATTR_PARAM_NAME", "asciiz"),
    (DEVLINK_ATTR_PARAM_GENERIC, "DEVLINK_ATTR_PARAM_GENERIC", "flag"),
    (DEVLINK_ATTR_PARAM_TYPE, "DEVLINK_ATTR_PARAM_TYPE", "uint8"),
    (DEVLINK_ATTR_PARAM_VALUES_LIST, "DEVLINK_ATTR_PARAM_VALUES_LIST", "nest"),
    (DEVLINK_ATTR_PARAM_VALUE, "DEVLINK_ATTR_PARAM_VALUE", "nest"),
    (DEVLINK_ATTR_PARAM_VALUE_DATA, "DEVLINK_ATTR_PARAM_VALUE_DATA", "cdata"),
    (DEVLINK_ATTR_PARAM_VALUE_CMODE, "DEVLINK_ATTR_PARAM_VALUE_CMODE", "uint8"),
    (DEVLINK_ATTR_PORT_PCI_PF_NUMBER, "DEVLINK_ATTR_PORT_PCI_PF_NUMBER", "uint16"),
    (DEVLINK_ATTR_PORT_PCI_VF_NUMBER, "DEVLINK_ATTR_PORT_PCI_VF_NUMBER", "uint16"),
    (DEVLINK_ATTR_PORT_LANES, "DEVLINK_ATTR_PORT_LANES", "uint32"),
    (DEVLINK_ATTR_PORT_SPLITTABLE, "DEVLINK_ATTR_PORT_SPLITTABLE", "uint8"),
    (DEVLINK_ATTR_PORT_EXTERNAL, "DEVLINK_ATTR_PORT_EXTERNAL", "uint8"),
    (DEVLINK_ATTR_PORT_CONTROLLER_NUMBER, "DEVLINK_ATTR_PORT_CONTROLLER_NUMBER", "uint32"),
    (DEVLINK_ATTR_PORT_PCI_SF_NUMBER, "DEVLINK_ATTR_PORT_PCI_SF_NUMBER", "uint32"),
)


class DevlinkMsg(genlmsg):  # type: ignore[misc]
    """One devlink genl message (the subset of `enum devlink_attr` above, explicit ids)."""

    prefix = "DEVLINK_ATTR_"
    nla_map = _ATTRS

    class nest(nla):  # type: ignore[misc]  # pyroute2 resolves "nest" by this name
        prefix = "DEVLINK_ATTR_"
        nla_map = tuple((id_, name, "recursive" if kind == "nest" else kind) for id_, name, kind in _ATTRS)


class DevlinkSocket(GenlSocket):
    """A socket bound to family "devlink"; FamilyNotFound on kernels without devlink."""

    family = DEVLINK_GENL_NAME
    message_class = DevlinkMsg
    version = DEVLINK_GENL_VERSION


def _msg(cmd: int, attrs: list[tuple[str, Any]]) -> DevlinkMsg:
    return message(DevlinkMsg, cmd, attrs, DEVLINK_GENL_VERSION)


def _handle(handle: DevlinkHandle) -> list[tuple[str, Any]]:
    return [("DEVLINK_ATTR_BUS_NAME", handle.bus), ("DEVLINK_ATTR_DEV_NAME", handle.name)]


def eswitch_get(handle: DevlinkHandle) -> DevlinkMsg:
    return _msg(DEVLINK_CMD_ESWITCH_GET, _handle(handle))


def eswitch_set(handle: DevlinkHandle, mode: EswitchMode) -> DevlinkMsg:
    value = {v: k for k, v in _ESWITCH_MODES.items()}[mode]
    return _msg(DEVLINK_CMD_ESWITCH_SET, [*_handle(handle), ("DEVLINK_ATTR_ESWITCH_MODE", value)])


def port_dump() -> DevlinkMsg:
    """PORT_GET for a dump of every port of every device (6.1 does not filter dumps by handle)."""
    return _msg(DEVLINK_CMD_PORT_GET, [])


def param_get(handle: DevlinkHandle, name: str) -> DevlinkMsg:
    return _msg(DEVLINK_CMD_PARAM_GET, [*_handle(handle), ("DEVLINK_ATTR_PARAM_NAME", name)])


def cmode_id(cmode: str) -> int:
    for id_, text in CMODES.items():
        if text == cmode:
            return id_
    raise ValueError(f"{cmode!r} is not a devlink configuration mode (runtime, driverinit, permanent)")


def pack_param_value(param_type: int, value: str | int | bool) -> bytes | None:
    """PARAM_VALUE_DATA's payload for `value` as a parameter of `param_type`; None means "send no DATA"
    (a false bool). ValueError when the value does not fit the type."""
    if param_type == DEVLINK_PARAM_TYPE_BOOL:
        if isinstance(value, str):
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError(f"{value!r} is not a boolean (true/false)")
            value = value.lower() in ("true", "1")
        return b"" if value else None
    if param_type == DEVLINK_PARAM_TYPE_STRING:
        text = str(value).lower() if isinstance(value, bool) else str(value)
        return text.encode() + b"\0"
    fmt = _INT_FORMATS.get(param_type)
    if fmt is None:
        raise ValueError(f"devlink parameter type {param_type} is not supported")
    if isinstance(value, bool):
        number = int(value)
    elif isinstance(value, int):
        number = value
    else:
        try:
            number = int(value, 0)
        except ValueError:
            raise ValueError(f"{value!r} is not an integer") from None
    try:
        return struct.pack(fmt, number)
    except struct.error:
        raise ValueError(f"{number} does not fit a {struct.calcsize(fmt) * 8}-bit parameter") from None


def unpack_param_value(param_type: int, data: bytes | None) -> str | int | bool:
    """A PARAM_VALUE_DATA payload (None = attribute absent) as the Python value of `param_type`."""
    if param_type == DEVLINK_PARAM_TYPE_BOOL:
        return data is not None
    if data is None:
        raise ValueError(f"devlink parameter value of type {param_type} without data")
    if param_type == DEVLINK_PARAM_TYPE_STRING:
        return data.split(b"\0", 1)[0].decode(errors="replace")
    fmt = _INT_FORMATS.get(param_type)
    if fmt is None:
        raise ValueError(f"devlink parameter type {param_type} is not supported")
    return int(struct.unpack_from(fmt, data)[0])


def param_set(handle: DevlinkHandle, name: str, param_type: int, value: str | int | bool, cmode: str) -> DevlinkMsg:
    """PARAM_SET; the kernel insists on the parameter's own type, so callers learn it with PARAM_GET first
    (as iproute2 does)."""
    attrs = [
        *_handle(handle),
        ("DEVLINK_ATTR_PARAM_NAME", name),
        ("DEVLINK_ATTR_PARAM_VALUE_CMODE", cmode_id(cmode)),
        ("DEVLINK_ATTR_PARAM_TYPE", param_type),
    ]
    data = pack_param_value(param_type, value)
    if data is not None:
        attrs.append(("DEVLINK_ATTR_PARAM_VALUE_DATA", data))
    return _msg(DEVLINK_CMD_PARAM_SET, attrs)


def parse_handle(msg: Any) -> DevlinkHandle:
    bus, name = msg.get_attr("DEVLINK_ATTR_BUS_NAME"), msg.get_attr("DEVLINK_ATTR_DEV_NAME")
    if not bus or not name:
        raise ValueError("devlink reply without BUS_NAME/DEV_NAME")
    return DevlinkHandle(str(bus), str(name))


def parse_eswitch_mode(msg: Any) -> EswitchMode:
    value = msg.get_attr("DEVLINK_ATTR_ESWITCH_MODE")
    if value not in _ESWITCH_MODES:
        raise ValueError(f"devlink eswitch reply with mode {value!r}")
    return _ESWITCH_MODES[value]


def parse_port(msg: Any) -> DevlinkPort:
    """A PORT_GET reply (cmd PORT_NEW) → DevlinkPort. `vfnum` only for pcivf ports, `pfnum` for pci ports."""
    index = msg.get_attr("DEVLINK_ATTR_PORT_INDEX")
    if index is None:
        raise ValueError("devlink port reply without PORT_INDEX")
    flavour_id = msg.get_attr("DEVLINK_ATTR_PORT_FLAVOUR")
    flavour = _FLAVOURS.get(flavour_id, PortFlavour.UNKNOWN) if flavour_id is not None else PortFlavour.UNKNOWN
    pfnum = msg.get_attr("DEVLINK_ATTR_PORT_PCI_PF_NUMBER")
    vfnum = msg.get_attr("DEVLINK_ATTR_PORT_PCI_VF_NUMBER") if flavour is PortFlavour.PCI_VF else None
    return DevlinkPort(
        handle=parse_handle(msg),
        index=int(index),
        flavour=flavour,
        netdev=msg.get_attr("DEVLINK_ATTR_PORT_NETDEV_NAME") or None,
        pfnum=int(pfnum) if pfnum is not None else None,
        vfnum=int(vfnum) if vfnum is not None else None,
    )


def param_type_of(msg: Any) -> int:
    """PARAM_TYPE of a PARAM_GET reply."""
    param = msg.get_attr("DEVLINK_ATTR_PARAM")
    value = param.get_attr("DEVLINK_ATTR_PARAM_TYPE") if param is not None else None
    if value is None:
        raise ValueError("devlink param reply without PARAM/PARAM_TYPE")
    return int(value)


def parse_param_values(msg: Any) -> tuple[str, dict[str, str | int | bool]]:
    """A PARAM_GET reply → (name, {cmode name: value}) for every configuration mode the driver reports."""
    param = msg.get_attr("DEVLINK_ATTR_PARAM")
    if param is None:
        raise ValueError("devlink param reply without PARAM")
    name = param.get_attr("DEVLINK_ATTR_PARAM_NAME")
    param_type = param_type_of(msg)
    values: dict[str, str | int | bool] = {}
    values_list = param.get_attr("DEVLINK_ATTR_PARAM_VALUES_LIST")
    for value in values_list.get_attrs("DEVLINK_ATTR_PARAM_VALUE") if values_list is not None else ():
        cmode = value.get_attr("DEVLINK_ATTR_PARAM_VALUE_CMODE")
        data = value.get_attr("DEVLINK_ATTR_PARAM_VALUE_DATA")
        values[CMODES.get(cmode, str(cmode))] = unpack_param_value(param_type, data)
    return str(name), values


def parse_param(msg: Any, cmode: str | None = None) -> DevlinkParam | None:
    """A PARAM_GET reply → DevlinkParam for `cmode`, or when None for the first mode of runtime, driverinit,
    permanent that the driver reports. None when the requested mode is not reported."""
    name, values = parse_param_values(msg)
    for mode in (cmode,) if cmode is not None else tuple(CMODES.values()):
        if mode in values:
            return DevlinkParam(name=name, value=values[mode], cmode=mode)
    return None
