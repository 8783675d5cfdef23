"""Fault injection for the simulated kernel: make an operation fail with an errno, or run slowly, N times.

Faults live in the persisted state, so a fault injected by a test process hits the daemon or CNI process that
attaches to the same root. An injected errno leaves through the same path as a real one: an `OSError` from a
sysfs write (which `Sysfs` maps to the HostError family), a HostError from a genl- or rtnl-like operation.
A fault's `delay` sleeps inside the operation, as a slow kernel would (the state lock is held meanwhile, like
rtnl_lock or the device lock in the real kernel).

Operation names follow the kernel operation that fails, with the object they apply to as `target`:

| op            | target                     | where                                                     |
|---------------|----------------------------|-----------------------------------------------------------|
| sriov_numvfs  | PF address                 | write to `sriov_numvfs`                                   |
| pci_bind      | PCI address                | write to `drivers/<drv>/bind`, `drivers_probe`, autoprobe |
| pci_unbind    | PCI address                | write to `drivers/<drv>/unbind`                           |
| eswitch_set   | devlink handle             | DEVLINK_CMD_ESWITCH_SET                                   |
| param_set     | devlink handle             | DEVLINK_CMD_PARAM_SET                                     |
| vdpa_dev_new  | vdpa device name           | VDPA_CMD_DEV_NEW                                          |
| vdpa_dev_del  | vdpa device name           | VDPA_CMD_DEV_DEL                                          |
| vdpa_attr_set | vdpa device name           | VDPA_CMD_DEV_ATTR_SET                                     |
| vdpa_bind     | vdpa device name           | vdpa bus bind/unbind/probe; a failed autoprobe leaves it unbound |
| link_set      | netdev name                | RTM_NEWLINK/RTM_SETLINK changes, addresses, routes        |
| vf_mac_set    | PF netdev name             | IFLA_VF_MAC                                               |
| feature_set   | netdev name                | ETHTOOL_SFEATURES                                         |
| module_load   | module name                | modprobe                                                  |
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager

from vdpa_operator.host.sim.state import Fault, State

OPS = frozenset({
    "sriov_numvfs", "pci_bind", "pci_unbind", "eswitch_set", "param_set", "vdpa_dev_new", "vdpa_dev_del",
    "vdpa_attr_set", "vdpa_bind", "link_set", "vf_mac_set", "feature_set", "module_load",
})


def take(state: State, op: str, target: str, *, sleep: Callable[[float], None] = time.sleep) -> int | None:
    """Consume the first fault for (`op`, `target`): sleep its delay and return its errno (None: succeed)."""
    for fault in state.faults:
        if fault.op == op and fault.target in (None, target):
            if fault.after > 0:
                fault.after -= 1
                continue
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    state.faults.remove(fault)
            if fault.delay > 0:
                sleep(fault.delay)
            return fault.errno
    return None


class Faults:
    """`kernel.faults`: inject, list and clear faults in the shared state."""

    def __init__(self, transaction: Callable[[], AbstractContextManager[State]]) -> None:
        self._transaction = transaction

    def inject(self, op: str, *, errno: int | None = None, delay: float = 0.0, times: int | None = 1,
               target: str | None = None, after: int = 0) -> None:
        """Make the next `times` (None: every) `op` on `target` (None: any) fail with `errno` after `delay`,
        once `after` of them have succeeded (how a test fails an operation at each step of a sequence)."""
        if op not in OPS:
            raise ValueError(f"unknown fault op {op!r}; known: {', '.join(sorted(OPS))}")
        if errno is None and delay <= 0:
            raise ValueError("a fault needs an errno, a delay, or both")
        if times is not None and times < 1:
            raise ValueError("times must be at least 1 (or None for every time)")
        if after < 0:
            raise ValueError("after must be 0 or more")
        with self._transaction() as state:
            state.faults.append(Fault(op=op, errno=errno, delay=delay, times=times, target=target, after=after))

    def list(self) -> Sequence[Fault]:
        with self._transaction() as state:
            return [Fault(f.op, f.errno, f.delay, f.times, f.target, f.after) for f in state.faults]

    def clear(self, op: str | None = None) -> None:
        with self._transaction() as state:
            state.faults = [f for f in state.faults if op is not None and f.op != op]
