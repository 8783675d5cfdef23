"""`ethtool -i` and `ethtool -k/-K` through the SIOCETHTOOL ioctl.

Why the ioctl: the kernel's ethtool netlink API has no driver-info command, and pyroute2's ethtool module
does not cover it either (research/ecosystem.md §2.3); features go the same way so one small module covers
both. No shelling out to the ethtool CLI.

Wire layout (include/uapi/linux/ethtool.h, stable since 2.6.39):
- `struct ifreq` (40 bytes): `ifr_name[16]` then `ifr_data`, a pointer to the command buffer;
- ETHTOOL_GDRVINFO (0x03): `struct ethtool_drvinfo`, cmd + driver[32] version[32] fw_version[32]
  bus_info[32] erom_version[32] reserved2[12] + five u32 counts = 196 bytes;
- ETHTOOL_GSSET_INFO (0x37): `struct ethtool_sset_info` {u32 cmd, u32 reserved, u64 sset_mask, u32 data[]};
  asking for ETH_SS_FEATURES (4) returns the number of feature strings (NETDEV_FEATURE_COUNT);
- ETHTOOL_GSTRINGS (0x1b): `struct ethtool_gstrings` {u32 cmd, string_set, len; u8 data[len * 32]};
- ETHTOOL_GFEATURES (0x3a): {u32 cmd, u32 size; blocks of u32 available, requested, active, never_changed};
- ETHTOOL_SFEATURES (0x3b): {u32 cmd, u32 size; blocks of u32 valid, requested}; `size` must equal the
  kernel's word count, and the ioctl returns ETHTOOL_F_* flags (1 unsupported, 2 wish, 4 compat).

A netns other than None: the socket is created inside that netns by a short-lived thread that enters it with
libc `setns(fd, CLONE_NEWNET)` and leaves again; the ioctl then runs on that socket from the caller's thread
(SIOCETHTOOL resolves the device in the socket's netns, not the thread's). setns changes only the calling
thread, so no other thread ever runs in the wrong netns. pyroute2's `pushns`/`popns` are not used: they keep a
process-global stack and save `/proc/self/ns/net`, which is the main thread's netns, not the caller's.
Python 3.11 has no `os.setns`.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import logging
import socket
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from vdpa_operator.host.errors import (
    InvalidArgument,
    NotSupported,
    error_from_os_error,
    netdev_target,
)
from vdpa_operator.host.linux.netns import socket_in_netns
from vdpa_operator.host.types import DriverInfo, Netns

logger = logging.getLogger(__name__)

SIOCETHTOOL = 0x8946
ETHTOOL_GDRVINFO = 0x03
ETHTOOL_GSTRINGS = 0x1B
ETHTOOL_GSSET_INFO = 0x37
ETHTOOL_GFEATURES = 0x3A
ETHTOOL_SFEATURES = 0x3B
ETH_SS_FEATURES = 4
ETH_GSTRING_LEN = 32
ETHTOOL_F_UNSUPPORTED = 1 << 0
ETHTOOL_F_WISH = 1 << 1
CLONE_NEWNET = 0x40000000
IFNAMSIZ = 16
IFREQ_SIZE = 40

DRVINFO_FORMAT = "=I32s32s32s32s32s12s5I"

LEGACY_FEATURE_NAMES = {
    "rx-checksumming": "rx-checksum",
    "generic-segmentation-offload": "tx-generic-segmentation",
    "generic-receive-offload": "rx-gro",
    "large-receive-offload": "rx-lro",
    "rx-vlan-offload": "rx-vlan-hw-parse",
    "tx-vlan-offload": "tx-vlan-hw-insert",
    "ntuple-filters": "rx-ntuple-filter",
    "receive-hashing": "rx-hashing",
}
"""`ethtool -k` prints some single-bit features under their pre-2.6.39 names. The multi-bit ones
(`tx-checksumming`, `scatter-gather`, `tcp-segmentation-offload`) are not features of their own and are not
accepted; use the kernel's names (`tx-checksum-ipv4`, …)."""


@dataclass(frozen=True, slots=True)
class _FeatureState:
    available: bool
    active: bool
    never_changed: bool


