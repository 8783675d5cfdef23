"""devlink and the eswitch (mlx5 eswitch_offloads.c `mlx5_devlink_eswitch_mode_set`, esw/devlink_port.c,
en/devlink.c, devlink.c; net/devlink/leftover.c): eswitch mode, representors, ports and parameters.

 8. Unknown devlink handle → ENODEV (`devlink_get_from_attrs`); eswitch on a VF → EOPNOTSUPP
    (`mlx5_eswitch_check`: not an eswitch manager); same mode → nothing. Proven on kernel: ENODEV, and a PF
    that starts legacy and goes to switchdev and back (test_contract_switchdev.py:
    `test_missing_devlink_device_is_enodev`, `test_eswitch_starts_legacy_and_round_trips`); the VF case: sim only.
 9. switchdev is refused with EBUSY while any VF is bound to a driver (`switchdev_requires_unbound_vfs`).
    NOTE: mlx5 6.1's mode_set has no such check; the requirement is NVIDIA's documented procedure, which
    upstream follows (§4.5: unbind VFs, switchdev, rebind). EBUSY is mlx5's "E-Switch is busy" errno.
    Kernel cannot show: netdevsim switches in any order (`test_switchdev_is_refused_while_vfs_are_bound` skips).
10. switchdev: one representor per VF, named `<pf>_<vf>` (what upstream's 20-switchdev udev rule makes of
    the kernel's name), parent = the PF PCI device so it is listed under the PF's `net/` (kernel ≥ 5.8),
    phys_port_name `pf<pfnum>vf<n>`, the NIC's phys_switch_id (system image GUID, shared by both ports),
    devlink port flavour pcivf (index vhca_id<<16 | vf+1, pfnum, vfnum); the PF netdev stays, as the uplink
    (flavour physical, index vhca_id<<16 | 0xffff, phys_port_name `p<pfnum>`, same in legacy); VFs created
    while in switchdev get representors at once. Proven on kernel (netdevsim): a pcivf port with a netdev per
    VF, `pf<pfnum>vf<n>`, the uplink's `p<N>` and physical port, one switch id (test_contract_switchdev.py:
    `test_switchdev_vfs_get_representors_on_the_pf_switch`); names, indexes and parents: sim only.
11. legacy: representors go; vdpa devices and management devices of the PF's VFs go (upstream's observation,
    pkg/host/internal/vdpa; inference for the mechanism: the VFs lose the vnet capability until re-probed).
    Proven on kernel for the representors (`test_contract_switchdev.py::test_legacy_removes_the_representors`).
12. A bound VF has its own devlink instance `pci/<VF>` with one port of flavour virtual; its netdev has no
    phys_port_name (EOPNOTSUPP in the kernel; the sim omits the file) and no phys_switch_id. Kernel cannot
    show: netdevsim VFs are not PCI functions.
13. `flow_steering_mode` (string, cmode runtime, default dmfs) on every mlx5 devlink instance: unknown
    parameter → EINVAL; not dmfs/smfs → EINVAL; smfs while switchdev → EOPNOTSUPP
    (`mlx5_devlink_fs_mode_validate`); smfs without the capability → EOPNOTSUPP; another cmode → EOPNOTSUPP
    (`__devlink_nl_cmd_param_set_doit`). dmfs is accepted in switchdev, as in the kernel. Proven on kernel
    for an unknown parameter's EINVAL (`test_contract_switchdev.py::test_unknown_devlink_param_is_none`);
    the parameter itself: kernel cannot show (netdevsim has none).
"""

from __future__ import annotations

import errno as E

from vdpa_operator.host.sim.kernel import netdev, vdpa
from vdpa_operator.host.sim.kernel.errors import KernelError
from vdpa_operator.host.sim.kernel.txn import Txn
from vdpa_operator.host.sim.state import (
    MLX5_MAX_MTU,
    Netdev,
    PciFn,
    PfState,
    State,
    netdev_of,
    pf_netdev_name,
    reps_of,
    vfs_of,
)
from vdpa_operator.host.types import DevlinkHandle, DevlinkParam, DevlinkPort, PciAddress, PortFlavour

UPLINK_VPORT = 0xFFFF


def _devlink_fn(state: State, handle: DevlinkHandle) -> PciFn:
    fn = state.pci.get(handle.name) if handle.bus == "pci" else None
    if fn is None or fn.driver != "mlx5_core":
        raise KernelError(E.ENODEV, "devlink device not found")
    return fn


def _vf_vhca(state: State, pf: PfState, fn: PciFn) -> int:
    """VF vhca_ids are firmware-assigned; the sim numbers them after the NIC's PFs."""
    nic = state.config.nics[pf.nic]
    before = sum(p.totalvfs for p in nic.pfs[: pf.vhca_id])
    return len(nic.pfs) + before + (fn.vf_index or 0)


def _visible_name(nd: Netdev | None) -> str | None:
    """devlink reports a port's netdev only when it is in devlink's own netns."""
    return nd.name if nd is not None and nd.netns is None else None


# --- eswitch mode -------------------------------------------------------------------------------------------


def eswitch_mode(state: State, handle: DevlinkHandle) -> str:
    fn = _devlink_fn(state, handle)
    if fn.pf is not None:
        raise KernelError(E.EOPNOTSUPP, "not an eswitch manager (VF)")
    return state.pfs[fn.address].eswitch


