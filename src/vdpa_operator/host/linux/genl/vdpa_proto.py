"""The kernel's `vdpa` generic netlink family on the wire: constants, message class, requests, reply parsing.

Followed: `include/uapi/linux/vdpa.h` of Linux 6.1 (Debian bookworm `linux-libc-dev` 6.1.x), plus the kernel's
own encoding in `drivers/vdpa/vdpa.c` where the header comments disagree with it (research/dataplane.md §1).
Kernel names (`VDPA_CMD_*`, `VDPA_ATTR_*`) live in this module only; the adapter (`host.linux.vdpa`) works with
the builders and parsers below and with `host.types` values.

Family `"vdpa"`, version 1, id assigned at registration (resolved through nlctrl). The family is registered by
module `vdpa` and has `netnsok = false`: it is invisible outside the initial network namespace.

Commands (`enum vdpa_command`)::

    1 MGMTDEV_NEW    only the cmd of MGMTDEV_GET replies          5 DEV_GET         do(DEV_NAME) / dump;
    2 MGMTDEV_GET    do / dump                                                      replies carry cmd 3
    3 DEV_NEW        do: DEV_NAME, [MGMTDEV_BUS_NAME], MGMTDEV_   6 DEV_CONFIG_GET  do / dump
                     DEV_NAME, [MACADDR, MTU, MAX_VQP, FEATURES]  7 DEV_VSTATS_GET  do (admin)
    4 DEV_DEL        do: DEV_NAME                                 8 DEV_ATTR_SET    do (≈6.12+)

Attributes (`enum vdpa_attr`); ids 1–20 are stable across kernels, 21+ differ (6.1 has
VDPA_ATTR_VDPA_DEV_SUPPORTED_FEATURES = 21, later kernels reuse 21+ for block config), so only 0–20 are mapped
and anything above decodes as an unknown attribute::

     0 PAD (= UNSPEC)   emitted before u64s by nla_put_u64_64bit(); skipped
     1 MGMTDEV_BUS_NAME  string  ("pci"; absent for bus-less mgmtdevs such as vdpasim_net)
     2 MGMTDEV_DEV_NAME  string  ("0000:65:00.4", "vdpasim_net")
     3 MGMTDEV_SUPPORTED_CLASSES u64 (bit 1 = net)
     4 DEV_NAME string   5 DEV_ID u32   6 DEV_VENDOR_ID u32   7 DEV_MAX_VQS u32
     8 DEV_MAX_VQ_SIZE u16               9 DEV_MIN_VQ_SIZE u16
    10 DEV_NET_CFG_MACADDR 6 bytes
    11 DEV_NET_STATUS  u16 on the wire (the header comment says u8; the kernel calls nla_put_u16)
    12 DEV_NET_CFG_MAX_VQP u16           13 DEV_NET_CFG_MTU u16
    14 DEV_NEGOTIATED_FEATURES u64       15 DEV_MGMTDEV_MAX_VQS u32   16 DEV_SUPPORTED_FEATURES u64
    17 DEV_QUEUE_INDEX u32  18 DEV_VENDOR_ATTR_NAME string  19 DEV_VENDOR_ATTR_VALUE u64  20 DEV_FEATURES u64

DEV_ATTR_SET (`vdpa dev set name vdpa0 mac …`) carries DEV_NAME and DEV_NET_CFG_MACADDR; a kernel without the
command (before ≈6.12) answers EOPNOTSUPP, as genl does for every unknown command, before looking at anything.
DEV_CONFIG_GET (do: DEV_NAME) replies with cmd 6: DEV_NAME, DEV_ID, [PAD, NEGOTIATED_FEATURES once a driver set
FEATURES_OK], then for net devices STATUS (u16), the device features (6.1: id 21, later: PAD + FEATURES), MTU
(with F_MTU), MACADDR (with F_MAC), MAX_VQP (with F_MQ or F_RSS). What 6.1 answers for vdpa_sim_net (seen in the
kernel bed): NAME, ID, NEGOTIATED_FEATURES, STATUS 1, 21, MTU, MACADDR. Which fields depend on features has
changed over releases, so the parser takes each as optional.

A DEV_NEW request for `vdpa dev add name vdpa:0000:65:00.4 mgmtdev pci/0000:65:00.4 mac … mtu 1500 max_vqp 4`
carries, in iproute2's order: MGMTDEV_BUS_NAME, MGMTDEV_DEV_NAME, DEV_NAME, DEV_NET_CFG_MACADDR,
DEV_NET_CFG_MTU, DEV_NET_CFG_MAX_VQP. A DEV_GET reply carries MGMTDEV_BUS_NAME (if any), MGMTDEV_DEV_NAME,
DEV_NAME, DEV_ID, DEV_VENDOR_ID, DEV_MAX_VQS, DEV_MAX_VQ_SIZE, DEV_MIN_VQ_SIZE; a MGMTDEV_GET reply carries the
handle, SUPPORTED_CLASSES (u64, maybe after a PAD), DEV_MGMTDEV_MAX_VQS and DEV_SUPPORTED_FEATURES.
"""

