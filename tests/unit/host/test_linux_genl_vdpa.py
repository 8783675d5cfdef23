"""The vdpa generic netlink wire layer and the `GenlVdpa` adapter's netlink half.

Expected bytes are built here with `struct` from the uapi layout (nlmsghdr, genlmsghdr, nlattr; ids from
`include/uapi/linux/vdpa.h`), not with pyroute2, so the test is an oracle independent of the code under test.
Adapter behaviour (retry on EOPNOTSUPP, errno mapping) runs against a scripted socket; the family-absent
behaviour runs against this host's kernel, which has no vdpa family.
"""

from __future__ import annotations

import errno
import logging
import re
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from unit.host.genl_scaffold import ScriptedSocket, family_registered, nla, scripted_socket, strz, u16, u32, uapi_enum
from vdpa_operator.host.errors import (
    AlreadyExists,
    DeviceNotFound,
    InvalidArgument,
    KernelModuleMissing,
    NoSpace,
    NotSupported,
)
from vdpa_operator.host.linux.genl import GenlCommandError, decode, encode
from vdpa_operator.host.linux.genl import vdpa_proto as proto
from vdpa_operator.host.linux.sysfs import Sysfs
from vdpa_operator.host.linux.vdpa import GenlVdpa
from vdpa_operator.host.types import VdpaConfig, VdpaDevice, VdpaMgmtDev, VdpaNetConfig

# --- an independent encoder: the uapi layout, by hand ----------------------------------------------------------

NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x2, 0x4, 0x300
NLMSG_DONE = 3
FAMILY = 0x1D  # any id: the kernel assigns it at registration

# enum vdpa_command / enum vdpa_attr (include/uapi/linux/vdpa.h)
CMD_MGMTDEV_NEW, CMD_MGMTDEV_GET, CMD_DEV_NEW, CMD_DEV_DEL, CMD_DEV_GET, CMD_DEV_CONFIG_GET = 1, 2, 3, 4, 5, 6
CMD_DEV_ATTR_SET = 8
A_PAD, A_BUS, A_MGMTDEV, A_CLASSES, A_NAME, A_ID, A_VENDOR, A_MAX_VQS, A_MAX_VQ_SIZE, A_MIN_VQ_SIZE = range(10)
A_MAC, A_STATUS, A_MAX_VQP, A_MTU, A_NEG_FEATURES, A_MGMT_MAX_VQS, A_SUPP_FEATURES = range(10, 17)
A_FEATURES = 20


def u64(kind: int, value: int) -> bytes:
    return nla(kind, struct.pack("=Q", value))


def pad() -> bytes:
    return nla(A_PAD, b"")


def message(cmd: int, *attrs: bytes, flags: int = NLM_F_REQUEST | NLM_F_ACK, seq: int = 0, pid: int = 0,
            family: int = FAMILY) -> bytes:
    body = struct.pack("=BBH", cmd, 1, 0) + b"".join(attrs)
    return struct.pack("=IHHII", 16 + len(body), family, flags, seq, pid) + body


def done() -> bytes:
    return struct.pack("=IHHIIi", 20, NLMSG_DONE, NLM_F_MULTI, 0, 0, 0)


# --- requests --------------------------------------------------------------------------------------------------


def test_dev_new_with_every_config_attribute_matches_the_uapi_layout() -> None:
    request = proto.dev_new(
        "vdpa:0000:65:00.4",
        VdpaMgmtDev("pci", "0000:65:00.4"),
        VdpaConfig(mac="00:E8:CA:11:22:33", mtu=1500, max_vqp=4),
    )
    expected = message(
        CMD_DEV_NEW,
        strz(A_BUS, "pci"),
        strz(A_MGMTDEV, "0000:65:00.4"),
        strz(A_NAME, "vdpa:0000:65:00.4"),
        nla(A_MAC, bytes.fromhex("00e8ca112233")),
        u16(A_MTU, 1500),
        u16(A_MAX_VQP, 4),
        seq=7,
    )
    assert encode(request, family_id=FAMILY, seq=7) == expected


