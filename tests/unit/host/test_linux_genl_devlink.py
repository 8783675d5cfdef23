"""The devlink generic netlink wire layer and the `GenlDevlink` adapter.

Expected bytes are built with `struct` from the uapi layout (ids from `include/uapi/linux/devlink.h` 6.1) and
reply shapes from 6.1's `devlink_nl_*_fill()`, independently of the code under test. The adapter runs against
a scripted socket; the family-absent behaviour against this host's kernel, which has no devlink family.
"""

from __future__ import annotations

import errno
import re
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from unit.host.genl_scaffold import (
    ScriptedSocket,
    family_registered,
    nla,
    scripted_socket,
    strz,
    u8,
    u16,
    u32,
    uapi_enum,
)
from vdpa_operator.host.errors import DeviceBusy, DeviceNotFound, InvalidArgument, KernelModuleMissing
from vdpa_operator.host.linux.devlink import GenlDevlink
from vdpa_operator.host.linux.genl import GenlCommandError, decode, encode
from vdpa_operator.host.linux.genl import devlink_proto as proto
from vdpa_operator.host.types import DevlinkHandle, DevlinkParam, DevlinkPort, EswitchMode, PortFlavour

NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x2, 0x4, 0x300
NLA_F_NESTED = 1 << 15
FAMILY = 0x14

# enum devlink_command / enum devlink_attr (include/uapi/linux/devlink.h, 6.1)
CMD_PORT_GET, CMD_PORT_NEW, CMD_ESWITCH_GET, CMD_ESWITCH_SET, CMD_PARAM_GET, CMD_PARAM_SET = 5, 7, 29, 30, 38, 39
A_BUS, A_DEV, A_PORT_INDEX, A_PORT_TYPE, A_NETDEV_IFINDEX, A_NETDEV_NAME = 1, 2, 3, 4, 6, 7
A_ESWITCH_MODE, A_INLINE_MODE, A_PAD, A_ENCAP_MODE = 25, 26, 61, 62
A_FLAVOUR, A_PORT_NUMBER = 77, 78
A_PARAM, A_PARAM_NAME, A_PARAM_GENERIC, A_PARAM_TYPE, A_VALUES_LIST, A_VALUE, A_DATA, A_CMODE = range(80, 88)
A_PF_NUMBER, A_VF_NUMBER, A_SPLITTABLE, A_EXTERNAL, A_CONTROLLER = 127, 128, 148, 149, 150
NLA_STRING, NLA_FLAG, NLA_U8, NLA_U16, NLA_U32 = 5, 6, 1, 2, 3  # devlink PARAM_TYPE values

PF = DevlinkHandle("pci", "0000:65:00.0")


def nest(kind: int, *attrs: bytes, flag: int = 0) -> bytes:
    return nla(kind | flag, b"".join(attrs))


def handle(h: DevlinkHandle = PF) -> tuple[bytes, bytes]:
    return strz(A_BUS, h.bus), strz(A_DEV, h.name)


def message(cmd: int, *attrs: bytes, flags: int = NLM_F_REQUEST | NLM_F_ACK, seq: int = 0) -> bytes:
    body = struct.pack("=BBH", cmd, 1, 0) + b"".join(attrs)
    return struct.pack("=IHHII", 16 + len(body), FAMILY, flags, seq, 0) + body


# --- requests --------------------------------------------------------------------------------------------------


def test_eswitch_set_matches_the_uapi_layout() -> None:
    assert encode(proto.eswitch_set(PF, EswitchMode.SWITCHDEV), family_id=FAMILY, seq=3) == message(
        CMD_ESWITCH_SET, *handle(), u16(A_ESWITCH_MODE, 1), seq=3
    )
    assert encode(proto.eswitch_set(PF, EswitchMode.LEGACY), family_id=FAMILY) == message(
        CMD_ESWITCH_SET, *handle(), u16(A_ESWITCH_MODE, 0)
    )


def test_eswitch_get_port_dump_and_param_get_requests() -> None:
    assert encode(proto.eswitch_get(PF), family_id=FAMILY) == message(CMD_ESWITCH_GET, *handle())
    dump = NLM_F_REQUEST | NLM_F_DUMP
    assert encode(proto.port_dump(), family_id=FAMILY, flags=dump) == message(CMD_PORT_GET, flags=dump)
    assert encode(proto.param_get(PF, "flow_steering_mode"), family_id=FAMILY) == message(
        CMD_PARAM_GET, *handle(), strz(A_PARAM_NAME, "flow_steering_mode")
    )


