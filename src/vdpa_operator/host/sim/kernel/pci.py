"""PCI and SR-IOV (drivers/pci/iov.c, drivers/pci/pci-driver.c, mlx5 main.c): PFs and the VFs they create,
and what mlx5_core does when it binds (probe) or leaves (remove) a function. Writing `bind`/`unbind` and the
other driver-core files is `drivers.py`; which attributes sysfs lets one write is `sysfs.py`'s dispatch.

 1. VF addresses by routing-ID arithmetic: PF devfn + First VF Offset + i × VF Stride, carrying into the bus
    number (`pci_iov_virtfn_bus/devfn`). Stride 1; PF k's offset puts its VFs right after PF k-1's (PF0 of a
    two-port card: offset 2 → 0000:65:00.2…0000:65:01.1; PF1: offset 9 → 0000:65:01.2…). Generic SR-IOV
    packing; inference for the exact CX-6 Dx firmware values. `sriov_offset`/`sriov_stride` shown.
    `numa_node` is the NIC's (`NicSpec.numa_node`; -1 without NUMA): VFs show their PF's, as
    `pci_device_add` takes it from the bus (the PF's, or a virtual bus under the same host bridge).
    Kernel cannot show: netdevsim VFs are not PCI functions (`test_a_vf_is_on_its_pfs_numa_node` skips).
 2. `sriov_numvfs` (`sriov_numvfs_store`): unparsable → EINVAL; > sriov_totalvfs → ERANGE; == current →
    nothing; PF without driver → ENOENT; 0 → VFs removed (with their netdevs, representors, vdpa devices);
    N while N' ≠ 0 exist → EBUSY. Kernel cannot show: netdevsim makes its VFs through a sysfs file of its
    own, not `sriov_numvfs`.
 3. New VFs are probed (`sriov_drivers_autoprobe` 1) and bind to mlx5_core (id table 15b3:101e); each bound
    VF gets a netdev `<pf>v<n>` (systemd's SR-IOV naming; the kernel first calls it ethN). Kernel cannot
    show: netdevsim VFs have no netdevs.
 4. `vf_create_delay`: `sriov_numvfs` reads N at once, the VFs (virtfn/physfn links, dirs) appear later (the
    window of upstream #1015). Inference: on real hardware the write itself is synchronous. Sim only.
 6. Unbinding a PF from mlx5_core disables SR-IOV (mlx5 main.c `remove_one` → `mlx5_sriov_disable`) and
    removes its netdev and devlink instance; unbinding a VF removes its netdev and its vdpa management
    device, hence its vdpa device (auxiliary device removal). Kernel cannot show (no PCI VFs there).
 7. Other writes to read-only attributes → EACCES; writing `class/net/<if>/mtu` changes the MTU (`sysfs.py`).
    Sim only.
"""

from __future__ import annotations

import errno as E
import logging
import re
import time

from vdpa_operator.host.sim import faults
from vdpa_operator.host.sim.kernel import eswitch, netdev, vdpa
from vdpa_operator.host.sim.kernel.errors import KernelError
from vdpa_operator.host.sim.kernel.txn import Txn
from vdpa_operator.host.sim.state import (
    CX6DX_PF,
    CX6DX_VF,
    MELLANOX,
    MLX5_MAX_MTU,
    PCI_DRIVER_MODULES,
    Netdev,
    NicSpec,
    PciFn,
    PfState,
    State,
    netdev_of,
    pf_netdev_name,
    reps_of,
    vfs_of,
)

logger = logging.getLogger(__name__)

_U16_RE = re.compile(r"^\+?(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$")


# --- addresses (rule 1) -------------------------------------------------------------------------------------


def split_address(address: str) -> tuple[int, int, int]:
    """`0000:65:00.2` → (domain, bus, devfn)."""
    domain, bus, rest = address.split(":")
    dev, fn = rest.split(".")
    return int(domain, 16), int(bus, 16), int(dev, 16) << 3 | int(fn)


def join_address(domain: int, bus: int, devfn: int) -> str:
    return f"{domain:04x}:{bus:02x}:{devfn >> 3:02x}.{devfn & 7}"


def vf_address(pf: str, index: int, offset: int, stride: int) -> str:
    """The VF's address as the PCI core computes it (`pci_iov_virtfn_bus`/`_devfn`)."""
    domain, bus, devfn = split_address(pf)
    rid = devfn + offset + stride * index
    return join_address(domain, bus + (rid >> 8), rid & 0xFF)