def test_dev_new_for_a_busless_mgmtdev_sends_no_bus_name() -> None:
    request = proto.dev_new("vdpa0", VdpaMgmtDev.parse("vdpasim_net"))
    assert encode(request, family_id=FAMILY) == message(
        CMD_DEV_NEW, strz(A_MGMTDEV, "vdpasim_net"), strz(A_NAME, "vdpa0")
    )


@pytest.mark.parametrize(
    ("config", "message_part"),
    [
        (VdpaConfig(mac="00:e8:ca:11:22"), "MAC"),
        (VdpaConfig(mac="zz:e8:ca:11:22:33"), "MAC"),
        (VdpaConfig(mtu=67), "mtu 67"),
        (VdpaConfig(mtu=65536), "mtu 65536"),
        (VdpaConfig(max_vqp=0), "max_vqp 0"),
    ],
)
def test_dev_new_rejects_values_the_kernel_policy_rejects(config: VdpaConfig, message_part: str) -> None:
    with pytest.raises(ValueError, match=message_part):
        proto.dev_new("vdpa0", VdpaMgmtDev.parse("vdpasim_net"), config)


def test_dev_del_dev_get_and_mgmtdev_get_requests() -> None:
    assert encode(proto.dev_del("vdpa0"), family_id=FAMILY) == message(CMD_DEV_DEL, strz(A_NAME, "vdpa0"))
    assert encode(proto.dev_get("vdpa0"), family_id=FAMILY) == message(CMD_DEV_GET, strz(A_NAME, "vdpa0"))
    dump = NLM_F_REQUEST | NLM_F_DUMP
    assert encode(proto.dev_get(), family_id=FAMILY, flags=dump) == message(CMD_DEV_GET, flags=dump)
    assert encode(proto.mgmtdev_get(), family_id=FAMILY, flags=dump) == message(CMD_MGMTDEV_GET, flags=dump)
    one = proto.mgmtdev_get(VdpaMgmtDev("pci", "0000:65:00.4"))
    assert encode(one, family_id=FAMILY) == message(
        CMD_MGMTDEV_GET, strz(A_BUS, "pci"), strz(A_MGMTDEV, "0000:65:00.4")
    )


def test_dev_attr_set_carries_the_name_and_the_raw_mac() -> None:
    """`vdpa dev set name vdpa:0000:65:00.4 mac 00:E8:CA:11:22:55` (iproute2 vdpa.c `cmd_dev_set`)."""
    request = proto.dev_attr_set("vdpa:0000:65:00.4", "00:E8:CA:11:22:55")
    assert encode(request, family_id=FAMILY, seq=9) == message(
        CMD_DEV_ATTR_SET,
        strz(A_NAME, "vdpa:0000:65:00.4"),
        nla(A_MAC, bytes.fromhex("00e8ca112255")),
        seq=9,
    )


@pytest.mark.parametrize("mac", ["00:e8:ca:11:22", "00:e8:ca:11:22:33:44", "00-e8-ca-11-22-33", "", "zz:0:0:0:0:0"])
def test_dev_attr_set_rejects_what_is_not_six_bytes(mac: str) -> None:
    with pytest.raises(ValueError, match="not a MAC address"):
        proto.dev_attr_set("vdpa0", mac)


def test_dev_config_get_request() -> None:
    assert encode(proto.dev_config_get("vdpa0"), family_id=FAMILY) == message(
        CMD_DEV_CONFIG_GET, strz(A_NAME, "vdpa0")
    )