@pytest.mark.parametrize(
    ("param_type", "value", "data"),
    [
        (NLA_STRING, "smfs", strz(A_DATA, "smfs")),
        (NLA_U8, 3, u8(A_DATA, 3)),
        (NLA_U16, "0x100", u16(A_DATA, 256)),
        (NLA_U32, 70000, u32(A_DATA, 70000)),
        (NLA_FLAG, True, nla(A_DATA, b"")),
        (NLA_FLAG, "false", b""),  # a false bool is sent as no DATA at all
    ],
)
def test_param_set_encodes_the_value_by_the_parameter_type(param_type: int, value: Any, data: bytes) -> None:
    request = proto.param_set(PF, "p", param_type, value, "driverinit")
    assert encode(request, family_id=FAMILY) == message(
        CMD_PARAM_SET, *handle(), strz(A_PARAM_NAME, "p"), u8(A_CMODE, 1), u8(A_PARAM_TYPE, param_type), data
    )


@pytest.mark.parametrize(
    ("param_type", "value", "match"),
    [(NLA_U8, 256, "8-bit"), (NLA_U16, "fast", "not an integer"), (NLA_FLAG, "maybe", "boolean"), (99, 1, "99")],
)
def test_param_values_that_do_not_fit_are_value_errors(param_type: int, value: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        proto.param_set(PF, "p", param_type, value, "runtime")


def test_unknown_cmode_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="configuration mode"):
        proto.param_set(PF, "p", NLA_STRING, "x", "sometimes")


# --- replies ---------------------------------------------------------------------------------------------------


def test_eswitch_reply_parses() -> None:
    data = message(CMD_ESWITCH_GET, *handle(), u16(A_ESWITCH_MODE, 1), u8(A_INLINE_MODE, 0), u8(A_ENCAP_MODE, 1))
    (msg,) = decode(proto.DevlinkMsg, data)
    assert proto.parse_eswitch_mode(msg) is EswitchMode.SWITCHDEV
    (bad,) = decode(proto.DevlinkMsg, message(CMD_ESWITCH_GET, *handle(), u16(A_ESWITCH_MODE, 7)))
    with pytest.raises(ValueError, match="mode 7"):
        proto.parse_eswitch_mode(bad)


def pcivf_port(index: int, vf: int, netdev: str, *, h: DevlinkHandle = PF) -> bytes:
    """`devlink_nl_port_fill()` for a VF representor on a 6.1 mlx5: ids past pyroute2's table included."""
    return message(
        CMD_PORT_NEW, *handle(h), u32(A_PORT_INDEX, index), u16(A_PORT_TYPE, 2), u32(A_NETDEV_IFINDEX, 40 + vf),
        strz(A_NETDEV_NAME, netdev), u8(A_SPLITTABLE, 0), u16(A_FLAVOUR, 4), u32(A_CONTROLLER, 0),
        u16(A_PF_NUMBER, 0), u16(A_VF_NUMBER, vf), u8(A_EXTERNAL, 0), flags=NLM_F_MULTI,
    )


def physical_port(index: int, netdev: str, *, h: DevlinkHandle = PF) -> bytes:
    return message(
        CMD_PORT_NEW, *handle(h), u32(A_PORT_INDEX, index), u16(A_PORT_TYPE, 2), strz(A_NETDEV_NAME, netdev),
        u16(A_FLAVOUR, 0), u32(A_PORT_NUMBER, 0), flags=NLM_F_MULTI,
    )


def test_port_reply_with_pcivf_flavour_parses() -> None:
    (msg,) = decode(proto.DevlinkMsg, pcivf_port(131074, 3, "pf0vf3"))
    assert msg["cmd"] == CMD_PORT_NEW
    assert msg.get_attr("DEVLINK_ATTR_PORT_CONTROLLER_NUMBER") == 0
    assert proto.parse_port(msg) == DevlinkPort(PF, 131074, PortFlavour.PCI_VF, netdev="pf0vf3", pfnum=0, vfnum=3)


def test_physical_port_has_no_vf_number() -> None:
    (msg,) = decode(proto.DevlinkMsg, physical_port(65535, "ens1f0np0"))
    assert msg.get_attr("DEVLINK_ATTR_PORT_NUMBER") == 0
    assert proto.parse_port(msg) == DevlinkPort(PF, 65535, PortFlavour.PHYSICAL, netdev="ens1f0np0")


def test_unknown_flavour_is_unknown() -> None:
    (msg,) = decode(proto.DevlinkMsg, message(CMD_PORT_NEW, *handle(), u32(A_PORT_INDEX, 1), u16(A_FLAVOUR, 42)))
    assert proto.parse_port(msg).flavour is PortFlavour.UNKNOWN