from __future__ import annotations

import re
from typing import Any

from pyroute2.netlink import genlmsg  # type: ignore[import-untyped]

from vdpa_operator.host.linux.genl import GenlSocket, message
from vdpa_operator.host.types import VdpaConfig, VdpaDevice, VdpaMgmtDev, VdpaNetConfig

VDPA_GENL_NAME = "vdpa"
VDPA_GENL_VERSION = 1

VDPA_CMD_UNSPEC = 0
VDPA_CMD_MGMTDEV_NEW = 1
VDPA_CMD_MGMTDEV_GET = 2
VDPA_CMD_DEV_NEW = 3
VDPA_CMD_DEV_DEL = 4
VDPA_CMD_DEV_GET = 5
VDPA_CMD_DEV_CONFIG_GET = 6
VDPA_CMD_DEV_VSTATS_GET = 7
VDPA_CMD_DEV_ATTR_SET = 8

VDPA_ATTR_UNSPEC = 0
VDPA_ATTR_PAD = VDPA_ATTR_UNSPEC
VDPA_ATTR_MGMTDEV_BUS_NAME = 1
VDPA_ATTR_MGMTDEV_DEV_NAME = 2
VDPA_ATTR_MGMTDEV_SUPPORTED_CLASSES = 3
VDPA_ATTR_DEV_NAME = 4
VDPA_ATTR_DEV_ID = 5
VDPA_ATTR_DEV_VENDOR_ID = 6
VDPA_ATTR_DEV_MAX_VQS = 7
VDPA_ATTR_DEV_MAX_VQ_SIZE = 8
VDPA_ATTR_DEV_MIN_VQ_SIZE = 9
VDPA_ATTR_DEV_NET_CFG_MACADDR = 10
VDPA_ATTR_DEV_NET_STATUS = 11
VDPA_ATTR_DEV_NET_CFG_MAX_VQP = 12
VDPA_ATTR_DEV_NET_CFG_MTU = 13
VDPA_ATTR_DEV_NEGOTIATED_FEATURES = 14
VDPA_ATTR_DEV_MGMTDEV_MAX_VQS = 15
VDPA_ATTR_DEV_SUPPORTED_FEATURES = 16
VDPA_ATTR_DEV_QUEUE_INDEX = 17
VDPA_ATTR_DEV_VENDOR_ATTR_NAME = 18
VDPA_ATTR_DEV_VENDOR_ATTR_VALUE = 19
VDPA_ATTR_DEV_FEATURES = 20

NO_CONFIG = VdpaConfig()
"""DEV_NEW without config attributes: the kernel's defaults."""

VIRTIO_NET_S_LINK_UP = 1
"""Bit 0 of the config space's status field (include/uapi/linux/virtio_net.h)."""

_MAC_RE = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}")