def test_dev_new_round_trips_through_the_message_class() -> None:
    data = encode(proto.dev_new("vdpa0", VdpaMgmtDev("pci", "0000:65:00.4"),
                                VdpaConfig(mac="00:e8:ca:11:22:33", mtu=9000, max_vqp=32)), family_id=FAMILY)
    (msg,) = decode(proto.VdpaMsg, data)
    assert msg["cmd"] == CMD_DEV_NEW
    assert [msg.get_attr(name) for name in (
        "VDPA_ATTR_MGMTDEV_BUS_NAME", "VDPA_ATTR_MGMTDEV_DEV_NAME", "VDPA_ATTR_DEV_NAME",
        "VDPA_ATTR_DEV_NET_CFG_MACADDR", "VDPA_ATTR_DEV_NET_CFG_MTU", "VDPA_ATTR_DEV_NET_CFG_MAX_VQP",
    )] == ["pci", "0000:65:00.4", "vdpa0", "00:e8:ca:11:22:33", 9000, 32]


# --- replies ---------------------------------------------------------------------------------------------------


def dev_reply(name: str, bus: str | None, mgmtdev: str, *, vendor: int = 0x15B3, max_vqs: int = 16,
              extra: tuple[bytes, ...] = ()) -> bytes:
    """What `vdpa_dev_fill()` sends for DEV_GET: cmd DEV_NEW, the handle, then the device attributes."""
    handle = ((strz(A_BUS, bus),) if bus else ()) + (strz(A_MGMTDEV, mgmtdev),)
    return message(
        CMD_DEV_NEW, *handle, strz(A_NAME, name), u32(A_ID, 1), u32(A_VENDOR, vendor), u32(A_MAX_VQS, max_vqs),
        u16(A_MAX_VQ_SIZE, 256), u16(A_MIN_VQ_SIZE, 1), *extra, flags=NLM_F_MULTI,
    )


def test_dev_get_dump_reply_parses_into_devices() -> None:
    # a pad and an id-21 u64 (6.1's VDPA_ATTR_VDPA_DEV_SUPPORTED_FEATURES, reused by later kernels) must not
    # disturb parsing: the first is skipped, the second decodes as an unknown attribute
    data = (
        dev_reply("vdpa:0000:65:00.4", "pci", "0000:65:00.4", extra=(pad(), u64(21, 1 << 32)))
        + dev_reply("vdpa0", None, "vdpasim_net", vendor=0, max_vqs=3)
        + done()
    )
    devices = [proto.parse_device(msg) for msg in decode(proto.VdpaMsg, data)]
    assert devices == [
        VdpaDevice("vdpa:0000:65:00.4", VdpaMgmtDev("pci", "0000:65:00.4"), device_id=1, vendor_id=0x15B3,
                   max_vqs=16, max_vq_size=256),
        VdpaDevice("vdpa0", VdpaMgmtDev(None, "vdpasim_net"), device_id=1, vendor_id=0, max_vqs=3,
                   max_vq_size=256),
    ]


def test_mgmtdev_reply_with_pad_and_u64_parses() -> None:
    # vdpa_mgmtdev_fill(): handle, SUPPORTED_CLASSES via nla_put_u64_64bit (a PAD first where alignment needs
    # it), MGMTDEV_MAX_VQS, SUPPORTED_FEATURES (u64, padded too); reply cmd is MGMTDEV_NEW
    data = message(
        CMD_MGMTDEV_NEW,
        strz(A_BUS, "pci"), strz(A_MGMTDEV, "0000:65:00.4"),
        pad(), u64(A_CLASSES, 1 << 1),
        u32(A_MGMT_MAX_VQS, 257),
        pad(), u64(A_SUPP_FEATURES, 0x3_0000_0000_2D_0001),
        flags=NLM_F_MULTI,
    ) + done()
    (msg,) = decode(proto.VdpaMsg, data)
    assert msg["cmd"] == CMD_MGMTDEV_NEW
    assert msg.get_attr("VDPA_ATTR_DEV_SUPPORTED_FEATURES") == 0x3_0000_0000_2D_0001
    assert proto.parse_mgmtdev(msg) == VdpaMgmtDev("pci", "0000:65:00.4", supported_classes=2, max_vqs=257)


