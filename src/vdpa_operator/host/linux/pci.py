"""PCI functions, SR-IOV and driver binding through `/sys/bus/pci`.

Everything goes through one `Sysfs` object and nothing here opens a file itself, so the simulated host reuses
this class unchanged on the tree it maintains (its `Sysfs.write` has the kernel's side effects). What this
module leaves out: PCI ids databases (names come from `api.nics`), devlink, and anything about netdevs beyond
listing the names under `net/`.

Sysfs layout relied on (kernel ABI, Documentation/ABI/testing/sysfs-bus-pci):
- `bus/pci/devices/<addr>` is a symlink into `devices/pci<domain>:<bus>/…/<addr>`;
- `vendor`, `device` (`0x15b3`, `0x101d`), `class` (`0x020000`), `driver` → `…/drivers/<name>`;
- `numa_node` (-1 without NUMA information), `acpi_index` (only where the firmware provides one);
- PFs: `sriov_totalvfs`, `sriov_numvfs`, `virtfn<N>` → `../<vf addr>`; VFs: `physfn` → `../<pf addr>`;
- `driver_override`, `bus/pci/drivers/<name>/{bind,unbind}`, `bus/pci/drivers_probe`.
"""

from __future__ import annotations

import errno
import logging
import re
import time
from collections.abc import Callable, Sequence

from vdpa_operator.host.errors import (
    DeviceNotFound,
    HostError,
    HostTimeout,
    InvalidArgument,
    KernelModuleMissing,
    NotSupported,
    error_from_errno,
)
from vdpa_operator.host.linux.sysfs import Sysfs
from vdpa_operator.host.port import NUMVFS_TIMEOUT
from vdpa_operator.host.types import PciAddress, PciFunction, SriovCapability, Vf, is_pci_address, pci_address

logger = logging.getLogger(__name__)

DEVICES = "bus/pci/devices"
DRIVERS = "bus/pci/drivers"
DRIVERS_PROBE = "bus/pci/drivers_probe"
NETWORK_CLASS_PREFIX = "0x02"
"""PCI base class 0x02: network controller (upstream keeps only these, `consts.NetClass`)."""
DPDK_DRIVERS = frozenset({"igb_uio", "vfio-pci", "uio_pci_generic"})
"""Userspace drivers that `bind_default` replaces (upstream `vars.DpdkDrivers`); any other bound driver is
already a kernel default and is left alone."""
EMPTY_READ_RETRIES = 5
"""Some PF drivers briefly return an empty `sriov_numvfs` right after a change (upstream retries too)."""

_VIRTFN_RE = re.compile(r"^virtfn(\d+)$")


