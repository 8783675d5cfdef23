"""The supported-NIC table: which vendor/PF-device/VF-device triples the operator accepts.

The same table drives the webhook's vendor/device checks, the VF device id written into the device-plugin
configuration, and (later) discovery filtering. Entries have upstream's `"<vendor> <pf-device> <vf-device>"`
form so a `supported-nic-ids` ConfigMap can replace the built-in list unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from vdpa_operator.errors import VdpaOperatorError


@dataclass(frozen=True, slots=True)
class NicId:
    vendor: str
    pf_device: str
    vf_device: str
    model: str = field(default="", compare=False)
    """The entry's comment ("NVIDIA mlx5 ConnectX-6 Dx"): names the generated ConfigMap key, matches nothing."""


class NicTableError(VdpaOperatorError, ValueError):
    """A supported-NIC entry that is not three hex ids."""


@dataclass(frozen=True)
class SupportedNics:
    entries: tuple[NicId, ...]

    @classmethod
    def parse(cls, lines: Iterable[str], *, source: str = "supported NIC list") -> SupportedNics:
        """Entries of the form "15b3 101d 101e"; blank lines are skipped, a `#` comment names the model."""
        entries = []
        for number, raw in enumerate(lines, 1):
            line, _, comment = (part.strip() for part in raw.partition("#"))
            if not line:
                continue
            ids = line.split()
            if len(ids) != 3 or not all(_is_hex_id(i) for i in ids):
                raise NicTableError(
                    f"{source}: entry {number} {raw.strip()!r} is not '<vendor> <pf-device> <vf-device>' "
                    "in 4-digit hex, e.g. '15b3 101d 101e'"
                )
            vendor, pf_device, vf_device = ids
            entries.append(NicId(vendor, pf_device, vf_device, model=comment))
        return cls(tuple(entries))

    @classmethod
    def from_configmap_data(cls, data: Mapping[str, str], *, source: str = "supported-nic-ids") -> SupportedNics:
        """The `data` of upstream's `supported-nic-ids` ConfigMap: one entry per key."""
        return cls.parse((data[k] for k in data), source=source)

    def is_supported_vendor(self, vendor: str) -> bool:
        return any(n.vendor == vendor for n in self.entries)

    def is_supported_device(self, device: str) -> bool:
        """A known PF device id, whatever the vendor (upstream `IsSupportedDevice`)."""
        return any(n.pf_device == device for n in self.entries)

    def is_supported_model(self, vendor: str, device: str) -> bool:
        return any(n.vendor == vendor and n.pf_device == device for n in self.entries)

    def is_vf_supported_model(self, vendor: str, device: str) -> bool:
        return any(n.vendor == vendor and n.vf_device == device for n in self.entries)

    def vf_device_id(self, pf_device: str) -> str:
        """The VF device id of the first entry with this PF device id, or "" (upstream `GetVfDeviceID`)."""
        return next((n.vf_device for n in self.entries if n.pf_device == pf_device), "")


def _is_hex_id(text: str) -> bool:
    return len(text) == 4 and all(c in "0123456789abcdefABCDEF" for c in text)


DEFAULT_SUPPORTED_NICS = SupportedNics.parse(
    """
    8086 158a 154c  # Intel i40e XXV710
    8086 158b 154c  # Intel i40e 25G SFP28
    8086 1572 154c  # Intel i40e 10G X710 SFP
    8086 1563 1565  # Intel ixgbe 10G X550
    8086 10c9 10ca  # Intel igb 82576
    8086 1589 154c  # Intel i40e X710 X557-AT 10G
    8086 1581 154c  # Intel i40e 10G X710 backplane
    8086 15ff 154c  # Intel i40e 10G X710 base-T
    8086 0d58 154c  # Intel i40e XXV710 N3000
    8086 1583 154c  # Intel i40e 40G XL710 QSFP
    8086 1592 1889  # Intel ice E810-CQDA2/2CQDA2
    8086 1593 1889  # Intel ice E810-XXVDA4
    8086 159b 1889  # Intel ice E810-XXVDA2
    8086 1599 1889  # Intel ice E810-XXV backplane
    8086 1591 1889  # Intel ice E810
    8086 188a 1889  # Intel ice E823-C
    8086 124d 1889  # Intel ice E823-L SFP
    8086 124c 1889  # Intel ice E823-L backplane
    8086 579c 1889  # Intel ice E825-C backplane
    8086 579d 1889  # Intel ice E825-C QSFP
    8086 579e 1889  # Intel ice E825-C SFP
    8086 12d2 1889  # Intel ice E830 QSFP
    8086 12d3 1889  # Intel ice E830 SFP
    8086 1249 1889  # Intel ice E835-CC QSFP
    8086 124a 1889  # Intel ice E835-CC SFP
    15b3 1013 1014  # NVIDIA mlx5 ConnectX-4
    15b3 1015 1016  # NVIDIA mlx5 ConnectX-4 Lx
    15b3 1017 1018  # NVIDIA mlx5 ConnectX-5
    15b3 1019 101a  # NVIDIA mlx5 ConnectX-5 Ex
    15b3 101b 101c  # NVIDIA mlx5 ConnectX-6
    15b3 101d 101e  # NVIDIA mlx5 ConnectX-6 Dx
    15b3 101f 101e  # NVIDIA mlx5 ConnectX-6 Lx
    15b3 1021 101e  # NVIDIA mlx5 ConnectX-7
    15b3 1023 101e  # NVIDIA mlx5 ConnectX-8
    15b3 1025 101e  # NVIDIA mlx5 ConnectX-9
    15b3 a2d6 101e  # NVIDIA BlueField-2 (integrated ConnectX-6 Dx)
    15b3 a2dc 101e  # NVIDIA BlueField-3 (integrated ConnectX-7)
    14e4 16d7 16dc  # Broadcom bnxt BCM57414 2x25G
    14e4 1750 1806  # Broadcom bnxt BCM75508 2x100G
    1077 1654 1664  # QLogic qede QL45000 50G
    1af4 1000 1000  # Red Hat virtio network device
    1af4 1041 1041  # Red Hat virtio 1.0 network device
    177d b200 b203  # Marvell OCTEON TX2 CN96XX
    177d b100 b103  # Marvell OCTEON TX2 CN98XX
    177d b600 b603  # Marvell OCTEON Fusion CNF95XX
    177d b900 b903  # Marvell OCTEON10 CN10XXX
    177d ba00 ba03  # Marvell OCTEON Fusion CNF105XX
    1d0f ec20 ec20  # Amazon Elastic Network Adapter
    """.splitlines(),
    source="built-in supported NIC list",
)
"""Upstream's `supported-nic-ids` ConfigMap as of 2026-08."""

MELLANOX_VENDOR = "15b3"
INTEL_VENDOR = "8086"
MLX_MAX_VFS = 128
"""Upstream's `MlxMaxVFs`: firmware can raise `totalvfs`, so Mellanox PFs are checked against this instead."""