class IoctlEthtool:
    """The `Ethtool` port. `netns` is accepted by every method (the port's `feature`/`set_feature` omit it)."""

    def driver_info(self, name: str, netns: Netns = None) -> DriverInfo:
        op = "get driver info (ethtool -i) of"
        buf = ctypes.create_string_buffer(struct.pack(DRVINFO_FORMAT, ETHTOOL_GDRVINFO, *([b""] * 6), *([0] * 5)))
        with _socket(netns, op, name) as sock:
            _ioctl(sock, name, buf, op, netns)
        fields = struct.unpack(DRVINFO_FORMAT, buf.raw[: struct.calcsize(DRVINFO_FORMAT)])
        driver, version, firmware, bus_info = (_cstr(f) for f in fields[1:5])
        return DriverInfo(driver=driver, version=version, firmware_version=firmware, bus_info=bus_info)

    def feature(self, name: str, feature: str, netns: Netns = None) -> bool | None:
        """The feature's `active` bit, as `ethtool -k` prints on/off; None when the kernel has no feature of
        that name."""
        op = f"read feature {feature} of"
        with _socket(netns, op, name) as sock:
            bit = _feature_bit(_feature_names(sock, name, op, netns), feature)
            if bit is None:
                return None
            return _feature_state(sock, name, bit, op, netns).active

    def set_feature(self, name: str, feature: str, enabled: bool, netns: Netns = None) -> None:
        """`ethtool -K <name> <feature> on|off`; nothing when it is already so. NotSupported when the name is
        unknown, the feature is fixed for this device (not in `available`, or in `never_changed`), or the
        driver did not apply the request."""
        word = "on" if enabled else "off"
        op = f"turn {feature} {word} for"
        target = netdev_target(name, netns)
        with _socket(netns, op, name) as sock:
            names = _feature_names(sock, name, op, netns)
            bit = _feature_bit(names, feature)
            if bit is None:
                raise NotSupported(op, target, errno.EOPNOTSUPP, detail=f"the kernel has no feature {feature!r}")
            state = _feature_state(sock, name, bit, op, netns)
            if state.active == enabled:
                logger.debug("%s already has %s %s", target, feature, word)
                return
            if not state.available or state.never_changed:
                raise NotSupported(op, target, errno.EOPNOTSUPP, detail=f"{feature} is fixed {_onoff(state.active)} "
                                   "for this device")
            words = _words(len(names))
            blocks = [0] * (2 * words)
            blocks[2 * (bit // 32)] = 1 << (bit % 32)  # valid
            blocks[2 * (bit // 32) + 1] = (1 << (bit % 32)) if enabled else 0  # requested
            buf = ctypes.create_string_buffer(struct.pack(f"=II{2 * words}I", ETHTOOL_SFEATURES, words, *blocks))
            flags = _ioctl(sock, name, buf, op, netns)
            after = _feature_state(sock, name, bit, op, netns)
        if after.active != enabled:
            reason = ("the driver refused it" if flags & ETHTOOL_F_UNSUPPORTED else
                      "the request is recorded but depends on another feature" if flags & ETHTOOL_F_WISH else
                      "it did not change")
            raise NotSupported(op, target, errno.EOPNOTSUPP, detail=f"{feature} is still {_onoff(after.active)}: "
                               f"{reason}")
        logger.info("set %s %s on %s", feature, word, target)


# --- ioctl plumbing ---------------------------------------------------------------------------------------------


def _onoff(value: bool) -> str:
    return "on" if value else "off"


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode(errors="replace")


def _words(count: int) -> int:
    return (count + 31) // 32


def _ioctl(sock: socket.socket, name: str, buf: ctypes.Array[ctypes.c_char], op: str, netns: Netns) -> int:
    """SIOCETHTOOL with `buf` as ifr_data; the ioctl's return value (ETHTOOL_F_* flags for SFEATURES)."""
    encoded = name.encode()
    if not encoded or len(encoded) >= IFNAMSIZ or b"\0" in encoded:
        raise InvalidArgument(op, netdev_target(name, netns), errno.EINVAL,
                              detail="the ethtool ioctl takes an interface name of 1 to 15 bytes")
    ifreq = bytearray(struct.pack("16sP", encoded, ctypes.addressof(buf)).ljust(IFREQ_SIZE, b"\0"))
    try:
        return int(fcntl.ioctl(sock.fileno(), SIOCETHTOOL, ifreq))
    except OSError as exc:
        raise error_from_os_error(exc, op, netdev_target(name, netns)) from exc


def _feature_count(sock: socket.socket, name: str, op: str, netns: Netns) -> int:
    buf = ctypes.create_string_buffer(struct.pack("=IIQI", ETHTOOL_GSSET_INFO, 0, 1 << ETH_SS_FEATURES, 0))
    _ioctl(sock, name, buf, op, netns)
    _, _, mask, count = struct.unpack("=IIQI", buf.raw[:20])
    if not mask & (1 << ETH_SS_FEATURES):
        raise NotSupported(op, netdev_target(name, netns), errno.EOPNOTSUPP, detail="the kernel has no feature strings")
    return int(count)


def _feature_names(sock: socket.socket, name: str, op: str, netns: Netns) -> list[str]:
    """The kernel's feature names, by bit (ETH_SS_FEATURES strings)."""
    count = _feature_count(sock, name, op, netns)
    buf = ctypes.create_string_buffer(struct.pack("=III", ETHTOOL_GSTRINGS, ETH_SS_FEATURES, count)
                                      + bytes(count * ETH_GSTRING_LEN))
    _ioctl(sock, name, buf, op, netns)
    data = buf.raw[12: 12 + count * ETH_GSTRING_LEN]
    return [_cstr(data[i * ETH_GSTRING_LEN: (i + 1) * ETH_GSTRING_LEN]) for i in range(count)]


def _feature_bit(names: list[str], feature: str) -> int | None:
    """The bit of `feature` (kernel or legacy `ethtool -k` name) in the feature words; None when unknown."""
    wanted = LEGACY_FEATURE_NAMES.get(feature, feature)
    return names.index(wanted) if wanted in names else None


def _feature_state(sock: socket.socket, name: str, bit: int, op: str, netns: Netns) -> _FeatureState:
    words = _words(bit + 1)
    buf = ctypes.create_string_buffer(struct.pack("=II", ETHTOOL_GFEATURES, words) + bytes(16 * words))
    _ioctl(sock, name, buf, op, netns)
    offset = 8 + 16 * (bit // 32)
    available, _requested, active, never_changed = struct.unpack("=4I", buf.raw[offset: offset + 16])
    mask = 1 << (bit % 32)
    return _FeatureState(available=bool(available & mask), active=bool(active & mask),
                         never_changed=bool(never_changed & mask))


@contextmanager
def _socket(netns: Netns, op: str, name: str) -> Iterator[socket.socket]:
    """An AF_INET datagram socket in `netns` (None: the caller's own), closed on exit."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM) if netns is None else \
        socket_in_netns(netns, socket.AF_INET, socket.SOCK_DGRAM, op=op)
    try:
        yield sock
    finally:
        sock.close()