def set_eswitch_mode(t: Txn, handle: DevlinkHandle, mode: str) -> None:
    state = t.state
    t.fault("eswitch_set", str(handle))
    fn = _devlink_fn(state, handle)
    if fn.pf is not None:
        raise KernelError(E.EOPNOTSUPP, "not an eswitch manager (VF)")
    if mode not in ("legacy", "switchdev"):
        raise KernelError(E.EINVAL, f"unknown eswitch mode {mode!r}")
    pf = state.pfs[fn.address]
    if pf.eswitch == mode:
        return
    if mode == "switchdev":
        bound = [vf.address for vf in vfs_of(state, pf.address) if vf.driver is not None]
        if bound and state.config.switchdev_requires_unbound_vfs:
            raise KernelError(E.EBUSY, f"Can't change mode, E-Switch is busy: VFs {', '.join(bound)} "
                              "are bound to a driver")
        _to_switchdev(state, pf)
    else:
        to_legacy(t, pf)


def _to_switchdev(state: State, pf: PfState) -> None:
    pf.eswitch = "switchdev"
    for fn in vfs_of(state, pf.address):
        add_rep(state, pf, fn.vf_index or 0)
    uplink = netdev_of(state, "pf", pf.address)
    if uplink is not None:
        uplink.hw_tc = True


def to_legacy(t: Txn, pf: PfState) -> None:
    state = t.state
    pf.eswitch = "legacy"
    for fn in vfs_of(state, pf.address):
        for dev in [d for d in state.vdpa.values() if d.vf == fn.address]:
            vdpa.remove(t, dev)
        fn.vnet = False
    for rep in reps_of(state, pf.address):
        netdev.remove_netdev(t, rep)
    uplink = netdev_of(state, "pf", pf.address)
    if uplink is not None:
        uplink.hw_tc = False


def add_rep(state: State, pf: PfState, index: int) -> None:
    if any(rep.vf == index for rep in reps_of(state, pf.address)):
        return
    name = f"{pf_netdev_name(state, pf)}_{index}"
    if netdev.find(state, None, name) is not None:
        name = netdev.free_name(state, None, "eth")
    mac = netdev.local_mac("rep", pf.address, index)
    netdev.add_netdev(state, Netdev(ifindex=0, name=name, kind="rep", mac=mac, pci=pf.address, vf=index, hw_tc=True,
                                    max_mtu=MLX5_MAX_MTU))


# --- ports and parameters -----------------------------------------------------------------------------------


def ports(state: State, handle: DevlinkHandle | None = None) -> list[DevlinkPort]:
    found: list[DevlinkPort] = []
    for fn in state.pci.values():
        if fn.driver != "mlx5_core":
            continue
        dl = DevlinkHandle.pci(PciAddress(fn.address))
        if handle is not None and dl != handle:
            continue
        if fn.pf is None:
            pf = state.pfs[fn.address]
            uplink = netdev_of(state, "pf", fn.address)
            found.append(DevlinkPort(dl, pf.vhca_id << 16 | UPLINK_VPORT, PortFlavour.PHYSICAL,
                                     netdev=_visible_name(uplink), number=pf.pfnum))
            if pf.eswitch == "switchdev":
                for rep in sorted(reps_of(state, fn.address), key=lambda n: n.vf or 0):
                    vf = rep.vf or 0
                    found.append(DevlinkPort(dl, pf.vhca_id << 16 | (vf + 1), PortFlavour.PCI_VF,
                                             netdev=_visible_name(rep), pfnum=pf.pfnum, vfnum=vf))
        else:
            pf = state.pfs[fn.pf]
            found.append(DevlinkPort(dl, _vf_vhca(state, pf, fn) << 16, PortFlavour.VIRTUAL,
                                     netdev=_visible_name(netdev_of(state, "vf", fn.address))))
    return sorted(found, key=lambda p: (str(p.handle), p.index))


def param(state: State, handle: DevlinkHandle, name: str) -> DevlinkParam:
    fn = _devlink_fn(state, handle)
    if name != "flow_steering_mode":
        raise KernelError(E.EINVAL, f"no parameter {name}")
    return DevlinkParam(name=name, value=fn.flow_steering, cmode="runtime")


def set_param(t: Txn, handle: DevlinkHandle, name: str, value: str | int | bool, cmode: str) -> None:
    state = t.state
    t.fault("param_set", str(handle))
    fn = _devlink_fn(state, handle)
    if name != "flow_steering_mode":
        raise KernelError(E.EINVAL, f"no parameter {name}")
    if not isinstance(value, str):
        raise KernelError(E.EINVAL, "flow_steering_mode is a string parameter")
    if value == "smfs":
        pf = state.pfs[fn.pf or fn.address]
        if not state.config.smfs_supported:
            raise KernelError(E.EOPNOTSUPP, "Software managed steering is not supported by current device")
        if fn.pf is None and pf.eswitch == "switchdev":
            raise KernelError(E.EOPNOTSUPP, "Software managed steering is not supported when eswitch "
                              "offloads enabled.")
    elif value != "dmfs":
        raise KernelError(E.EINVAL, 'Bad parameter: supported values are ["dmfs", "smfs"]')
    if cmode != "runtime":
        raise KernelError(E.EOPNOTSUPP, f"cmode {cmode} not supported")
    fn.flow_steering = value
