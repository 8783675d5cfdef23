"""`ethtool -i IFACE` output → the driver and bus-info it reports (the kernel's ETHTOOL_GDRVINFO answer).

For a vDPA netdev the kernel says `driver: virtio_net` and `bus-info: <vdpa device name>` (`virtnet_get_drvinfo`
with `virtio_vdpa_bus_name`), which the device plugin names `vdpa:<VF PCI address>`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from vdpa_operator.errors import VdpaOperatorError


@dataclass(frozen=True, slots=True)
class DriverInfo:
    driver: str
    bus_info: str
    fields: Mapping[str, str]
    """Every `key: value` line as printed (version, firmware-version, supports-…)."""

    def describe(self) -> str:
        return f"driver {self.driver or '(none)'}, bus-info {self.bus_info or '(empty)'}"


class EthtoolParseError(VdpaOperatorError, ValueError):
    """The text has no `driver:` line: not `ethtool -i` output."""


def parse_driver_info(text: str) -> DriverInfo:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, colon, value = line.partition(":")
        if colon and key.strip():
            fields[key.strip()] = value.strip()
    if "driver" not in fields:
        raise EthtoolParseError(f"no 'driver:' line in ethtool -i output: {text.strip()[:200]!r}")
    return DriverInfo(driver=fields["driver"], bus_info=fields.get("bus-info", ""), fields=fields)