@pytest.mark.parametrize("nested_flag", [0, NLA_F_NESTED], ids=["6.1-noflag", "nla_f_nested"])
def test_param_reply_with_string_value_parses(nested_flag: int) -> None:
    # devlink_nl_param_fill(): PARAM { NAME, TYPE, VALUES_LIST { VALUE { CMODE, DATA } } }; 6.1 uses
    # nla_nest_start_noflag(), newer kernels may set NLA_F_NESTED
    data = message(
        CMD_PARAM_GET, *handle(),
        nest(A_PARAM,
             strz(A_PARAM_NAME, "flow_steering_mode"), u8(A_PARAM_TYPE, NLA_STRING),
             nest(A_VALUES_LIST,
                  nest(A_VALUE, u8(A_CMODE, 0), strz(A_DATA, "smfs"), flag=nested_flag),
                  flag=nested_flag),
             flag=nested_flag),
    )
    (msg,) = decode(proto.DevlinkMsg, data)
    assert proto.parse_param(msg) == DevlinkParam("flow_steering_mode", "smfs", "runtime")
    assert proto.param_type_of(msg) == NLA_STRING


def test_param_reply_with_several_cmodes_and_a_false_bool() -> None:
    data = message(
        CMD_PARAM_GET, *handle(),
        nest(A_PARAM,
             strz(A_PARAM_NAME, "enable_roce"), nla(A_PARAM_GENERIC, b""), u8(A_PARAM_TYPE, NLA_FLAG),
             nest(A_VALUES_LIST,
                  nest(A_VALUE, u8(A_CMODE, 1)),  # driverinit: false (no DATA)
                  nest(A_VALUE, u8(A_CMODE, 2), nla(A_DATA, b"")))),  # permanent: true
    )
    (msg,) = decode(proto.DevlinkMsg, data)
    assert proto.parse_param_values(msg) == ("enable_roce", {"driverinit": False, "permanent": True})
    assert proto.parse_param(msg) == DevlinkParam("enable_roce", False, "driverinit")
    assert proto.parse_param(msg, "permanent") == DevlinkParam("enable_roce", True, "permanent")
    assert proto.parse_param(msg, "runtime") is None


def test_ids_match_the_installed_uapi_header() -> None:
    header = Path("/usr/include/linux/devlink.h")
    if not header.exists():
        pytest.skip("no /usr/include/linux/devlink.h (install linux-libc-dev) to compare the ids with")
    text = header.read_text()
    kernel = {}
    for enum in ("devlink_command", "devlink_attr", "devlink_eswitch_mode", "devlink_port_flavour",
                 "devlink_param_cmode"):
        kernel.update(uapi_enum(text, enum))
    ours = {name: getattr(proto, name) for name in dir(proto) if name.startswith("DEVLINK_") and name in kernel}
    assert ours == {name: kernel[name] for name in ours}
    # every kernel-named constant is checked, except those the 6.1 header does not spell this way
    unchecked = {name for name in dir(proto) if name.startswith("DEVLINK_")} - ours.keys()
    assert unchecked == {"DEVLINK_GENL_NAME", "DEVLINK_GENL_VERSION"} | {
        f"DEVLINK_PARAM_TYPE_{t}" for t in ("U8", "U16", "U32", "U64", "STRING", "BOOL")  # include/net/devlink.h
    }
    # the message table's ids are the header's ids for its names
    assert {name: id_ for id_, name, _ in proto.DevlinkMsg.nla_map} == {
        name: kernel[name] for _, name, _ in proto.DevlinkMsg.nla_map
    }


def test_ids_agree_with_pyroute2_where_pyroute2_defines_them() -> None:
    from pyroute2.netlink.devlink import devlinkcmd  # type: ignore[import-untyped]

    theirs = {name: id_ for id_, (name, _) in enumerate(devlinkcmd.nla_map)}
    ours = {name: id_ for id_, name, _ in proto.DevlinkMsg.nla_map}
    shared = ours.keys() & theirs.keys()
    assert {name: ours[name] for name in shared} == {name: theirs[name] for name in shared}
    # and what pyroute2 lacks (why this module has its own class)
    assert {"DEVLINK_ATTR_PORT_EXTERNAL", "DEVLINK_ATTR_PORT_CONTROLLER_NUMBER"} <= ours.keys() - theirs.keys()


# --- the adapter against a scripted socket ---------------------------------------------------------------------


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[ScriptedSocket]]:
    yield from scripted_socket(monkeypatch, proto, "DevlinkSocket", FAMILY)