def test_config_reply_types_net_status_as_u16_and_features_as_u64() -> None:
    data = message(
        CMD_DEV_CONFIG_GET,
        strz(A_NAME, "vdpa0"), u32(A_ID, 1), pad(), u64(A_NEG_FEATURES, 0x1_0003_0028),
        u16(A_STATUS, 1), pad(), u64(A_FEATURES, 0x1_0003_0028), u16(A_MTU, 1400),
        nla(A_MAC, bytes.fromhex("00e8ca112233")), u16(A_MAX_VQP, 1),
    )
    (msg,) = decode(proto.VdpaMsg, data)
    assert msg.get_attr("VDPA_ATTR_DEV_NET_STATUS") == 1
    assert msg.get_attr("VDPA_ATTR_DEV_FEATURES") == 0x1_0003_0028
    assert msg.get_attr("VDPA_ATTR_DEV_NET_CFG_MTU") == 1400
    assert msg.get_attr("VDPA_ATTR_DEV_NET_CFG_MACADDR") == "00:e8:ca:11:22:33"
    # and the table encodes the same widths (a u8 NET_STATUS would decode 1 the same way, but not encode)
    again = proto.VdpaMsg()
    again["cmd"] = CMD_DEV_CONFIG_GET
    again["attrs"] = [(name, value) for name, value in msg["attrs"] if name != "VDPA_ATTR_PAD"]
    assert encode(again, family_id=FAMILY) == message(
        CMD_DEV_CONFIG_GET,
        strz(A_NAME, "vdpa0"), u32(A_ID, 1), u64(A_NEG_FEATURES, 0x1_0003_0028),
        u16(A_STATUS, 1), u64(A_FEATURES, 0x1_0003_0028), u16(A_MTU, 1400),
        nla(A_MAC, bytes.fromhex("00e8ca112233")), u16(A_MAX_VQP, 1),
    )


F_MAC, F_MTU, F_STATUS, F_CTRL_VQ, F_MQ, F_VERSION_1 = 1 << 5, 1 << 3, 1 << 16, 1 << 17, 1 << 22, 1 << 32


def config_reply(*attrs: bytes, negotiated: int | None = None) -> bytes:
    """What `vdpa_dev_config_fill()` sends: name, id, NEGOTIATED_FEATURES once FEATURES_OK, then the net part."""
    head = (strz(A_NAME, "vdpa0"), u32(A_ID, 1))
    if negotiated is not None:
        head += (pad(), u64(A_NEG_FEATURES, negotiated))
    return message(CMD_DEV_CONFIG_GET, *head, *attrs)


def test_config_reply_of_a_device_with_every_net_field_parses() -> None:
    features = F_VERSION_1 | F_MAC | F_MTU | F_STATUS | F_CTRL_VQ | F_MQ
    data = config_reply(
        u16(A_STATUS, 1), pad(), u64(A_FEATURES, features), u16(A_MTU, 9000),
        nla(A_MAC, bytes.fromhex("00E8CA112233")), u16(A_MAX_VQP, 4), negotiated=features,
    )
    (msg,) = decode(proto.VdpaMsg, data)
    assert proto.parse_net_config(msg) == VdpaNetConfig(mac="00:e8:ca:11:22:33", mtu=9000, max_vqp=4, link_up=True)


def test_config_reply_of_6_1_for_vdpa_sim_net_parses() -> None:
    """What the kernel bed's 6.1 sends for vdpa_sim_net: device features as id 21 (6.1's
    VDPA_ATTR_VDPA_DEV_SUPPORTED_FEATURES), a status without F_STATUS, no MAX_VQP (no MQ)."""
    features = F_VERSION_1 | F_MAC | F_MTU | F_CTRL_VQ
    data = config_reply(u16(A_STATUS, 1), pad(), u64(21, features), u16(A_MTU, 1400),
                        nla(A_MAC, bytes.fromhex("00e8ca112244")), negotiated=features)
    (msg,) = decode(proto.VdpaMsg, data)
    assert proto.parse_net_config(msg) == VdpaNetConfig(mac="00:e8:ca:11:22:44", mtu=1400, link_up=True)