class VdpaMsg(genlmsg):  # type: ignore[misc]
    """One vdpa genl message; attribute ids are explicit so the table reads like the uapi enum."""

    prefix = "VDPA_ATTR_"
    nla_map = (
        (VDPA_ATTR_PAD, "VDPA_ATTR_PAD", "none"),
        (VDPA_ATTR_MGMTDEV_BUS_NAME, "VDPA_ATTR_MGMTDEV_BUS_NAME", "asciiz"),
        (VDPA_ATTR_MGMTDEV_DEV_NAME, "VDPA_ATTR_MGMTDEV_DEV_NAME", "asciiz"),
        (VDPA_ATTR_MGMTDEV_SUPPORTED_CLASSES, "VDPA_ATTR_MGMTDEV_SUPPORTED_CLASSES", "uint64"),
        (VDPA_ATTR_DEV_NAME, "VDPA_ATTR_DEV_NAME", "asciiz"),
        (VDPA_ATTR_DEV_ID, "VDPA_ATTR_DEV_ID", "uint32"),
        (VDPA_ATTR_DEV_VENDOR_ID, "VDPA_ATTR_DEV_VENDOR_ID", "uint32"),
        (VDPA_ATTR_DEV_MAX_VQS, "VDPA_ATTR_DEV_MAX_VQS", "uint32"),
        (VDPA_ATTR_DEV_MAX_VQ_SIZE, "VDPA_ATTR_DEV_MAX_VQ_SIZE", "uint16"),
        (VDPA_ATTR_DEV_MIN_VQ_SIZE, "VDPA_ATTR_DEV_MIN_VQ_SIZE", "uint16"),
        (VDPA_ATTR_DEV_NET_CFG_MACADDR, "VDPA_ATTR_DEV_NET_CFG_MACADDR", "l2addr"),
        (VDPA_ATTR_DEV_NET_STATUS, "VDPA_ATTR_DEV_NET_STATUS", "uint16"),
        (VDPA_ATTR_DEV_NET_CFG_MAX_VQP, "VDPA_ATTR_DEV_NET_CFG_MAX_VQP", "uint16"),
        (VDPA_ATTR_DEV_NET_CFG_MTU, "VDPA_ATTR_DEV_NET_CFG_MTU", "uint16"),
        (VDPA_ATTR_DEV_NEGOTIATED_FEATURES, "VDPA_ATTR_DEV_NEGOTIATED_FEATURES", "uint64"),
        (VDPA_ATTR_DEV_MGMTDEV_MAX_VQS, "VDPA_ATTR_DEV_MGMTDEV_MAX_VQS", "uint32"),
        (VDPA_ATTR_DEV_SUPPORTED_FEATURES, "VDPA_ATTR_DEV_SUPPORTED_FEATURES", "uint64"),
        (VDPA_ATTR_DEV_QUEUE_INDEX, "VDPA_ATTR_DEV_QUEUE_INDEX", "uint32"),
        (VDPA_ATTR_DEV_VENDOR_ATTR_NAME, "VDPA_ATTR_DEV_VENDOR_ATTR_NAME", "asciiz"),
        (VDPA_ATTR_DEV_VENDOR_ATTR_VALUE, "VDPA_ATTR_DEV_VENDOR_ATTR_VALUE", "uint64"),
        (VDPA_ATTR_DEV_FEATURES, "VDPA_ATTR_DEV_FEATURES", "uint64"),
    )


class VdpaSocket(GenlSocket):
    """A socket bound to family "vdpa"; FamilyNotFound when module `vdpa` is not loaded (or not in init netns)."""

    family = VDPA_GENL_NAME
    message_class = VdpaMsg
    version = VDPA_GENL_VERSION


def _msg(cmd: int, attrs: list[tuple[str, Any]]) -> VdpaMsg:
    return message(VdpaMsg, cmd, attrs, VDPA_GENL_VERSION)


def _handle_attrs(mgmtdev: VdpaMgmtDev) -> list[tuple[str, Any]]:
    attrs: list[tuple[str, Any]] = []
    if mgmtdev.bus:
        attrs.append(("VDPA_ATTR_MGMTDEV_BUS_NAME", mgmtdev.bus))
    attrs.append(("VDPA_ATTR_MGMTDEV_DEV_NAME", mgmtdev.name))
    return attrs


def check_mac(mac: str) -> str:
    """The MAC as the attribute carries it (6 bytes, written lower-case colon form); ValueError for anything
    else, which the kernel's policy (NLA_POLICY_ETH_ADDR) would reject."""
    if not _MAC_RE.fullmatch(mac):
        raise ValueError(f"{mac!r} is not a MAC address (expected xx:xx:xx:xx:xx:xx)")
    return mac.lower()


def dev_new(name: str, mgmtdev: VdpaMgmtDev, config: VdpaConfig = NO_CONFIG) -> VdpaMsg:
    """VDPA_CMD_DEV_NEW. ValueError for a config the kernel's policy would reject before any driver sees it
    (malformed MAC, MTU < 68 or > 65535, max_vqp outside 1..65535)."""
    attrs = [*_handle_attrs(mgmtdev), ("VDPA_ATTR_DEV_NAME", name)]
    if config.mac is not None:
        attrs.append(("VDPA_ATTR_DEV_NET_CFG_MACADDR", check_mac(config.mac)))
    if config.mtu is not None:
        if not 68 <= config.mtu <= 0xFFFF:
            raise ValueError(f"mtu {config.mtu} is out of range (68..65535)")
        attrs.append(("VDPA_ATTR_DEV_NET_CFG_MTU", config.mtu))
    if config.max_vqp is not None:
        if not 1 <= config.max_vqp <= 0xFFFF:
            raise ValueError(f"max_vqp {config.max_vqp} is out of range (1..65535)")
        attrs.append(("VDPA_ATTR_DEV_NET_CFG_MAX_VQP", config.max_vqp))
    return _msg(VDPA_CMD_DEV_NEW, attrs)