class SysfsPci:
    """The `Pci` port on a sysfs tree. `sleep` and `clock` are injectable so waits run on virtual time in tests."""

    def __init__(
        self,
        sysfs: Sysfs,
        *,
        poll_interval: float = 0.05,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sysfs = sysfs
        self.poll_interval = poll_interval
        self._sleep = sleep
        self._clock = clock

    # --- discovery ---------------------------------------------------------------------------------------------

    def list_functions(self, *, network_only: bool = True) -> Sequence[PciFunction]:
        functions = []
        for name in self.sysfs.listdir(DEVICES):
            if not is_pci_address(name):
                continue
            address = PciAddress(name)
            try:
                class_code = self._class_code(address)
                if network_only and not class_code.startswith(NETWORK_CLASS_PREFIX):
                    continue
                functions.append(self._function(address, class_code))
            except DeviceNotFound:
                # NOTE: VFs come and go while sriov_numvfs changes; one that vanished mid-listing is not an error.
                logger.debug("PCI function %s disappeared while listing", address)
        return sorted(functions, key=lambda f: f.address)

    def get_function(self, address: PciAddress) -> PciFunction:
        self._require(address, "get PCI function")
        return self._function(address)

    def sriov(self, pf: PciAddress) -> SriovCapability | None:
        self._require(pf, "read SR-IOV capability of")
        base = f"{DEVICES}/{pf}"
        if not self.sysfs.exists(f"{base}/sriov_totalvfs"):
            return None
        return SriovCapability(
            totalvfs=self.sysfs.read_int(f"{base}/sriov_totalvfs", retries=EMPTY_READ_RETRIES),
            numvfs=self.sysfs.read_int(f"{base}/sriov_numvfs", retries=EMPTY_READ_RETRIES),
        )

    def list_vfs(self, pf: PciAddress) -> Sequence[Vf]:
        self._require(pf, "list VFs of")
        return [
            Vf(index=index, address=vf, driver=self.driver(vf))
            for index, vf in self._virtfns(pf)
        ]

    # --- SR-IOV ------------------------------------------------------------------------------------------------

    def set_numvfs(self, pf: PciAddress, count: int, *, timeout: float = NUMVFS_TIMEOUT) -> None:
        op = f"set sriov_numvfs to {count} on"
        self._require(pf, op)
        capability = self.sriov(pf)
        if capability is None:
            if count == 0:
                return  # upstream: nothing to reset on a function without sriov_numvfs
            raise NotSupported(op, pf, errno.EOPNOTSUPP, detail="the function is not SR-IOV capable")
        if count < 0 or count > capability.totalvfs:
            raise InvalidArgument(op, pf, errno.EINVAL, detail=f"sriov_totalvfs is {capability.totalvfs}")
        if capability.numvfs == count:
            logger.debug("%s already has %d VFs", pf, count)
            return
        path = f"{DEVICES}/{pf}/sriov_numvfs"
        # NOTE: the kernel refuses to change a non-zero VF count directly (EBUSY from sriov_numvfs_store).
        if capability.numvfs != 0 and count != 0:
            self.sysfs.write(path, "0")
        self.sysfs.write(path, str(count))
        logger.info("set sriov_numvfs of %s from %d to %d", pf, capability.numvfs, count)
        if count:
            self._wait_for_vfs(pf, count, timeout)

    def _wait_for_vfs(self, pf: PciAddress, count: int, timeout: float) -> None:
        """Poll until `count` `virtfn` links exist and every VF has its `physfn` link (upstream #1015: udev and
        the device plugin raced VFs whose sysfs directory was not complete yet)."""
        started = self._clock()
        deadline = started + timeout
        while True:
            missing = self._vfs_missing(pf, count)
            if not missing:
                logger.info("%s: %d VFs ready after %.1fs", pf, count, self._clock() - started)
                return
            if self._clock() >= deadline:
                raise HostTimeout(
                    f"wait for {count} VFs of", pf, errno.ETIMEDOUT,
                    detail=f"after {timeout:g}s still missing: {missing}",
                    hint="check dmesg for the PF driver's SR-IOV errors",
                )
            self._sleep(self.poll_interval)

    def _vfs_missing(self, pf: PciAddress, count: int) -> str:
        """What is still missing, in words; "" when all `count` VFs are complete."""
        vfs = dict(self._virtfns(pf))
        absent = [index for index in range(count) if index not in vfs]
        if absent:
            return f"{len(absent)} of {count} virtfn links (first: virtfn{absent[0]})"
        no_physfn = [str(vf) for index, vf in sorted(vfs.items()) if index < count
                     and not self.sysfs.exists(f"{DEVICES}/{vf}/physfn")]
        if no_physfn:
            return f"physfn link of {', '.join(no_physfn)}"
        return ""

    # --- drivers -----------------------------------------------------------------------------------------------

    def unbind(self, address: PciAddress) -> None:
        self._require(address, "unbind")
        driver = self.driver(address)
        if driver is None:
            logger.debug("%s has no driver; nothing to unbind", address)
            return
        self.sysfs.write(f"{DEVICES}/{address}/driver/unbind", address)
        logger.info("unbound %s from %s", address, driver)

    def bind(self, address: PciAddress, driver: str) -> None:
        op = f"bind {address} to"
        self._require(address, op)
        current = self.driver(address)
        if current == driver:
            logger.debug("%s is already bound to %s", address, driver)
            return
        if not self.sysfs.exists(f"{DRIVERS}/{driver}"):
            raise KernelModuleMissing(op, driver, errno.ENOENT, hint=f"load the kernel module that provides {driver}")
        if current is not None:
            self.unbind(address)
        with self.sysfs.driver_override(f"{DEVICES}/{address}", driver):
            try:
                self.sysfs.write(f"{DRIVERS}/{driver}/bind", address)
            except HostError as exc:
                # NOTE: bind_store fails for a device that is bound already (EBUSY from __driver_probe_device on
                # current kernels, ENODEV on older ones). Losing that race to the driver we wanted is success.
                if self.driver(address) == driver:
                    logger.debug("%s was bound to %s concurrently", address, driver)
                elif driver == "vfio-pci" and not self.sysfs.exists(f"{DEVICES}/{address}/iommu_group"):
                    hint = "the function has no iommu_group: enable the IOMMU (intel_iommu=on iommu=pt)"
                    raise error_from_errno(exc.errno, exc.op, exc.target, hint=hint, detail=exc.detail) from exc
                else:
                    raise
        logger.info("bound %s to %s", address, driver)

    def bind_default(self, address: PciAddress) -> None:
        self._require(address, "bind the default driver to")
        current = self.driver(address)
        if current is not None and current not in DPDK_DRIVERS:
            logger.debug("%s is already bound to kernel driver %s", address, current)
            return
        if current is not None:
            self.unbind(address)
        self.sysfs.set_driver_override(f"{DEVICES}/{address}", None)
        self.sysfs.write(DRIVERS_PROBE, address)
        logger.info("probed %s for its default driver (now %s)", address, self.driver(address) or "unbound")

    def driver(self, address: PciAddress) -> str | None:
        """The bound driver's name; None when unbound."""
        return self.sysfs.link_name(f"{DEVICES}/{address}/driver")

    # --- helpers -----------------------------------------------------------------------------------------------

    def _require(self, address: PciAddress, op: str) -> None:
        if not self.sysfs.exists(f"{DEVICES}/{address}"):
            raise DeviceNotFound(op, address, errno.ENODEV, detail=f"no {self.sysfs.path(DEVICES)}/{address}")

    def _class_code(self, address: PciAddress) -> str:
        return self.sysfs.read(f"{DEVICES}/{address}/class").strip().lower()

    def _function(self, address: PciAddress, class_code: str | None = None) -> PciFunction:
        """`class_code` when the caller has read it already (one read of `class` per function)."""
        base = f"{DEVICES}/{address}"
        physfn = self.sysfs.link_name(f"{base}/physfn")
        return PciFunction(
            address=address,
            vendor=_hex_id(self.sysfs.read(f"{base}/vendor")),
            device=_hex_id(self.sysfs.read(f"{base}/device")),
            class_code=class_code if class_code is not None else self._class_code(address),
            driver=self.driver(address),
            physfn=pci_address(physfn) if physfn else None,
            netdevs=tuple(self.sysfs.listdir(f"{base}/net")),
            numa_node=_numa_node(self.sysfs.read_optional(f"{base}/numa_node")),
            acpi_index=(self.sysfs.read_optional(f"{base}/acpi_index") or "").strip(),
        )

    def _virtfns(self, pf: PciAddress) -> list[tuple[int, PciAddress]]:
        """(index, VF address) from the PF's `virtfnN` links, by index."""
        found = []
        for entry in self.sysfs.listdir(f"{DEVICES}/{pf}"):
            match = _VIRTFN_RE.match(entry)
            if not match:
                continue
            target = self.sysfs.link_name(f"{DEVICES}/{pf}/{entry}")
            if target and is_pci_address(target):
                found.append((int(match.group(1)), PciAddress(target)))
        return sorted(found)


def _numa_node(text: str | None) -> int | None:
    """Upstream `GetDevNode` reads a missing or unparsable `numa_node` as -1, and callers treat any negative
    node as "no topology": here all of those are None."""
    try:
        node = int((text or "").strip())
    except ValueError:
        return None
    return node if node >= 0 else None


def _hex_id(text: str) -> str:
    """`0x15b3\n` → `15b3`."""
    value = text.strip().lower()
    return value[2:] if value.startswith("0x") else value