def test_config_reply_without_net_fields_leaves_them_none() -> None:
    (msg,) = decode(proto.VdpaMsg, config_reply(u16(A_STATUS, 0)))
    assert proto.parse_net_config(msg) == VdpaNetConfig(link_up=False)
    (msg,) = decode(proto.VdpaMsg, config_reply())
    assert proto.parse_net_config(msg) == VdpaNetConfig()


def test_reply_without_device_name_is_a_decode_error() -> None:
    (msg,) = decode(proto.VdpaMsg, message(CMD_DEV_NEW, strz(A_MGMTDEV, "vdpasim_net")))
    with pytest.raises(ValueError, match="DEV_NAME"):
        proto.parse_device(msg)


def test_ids_match_the_installed_uapi_header() -> None:
    header = Path("/usr/include/linux/vdpa.h")
    if not header.exists():
        pytest.skip("no /usr/include/linux/vdpa.h (install linux-libc-dev) to compare the ids with")
    text = header.read_text()
    commands, attrs = uapi_enum(text, "vdpa_command"), uapi_enum(text, "vdpa_attr")
    ours = {name: getattr(proto, name) for name in dir(proto) if name.startswith(("VDPA_CMD_", "VDPA_ATTR_"))}
    checked = {name: value for name, value in ours.items() if name in commands or name in attrs}
    assert checked == {name: {**commands, **attrs}[name] for name in checked}
    # everything the header of this machine defines up to id 20 is mapped, with the same id
    assert {v for k, v in attrs.items() if v <= 20} == {entry[0] for entry in proto.VdpaMsg.nla_map}
    # every kernel-named constant is checked, except the one newer than the header (6.12's DEV_ATTR_SET)
    assert {name for name in ours if name not in checked} <= {"VDPA_CMD_DEV_ATTR_SET"}


# --- the adapter against a scripted socket ---------------------------------------------------------------------


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[ScriptedSocket]]:
    yield from scripted_socket(monkeypatch, proto, "VdpaSocket", FAMILY)


@pytest.fixture
def vdpa(tmp_path: Path) -> GenlVdpa:
    return GenlVdpa(Sysfs(tmp_path), dev_root=tmp_path / "dev")


VF = VdpaMgmtDev("pci", "0000:65:00.4")
NAME = "vdpa:0000:65:00.4"


def test_create_reads_the_device_back(scripted: type[ScriptedSocket], vdpa: GenlVdpa) -> None:
    scripted.script = [b"", dev_reply(NAME, "pci", "0000:65:00.4")]
    device = vdpa.create(NAME, VF, VdpaConfig(max_vqp=32))
    assert device.name == NAME and device.mgmtdev == VF and device.max_vqs == 16
    (new, _), (get, _) = scripted.requests
    assert new == message(CMD_DEV_NEW, strz(A_BUS, "pci"), strz(A_MGMTDEV, "0000:65:00.4"), strz(A_NAME, NAME),
                          u16(A_MAX_VQP, 32))
    assert get == message(CMD_DEV_GET, strz(A_NAME, NAME))


def test_create_retries_once_without_config_on_eopnotsupp(
    scripted: type[ScriptedSocket], vdpa: GenlVdpa, caplog: pytest.LogCaptureFixture
) -> None:
    scripted.script = [
        GenlCommandError(errno.EOPNOTSUPP, "All provided attributes are not supported"),
        b"",
        dev_reply(NAME, "pci", "0000:65:00.4"),
    ]
    with caplog.at_level(logging.WARNING):
        vdpa.create(NAME, VF, VdpaConfig(mac="00:e8:ca:11:22:33", max_vqp=32))
    first, retry = scripted.requests[0][0], scripted.requests[1][0]
    assert first != retry
    assert retry == message(CMD_DEV_NEW, strz(A_BUS, "pci"), strz(A_MGMTDEV, "0000:65:00.4"), strz(A_NAME, NAME))
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "mac, max_vqp" in warning.getMessage() and NAME in warning.getMessage()