def dev_attr_set(name: str, mac: str) -> VdpaMsg:
    """VDPA_CMD_DEV_ATTR_SET with a new MAC (the only attribute the command takes); ValueError for a bad MAC."""
    attrs = [("VDPA_ATTR_DEV_NAME", name), ("VDPA_ATTR_DEV_NET_CFG_MACADDR", check_mac(mac))]
    return _msg(VDPA_CMD_DEV_ATTR_SET, attrs)


def dev_config_get(name: str) -> VdpaMsg:
    """VDPA_CMD_DEV_CONFIG_GET for one device (do)."""
    return _msg(VDPA_CMD_DEV_CONFIG_GET, [("VDPA_ATTR_DEV_NAME", name)])


def dev_del(name: str) -> VdpaMsg:
    return _msg(VDPA_CMD_DEV_DEL, [("VDPA_ATTR_DEV_NAME", name)])


def dev_get(name: str | None = None) -> VdpaMsg:
    """DEV_GET for one device (do), or for all of them (send with dump=True and no name)."""
    return _msg(VDPA_CMD_DEV_GET, [] if name is None else [("VDPA_ATTR_DEV_NAME", name)])


def mgmtdev_get(mgmtdev: VdpaMgmtDev | None = None) -> VdpaMsg:
    """MGMTDEV_GET for one management device (do), or for all (dump, no handle)."""
    return _msg(VDPA_CMD_MGMTDEV_GET, [] if mgmtdev is None else _handle_attrs(mgmtdev))


def _int(msg: Any, name: str) -> int:
    value = msg.get_attr(name)
    return int(value) if value is not None else 0


def _mgmtdev_of(msg: Any) -> VdpaMgmtDev:
    name = msg.get_attr("VDPA_ATTR_MGMTDEV_DEV_NAME")
    if name is None:
        raise ValueError("vdpa reply without VDPA_ATTR_MGMTDEV_DEV_NAME")
    return VdpaMgmtDev(bus=msg.get_attr("VDPA_ATTR_MGMTDEV_BUS_NAME") or None, name=str(name))


def parse_device(msg: Any) -> VdpaDevice:
    """A DEV_GET reply (cmd DEV_NEW) → VdpaDevice."""
    name = msg.get_attr("VDPA_ATTR_DEV_NAME")
    if name is None:
        raise ValueError("vdpa device reply without VDPA_ATTR_DEV_NAME")
    return VdpaDevice(
        name=str(name),
        mgmtdev=_mgmtdev_of(msg),
        device_id=_int(msg, "VDPA_ATTR_DEV_ID"),
        vendor_id=_int(msg, "VDPA_ATTR_DEV_VENDOR_ID"),
        max_vqs=_int(msg, "VDPA_ATTR_DEV_MAX_VQS"),
        max_vq_size=_int(msg, "VDPA_ATTR_DEV_MAX_VQ_SIZE"),
    )


def parse_mgmtdev(msg: Any) -> VdpaMgmtDev:
    """A MGMTDEV_GET reply (cmd MGMTDEV_NEW) → VdpaMgmtDev."""
    handle = _mgmtdev_of(msg)
    return VdpaMgmtDev(
        bus=handle.bus,
        name=handle.name,
        supported_classes=_int(msg, "VDPA_ATTR_MGMTDEV_SUPPORTED_CLASSES"),
        max_vqs=_int(msg, "VDPA_ATTR_DEV_MGMTDEV_MAX_VQS"),
    )


def parse_net_config(msg: Any) -> VdpaNetConfig:
    """A DEV_CONFIG_GET reply of a net device → VdpaNetConfig, as the kernel wrote it: each field None when its
    attribute is absent. 6.1 sends the status even without VIRTIO_NET_F_STATUS (vdpa_sim_net: 1, link up, as
    the virtio spec assumes then); which fields a kernel gates on the device's features is the kernel's call."""
    if msg.get_attr("VDPA_ATTR_DEV_NAME") is None:
        raise ValueError("vdpa config reply without VDPA_ATTR_DEV_NAME")
    mac = msg.get_attr("VDPA_ATTR_DEV_NET_CFG_MACADDR")
    mtu = msg.get_attr("VDPA_ATTR_DEV_NET_CFG_MTU")
    max_vqp = msg.get_attr("VDPA_ATTR_DEV_NET_CFG_MAX_VQP")
    status = msg.get_attr("VDPA_ATTR_DEV_NET_STATUS")
    return VdpaNetConfig(
        mac=str(mac).lower() if mac is not None else None,
        mtu=int(mtu) if mtu is not None else None,
        max_vqp=int(max_vqp) if max_vqp is not None else None,
        link_up=bool(int(status) & VIRTIO_NET_S_LINK_UP) if status is not None else None,
    )