def add_nic(state: State, nic_index: int, nic: NicSpec) -> None:
    """A card at boot: its PFs, bound to mlx5_core when it is loaded."""
    first = split_address(nic.pfs[0].address)
    first_vf_rid = first[2] + len(nic.pfs)
    for k, spec in enumerate(nic.pfs):
        domain, bus, devfn = split_address(spec.address)
        if (domain, bus) != first[:2] or devfn != first[2] + k:
            raise ValueError(f"PFs of one NIC must be consecutive functions of one device: {spec.address}")
        offset = first_vf_rid - devfn
        first_vf_rid += spec.totalvfs
        mac = netdev.prefixed_mac(b"\xb8\xce\xf6", "pf", spec.address)
        guid_mac = netdev.prefixed_mac(b"\xb8\xce\xf6", "pf", nic.pfs[0].address).replace(":", "")
        fn = PciFn(address=spec.address, parent=nic.parent, device=CX6DX_PF)
        state.pci[spec.address] = fn
        state.pfs[spec.address] = PfState(
            address=spec.address, netdev=spec.netdev, totalvfs=spec.totalvfs, offset=offset, stride=1,
            pfnum=devfn & 7, vhca_id=k, nic=nic_index, mac=mac, switch_id=guid_mac[:6] + "0300" + guid_mac[6:],
        )
        if "mlx5_core" in state.modules:
            fn.driver = "mlx5_core"
            netdev.add_netdev(state, Netdev(ifindex=0, name=spec.netdev, kind="pf", mac=mac, up=True,
                                            pci=spec.address, hw_tc=False, max_mtu=MLX5_MAX_MTU))


# --- SR-IOV (rules 2 and 4) ---------------------------------------------------------------------------------


def _kstrtou16(text: str) -> int | None:
    """`kstrtou16(buf, 0, …)`: decimal, 0x hex or 0 octal, one trailing newline allowed; None when invalid."""
    value = text[:-1] if text.endswith("\n") else text
    if not _U16_RE.fullmatch(value):
        return None
    number = int(value.lstrip("+"), 0) if not re.fullmatch(r"\+?0[0-7]+", value) else int(value.lstrip("+"), 8)
    return number if number <= 0xFFFF else None


def _kstrtobool(text: str) -> bool | None:
    """`kstrtobool` (6.1): decided by the first character (1/y/Y, 0/n/N) or `on`/`off`; None when invalid."""
    if text[:1] in ("1", "y", "Y"):
        return True
    if text[:1] in ("0", "n", "N"):
        return False
    if text[:2].lower() == "on":
        return True
    if text[:2].lower() == "of":
        return False
    return None


def write_sriov_numvfs(t: Txn, pf_address: str, text: str) -> None:
    state = t.state
    t.fault("sriov_numvfs", pf_address)
    pf = state.pfs.get(pf_address)
    if pf is None:
        raise KernelError(E.EACCES)
    count = _kstrtou16(text)
    if count is None:
        raise KernelError(E.EINVAL, f"not a number: {text!r}")
    if count > pf.totalvfs:
        raise KernelError(E.ERANGE, f"{count} > sriov_totalvfs {pf.totalvfs}")
    if count == pf.numvfs:
        return
    if state.pci[pf_address].driver is None:
        raise KernelError(E.ENOENT, "no driver bound to device; cannot configure SR-IOV")
    if count == 0:
        disable_vfs(t, pf)
        return
    if pf.numvfs:
        raise KernelError(E.EBUSY, f"{pf.numvfs} VFs already enabled. Disable before enabling {count} VFs")
    _enable_vfs(t, pf, count)


def write_sriov_autoprobe(t: Txn, pf_address: str, text: str) -> None:
    value = _kstrtobool(text)
    if value is None or pf_address not in t.state.pfs:
        raise KernelError(E.EINVAL)
    t.state.pfs[pf_address].drivers_autoprobe = value


def _enable_vfs(t: Txn, pf: PfState, count: int) -> None:
    pf.numvfs = count
    pf.vf_macs = {str(i): netdev.ZERO_MAC for i in range(count)}
    delay = t.state.config.vf_create_delay
    if delay > 0:
        pf.pending_numvfs, pf.pending_at = count, time.time() + delay
        t.effects.tick_after(delay)
        return
    _materialise_vfs(t, pf, count)