def test_create_raises_the_retry_error_when_the_retry_fails(scripted: type[ScriptedSocket], vdpa: GenlVdpa) -> None:
    scripted.script = [
        GenlCommandError(errno.EOPNOTSUPP, "All provided attributes are not supported"),
        GenlCommandError(errno.ENOSPC),
    ]
    with pytest.raises(NoSpace) as raised:
        vdpa.create(NAME, VF, VdpaConfig(max_vqp=32))
    assert raised.value.errno == errno.ENOSPC
    assert str(raised.value).startswith(f"create vdpa device {NAME} on pci/0000:65:00.4 failed: ENOSPC")


def test_create_without_config_does_not_retry_eopnotsupp(scripted: type[ScriptedSocket], vdpa: GenlVdpa) -> None:
    scripted.script = [GenlCommandError(errno.EOPNOTSUPP, "not a net device")]
    with pytest.raises(NotSupported, match="not a net device"):
        vdpa.create(NAME, VF)


def test_create_duplicate_is_already_exists_with_the_extack(scripted: type[ScriptedSocket], vdpa: GenlVdpa) -> None:
    scripted.script = [GenlCommandError(errno.EEXIST, "device name already in use")]
    with pytest.raises(AlreadyExists) as raised:
        vdpa.create(NAME, VF)
    assert raised.value.detail == "device name already in use"
    assert raised.value.op == "create vdpa device" and raised.value.target == f"{NAME} on pci/0000:65:00.4"


def test_create_with_a_bad_mac_never_reaches_the_kernel(scripted: type[ScriptedSocket], vdpa: GenlVdpa) -> None:
    with pytest.raises(InvalidArgument, match="not a MAC address"):
        vdpa.create(NAME, VF, VdpaConfig(mac="not-a-mac"))
    assert scripted.requests == []


def test_delete_of_a_missing_device_is_nothing_to_do_unless_asked(
    scripted: type[ScriptedSocket], vdpa: GenlVdpa
) -> None:
    scripted.script = [GenlCommandError(errno.ENODEV, "device not found"), GenlCommandError(errno.ENODEV)]
    vdpa.delete(NAME)
    with pytest.raises(DeviceNotFound, match=re.escape(f"delete vdpa device {NAME} failed: ENODEV")):
        vdpa.delete(NAME, missing_ok=False)


def test_get_of_a_missing_device_is_none(scripted: type[ScriptedSocket], vdpa: GenlVdpa) -> None:
    scripted.script = [GenlCommandError(errno.ENODEV, "device not found")]
    assert vdpa.get(NAME) is None


def test_devices_and_mgmtdevs_are_sorted(scripted: type[ScriptedSocket], vdpa: GenlVdpa) -> None:
    scripted.script = [
        dev_reply("vdpa1", None, "vdpasim_net") + dev_reply("vdpa0", None, "vdpasim_net") + done(),
        message(CMD_MGMTDEV_NEW, strz(A_MGMTDEV, "vdpasim_net"), flags=NLM_F_MULTI)
        + message(CMD_MGMTDEV_NEW, strz(A_BUS, "pci"), strz(A_MGMTDEV, "0000:65:00.4"), flags=NLM_F_MULTI)
        + done(),
    ]
    assert [device.name for device in vdpa.devices()] == ["vdpa0", "vdpa1"]
    assert [str(m) for m in vdpa.mgmtdevs()] == ["pci/0000:65:00.4", "vdpasim_net"]
    assert [dump for _, dump in scripted.requests] == [True, True]