def test_eswitch_mode_reads_the_mode(scripted: type[ScriptedSocket]) -> None:
    scripted.script = [message(CMD_ESWITCH_GET, *handle(), u16(A_ESWITCH_MODE, 0))]
    assert GenlDevlink().eswitch_mode(PF) is EswitchMode.LEGACY


def test_set_eswitch_mode_busy_carries_extack_and_hint(scripted: type[ScriptedSocket]) -> None:
    scripted.script = [GenlCommandError(errno.EBUSY, "Can't change mode when vfs are bound")]
    with pytest.raises(DeviceBusy) as raised:
        GenlDevlink().set_eswitch_mode(PF, EswitchMode.SWITCHDEV)
    error = raised.value
    assert (error.op, error.target, error.errno) == ("set eswitch mode switchdev on", "pci/0000:65:00.0", errno.EBUSY)
    assert error.detail == "Can't change mode when vfs are bound"
    assert "unbind the VFs" in error.hint and error.temporary


def test_eswitch_mode_of_a_missing_device_is_device_not_found(scripted: type[ScriptedSocket]) -> None:
    scripted.script = [GenlCommandError(errno.ENODEV)]
    with pytest.raises(DeviceNotFound, match=re.escape("get eswitch mode of pci/0000:65:00.0 failed: ENODEV")):
        GenlDevlink().eswitch_mode(PF)


def test_ports_filters_by_handle_and_sorts(scripted: type[ScriptedSocket]) -> None:
    other = DevlinkHandle("pci", "0000:65:00.1")
    dump = pcivf_port(131075, 1, "pf0vf1") + physical_port(65535, "p0", h=other) + pcivf_port(131074, 0, "pf0vf0")
    scripted.script = [dump, dump]
    assert [(str(p.handle), p.index) for p in GenlDevlink().ports()] == [
        ("pci/0000:65:00.0", 131074), ("pci/0000:65:00.0", 131075), ("pci/0000:65:00.1", 65535)]
    assert [p.netdev for p in GenlDevlink().ports(PF)] == ["pf0vf0", "pf0vf1"]
    assert [dump for _, dump in scripted.requests] == [True, True]


def test_param_missing_is_none(scripted: type[ScriptedSocket]) -> None:
    scripted.script = [GenlCommandError(errno.EINVAL)]
    assert GenlDevlink().param(PF, "no_such_param") is None


def test_set_param_learns_the_type_then_sets(scripted: type[ScriptedSocket]) -> None:
    reply = message(CMD_PARAM_GET, *handle(), nest(
        A_PARAM, strz(A_PARAM_NAME, "flow_steering_mode"), u8(A_PARAM_TYPE, NLA_STRING),
        nest(A_VALUES_LIST, nest(A_VALUE, u8(A_CMODE, 0), strz(A_DATA, "dmfs")))))
    scripted.script = [reply, b""]
    GenlDevlink().set_param(PF, "flow_steering_mode", "smfs", "runtime")
    assert scripted.requests[1][0] == message(
        CMD_PARAM_SET, *handle(), strz(A_PARAM_NAME, "flow_steering_mode"), u8(A_CMODE, 0),
        u8(A_PARAM_TYPE, NLA_STRING), strz(A_DATA, "smfs"))


def test_set_param_of_a_missing_param_says_so(scripted: type[ScriptedSocket]) -> None:
    scripted.script = [GenlCommandError(errno.EINVAL)]
    with pytest.raises(InvalidArgument, match="the device has no parameter 'nope'"):
        GenlDevlink().set_param(PF, "nope", 1, "runtime")


# --- this host: no devlink family ------------------------------------------------------------------------------


no_devlink_family = pytest.mark.skipif(family_registered(proto.DevlinkSocket),
                                       reason="the devlink family is registered on this host")


@no_devlink_family
def test_without_the_family_there_are_no_ports_or_params() -> None:
    devlink = GenlDevlink()
    assert devlink.ports() == []
    assert devlink.ports(PF) == []
    assert devlink.param(PF, "flow_steering_mode") is None


@no_devlink_family
def test_without_the_family_eswitch_operations_raise_module_missing() -> None:
    devlink = GenlDevlink()
    with pytest.raises(KernelModuleMissing):
        devlink.eswitch_mode(PF)
    with pytest.raises(KernelModuleMissing) as raised:
        devlink.set_eswitch_mode(PF, EswitchMode.SWITCHDEV)
    assert str(raised.value).startswith("set eswitch mode switchdev on pci/0000:65:00.0 failed")
    with pytest.raises(KernelModuleMissing):
        devlink.set_param(PF, "flow_steering_mode", "smfs", "runtime")
