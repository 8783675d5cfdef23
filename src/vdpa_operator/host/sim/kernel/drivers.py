"""The driver core, one for both buses (drivers/base/{bus,dd}.c): the sysfs files that bind, unbind, override
and probe PCI functions and vdpa devices. What binding does is the driver's: mlx5_core in `pci.py`, the vdpa
bus drivers in `vdpa.py`.

 5. bind (`bind_store`): unknown device or no match (driver_override names another driver, or not in the id
    table) → ENODEV; already bound → EBUSY (`__driver_probe_device`). unbind (`unbind_store`): not bound to
    that driver → ENODEV. `drivers_probe`: unknown → ENODEV, bound → nothing, else first matching driver.
    `driver_override` (`driver_set_override`): newline/empty clears; reads `(null)` when unset.
    Kernel cannot show for PCI (netdevsim VFs are not PCI functions).
21. vdpa bus bind/unbind/driver_override/drivers_probe as in 5. Proven on kernel that binding to another bus
    driver replaces what the first gave (test_contract_vdpa.py:
    `test_rebinding_virtio_to_vhost_removes_the_netdev`); the errno cases: sim only.
"""

from __future__ import annotations

import errno as E

from vdpa_operator.host.sim.kernel import pci, vdpa
from vdpa_operator.host.sim.kernel.errors import KernelError
from vdpa_operator.host.sim.kernel.txn import Txn
from vdpa_operator.host.sim.state import PciFn, State, VdpaDev

_UNBIND_FAULT = {"pci": "pci_unbind", "vdpa": "vdpa_bind"}
"""The fault op an unbind consumes (see `faults.py`)."""


def _override(text: str) -> str | None:
    """`driver_set_override`: up to the first newline; empty clears. Too long → EINVAL."""
    if len(text) >= 4095:
        raise KernelError(E.EINVAL, "driver_override too long")
    value = text.split("\n", 1)[0]
    return value or None


def _bus_devices(state: State, bus: str) -> dict[str, PciFn] | dict[str, VdpaDev]:
    if bus == "pci":
        return state.pci
    if bus == "vdpa":
        return state.vdpa
    raise KernelError(E.ENOENT, f"no bus {bus}")


def _matches(state: State, dev: PciFn | VdpaDev, driver: str) -> bool:
    """Whether `driver` may bind `dev`: `driver_override` decides alone when set; else the PCI id table, or on
    the vdpa bus any loaded bus driver."""
    if isinstance(dev, PciFn):
        return pci.matches(dev, driver)
    return driver in state.modules and dev.driver_override in (None, driver)


def write_bind(t: Txn, bus: str, driver: str, name: str) -> None:
    """`bus/<bus>/drivers/<driver>/bind`."""
    t.fault(f"{bus}_bind", name)
    dev = _bus_devices(t.state, bus).get(name)
    if dev is None or not _matches(t.state, dev, driver):
        raise KernelError(E.ENODEV)
    if dev.driver is not None:
        raise KernelError(E.EBUSY, f"{name} is bound to {dev.driver}")
    if isinstance(dev, PciFn):
        pci.attach(t, dev, driver)
    else:
        vdpa.attach(t, dev, driver)


def write_unbind(t: Txn, bus: str, driver: str, name: str) -> None:
    """`bus/<bus>/drivers/<driver>/unbind`."""
    t.fault(_UNBIND_FAULT[bus], name)
    dev = _bus_devices(t.state, bus).get(name)
    if dev is None or dev.driver != driver:
        raise KernelError(E.ENODEV)
    if isinstance(dev, PciFn):
        pci.detach(t, dev)
    else:
        vdpa.detach(t, dev)


def write_driver_override(t: Txn, bus: str, name: str, text: str) -> None:
    """`<device>/driver_override` of a PCI function or a vdpa device."""
    dev = _bus_devices(t.state, bus).get(name)
    if dev is None:
        raise KernelError(E.ENODEV)
    dev.driver_override = _override(text)


def write_probe(t: Txn, bus: str, name: str) -> None:
    """`bus/<bus>/drivers_probe`: unknown → ENODEV, bound → nothing, else the first matching driver."""
    if bus == "pci":
        t.fault("pci_bind", name)
    dev = _bus_devices(t.state, bus).get(name)
    if dev is None:
        raise KernelError(E.ENODEV)
    if dev.driver is None:
        if isinstance(dev, PciFn):
            pci.probe(t, dev)
        else:
            vdpa.probe(t, dev)


def write_autoprobe(t: Txn, bus: str, text: str) -> None:
    """`bus/<bus>/drivers_autoprobe` (`drivers_autoprobe_store`: only a leading 0 disables)."""
    enabled = not text.startswith("0")
    if bus == "pci":
        t.state.pci_autoprobe = enabled
    else:
        t.state.vdpa_autoprobe = enabled