def test_set_mac_sends_attr_set(scripted: type[ScriptedSocket], vdpa: GenlVdpa) -> None:
    scripted.script = [b""]
    vdpa.set_mac(NAME, "00:E8:CA:11:22:55")
    assert scripted.requests == [(message(CMD_DEV_ATTR_SET, strz(A_NAME, NAME),
                                          nla(A_MAC, bytes.fromhex("00e8ca112255"))), False)]


def test_set_mac_on_a_kernel_without_attr_set_is_not_supported(scripted: type[ScriptedSocket], vdpa: GenlVdpa) -> None:
    scripted.script = [GenlCommandError(errno.EOPNOTSUPP)]  # genl's answer to an unknown command: no extack
    with pytest.raises(NotSupported) as raised:
        vdpa.set_mac(NAME, "00:e8:ca:11:22:55")
    assert (raised.value.op, raised.value.target) == ("set mac 00:e8:ca:11:22:55 on vdpa device", NAME)
    assert "administrative MAC" in raised.value.hint


def test_set_mac_of_a_missing_device_is_device_not_found(scripted: type[ScriptedSocket], vdpa: GenlVdpa) -> None:
    scripted.script = [GenlCommandError(errno.ENODEV, "device not found")]
    with pytest.raises(DeviceNotFound, match="device not found"):
        vdpa.set_mac(NAME, "00:e8:ca:11:22:55")


def test_set_mac_with_a_bad_mac_never_reaches_the_kernel(scripted: type[ScriptedSocket], vdpa: GenlVdpa) -> None:
    with pytest.raises(InvalidArgument, match="not a MAC address"):
        vdpa.set_mac(NAME, "00:e8:ca:11:22")
    assert scripted.requests == []


def test_net_config_reads_dev_config_get(scripted: type[ScriptedSocket], vdpa: GenlVdpa) -> None:
    scripted.script = [config_reply(u16(A_MTU, 1500), nla(A_MAC, bytes.fromhex("00e8ca112233")))]
    assert vdpa.net_config(NAME) == VdpaNetConfig(mac="00:e8:ca:11:22:33", mtu=1500)
    assert scripted.requests == [(message(CMD_DEV_CONFIG_GET, strz(A_NAME, NAME)), False)]


def test_net_config_of_a_missing_device_is_device_not_found(scripted: type[ScriptedSocket], vdpa: GenlVdpa) -> None:
    scripted.script = [GenlCommandError(errno.ENODEV, "device not found"), b""]
    with pytest.raises(DeviceNotFound, match="device not found"):
        vdpa.net_config(NAME)
    with pytest.raises(DeviceNotFound, match="no reply"):
        vdpa.net_config(NAME)


# --- this host: no vdpa family ---------------------------------------------------------------------------------


no_vdpa_family = pytest.mark.skipif(family_registered(proto.VdpaSocket),
                                    reason="the vdpa family is registered on this host")


@no_vdpa_family
def test_without_the_family_lists_are_empty_and_delete_has_nothing_to_do(vdpa: GenlVdpa) -> None:
    assert vdpa.devices() == []
    assert vdpa.mgmtdevs() == []
    assert vdpa.get(NAME) is None
    vdpa.delete(NAME)


@no_vdpa_family
def test_without_the_family_create_names_the_module(vdpa: GenlVdpa) -> None:
    with pytest.raises(KernelModuleMissing) as raised:
        vdpa.create(NAME, VF, VdpaConfig(max_vqp=32))
    assert "modprobe vdpa" in str(raised.value)
    with pytest.raises(KernelModuleMissing):
        vdpa.delete(NAME, missing_ok=False)
    with pytest.raises(KernelModuleMissing):
        vdpa.set_mac(NAME, "00:e8:ca:11:22:55")
    with pytest.raises(KernelModuleMissing):
        vdpa.net_config(NAME)