def materialise_due(t: Txn) -> None:
    """Time passes: VFs whose creation was delayed appear once due (rule 4)."""
    now = time.time()
    for pf in t.state.pfs.values():
        if pf.pending_numvfs and pf.pending_at <= now:
            count, pf.pending_numvfs, pf.pending_at = pf.pending_numvfs, 0, 0.0
            _materialise_vfs(t, pf, count)


def _materialise_vfs(t: Txn, pf: PfState, count: int) -> None:
    state = t.state
    parent = state.pci[pf.address].parent
    for index in range(count):
        address = vf_address(pf.address, index, pf.offset, pf.stride)
        fn = PciFn(address=address, parent=parent, device=CX6DX_VF, pf=pf.address, vf_index=index)
        state.pci[address] = fn
        if pf.eswitch == "switchdev":
            eswitch.add_rep(state, pf, index)
        if pf.drivers_autoprobe and state.pci_autoprobe:
            probe(t, fn)


def disable_vfs(t: Txn, pf: PfState) -> None:
    state = t.state
    for fn in vfs_of(state, pf.address):
        if fn.driver is not None:
            detach(t, fn)
        del state.pci[fn.address]
    for rep in reps_of(state, pf.address):
        netdev.remove_netdev(t, rep)
    pf.numvfs, pf.pending_numvfs, pf.pending_at, pf.vf_macs = 0, 0, 0.0, {}


# --- PCI drivers: matching, probe and remove (rules 3 and 6) ------------------------------------------------


def matches(fn: PciFn, driver: str) -> bool:
    """`pci_match_device`: driver_override decides alone when set; else the id table (mlx5_core: 15b3:101d/e)."""
    if fn.driver_override is not None:
        return fn.driver_override == driver
    return driver == "mlx5_core" and fn.vendor == MELLANOX and fn.device in (CX6DX_PF, CX6DX_VF)


def probe(t: Txn, fn: PciFn) -> None:
    """First loaded driver that matches, in load order; a failed probe (injected) leaves it unbound."""
    for driver, module in PCI_DRIVER_MODULES.items():
        if module in t.state.modules and matches(fn, driver):
            if faults.take(t.state, "pci_bind", fn.address) is not None:
                logger.debug("sim: probe of %s by %s failed (injected)", fn.address, driver)
                return
            attach(t, fn, driver)
            return


def attach(t: Txn, fn: PciFn, driver: str) -> None:
    state = t.state
    fn.driver = driver
    if driver != "mlx5_core":
        return
    fn.flow_steering = "dmfs"
    if fn.pf is None:
        pf = state.pfs[fn.address]
        pf.eswitch = "legacy"
        if netdev_of(state, "pf", fn.address) is None:
            netdev.add_netdev(state, Netdev(ifindex=0, name=pf.netdev, kind="pf", mac=pf.mac, up=True,
                                            pci=fn.address, hw_tc=False, max_mtu=MLX5_MAX_MTU))
        return
    pf = state.pfs[fn.pf]
    fn.vnet = pf.eswitch == "switchdev"
    name = f"{pf_netdev_name(state, pf)}v{fn.vf_index}"
    if netdev.find(state, None, name) is not None:
        name = netdev.free_name(state, None, "eth")
    admin = pf.vf_macs.get(str(fn.vf_index), netdev.ZERO_MAC)
    mac = admin if admin != netdev.ZERO_MAC else netdev.local_mac("vf", fn.address)
    netdev.add_netdev(state, Netdev(ifindex=0, name=name, kind="vf", mac=mac, pci=fn.address, vf=fn.vf_index,
                                    hw_tc=False, max_mtu=MLX5_MAX_MTU))


def detach(t: Txn, fn: PciFn) -> None:
    state = t.state
    if fn.driver == "mlx5_core":
        if fn.pf is None:
            pf = state.pfs[fn.address]
            disable_vfs(t, pf)
            if pf.eswitch == "switchdev":
                eswitch.to_legacy(t, pf)
            nd = netdev_of(state, "pf", fn.address)
            if nd is not None:
                netdev.remove_netdev(t, nd)
        else:
            for dev in [d for d in state.vdpa.values() if d.vf == fn.address]:
                vdpa.remove(t, dev)
            nd = netdev_of(state, "vf", fn.address)
            if nd is not None:
                netdev.remove_netdev(t, nd)
            fn.vnet = False
    fn.driver = None
