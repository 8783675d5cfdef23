"""vDPA (drivers/vdpa/vdpa.c `vdpa_nl_cmd_dev_add_set_doit`, mlx5/net/mlx5_vnet.c, drivers/base/bus.c): the
`vdpa` genl family, management devices, devices and what binding them gives. The bus's bind/unbind writes are
the driver core's (`drivers.py`).

16. `vdpa` family present iff module vdpa is loaded; a management device `pci/<VF>` per VF that mlx5_core
    probed while its PF was in switchdev, while mlx5_vdpa is loaded (supported_classes net, max_supported_vqs
    = max_num_virtio_queues + 1). Proven on kernel that a management device is listed
    (`test_contract_vdpa.py::test_management_device_is_listed`, vdpa_sim_net's); which VFs have one: sim only
    (the kernel bed's management device has no VF parent).
17. DEV_NEW, in the kernel's order: max_vqp 0 → EINVAL; unknown mgmtdev (or bus mismatch) → ENODEV; config
    attributes beyond the mgmtdev's mask → EOPNOTSUPP (mask configurable: MAC only for old kernels);
    a device already on that VF → ENOSPC (checked before the name, so the same name twice on one VF is
    ENOSPC); max_vqp > max_vqs/2 → EINVAL; duplicate name → EEXIST (`__vdpa_register_device`).
    max_vqs = 2 × max_vqp (default 1 pair) + 1 control queue; vendor 0x15b3; max_vq_size 256.
    MAC: the given one, else the VF's vport (administrative) MAC; none → virtio_net picks one.
    Proven on kernel: ENODEV, EEXIST, and EOPNOTSUPP for max_vqp where the mask lacks it (the adapter's retry
    without it succeeds) (`test_contract_vdpa.py::test_unknown_management_device_is_enodev`,
    `::test_duplicate_name_is_eexist`, `::test_upstream_create_with_max_vqp_32_succeeds`). ENOSPC: kernel
    cannot show (vdpa_sim_net takes many devices per management device).
18. After DEV_NEW the bus probes (drivers_autoprobe 1): the first loaded of virtio_vdpa/vhost_vdpa binds;
    loading a bus driver later binds unbound devices (`driver_attach`, `modules.py`). Sim only: the kernel
    bed binds explicitly.
19. virtio_vdpa: `virtio<N>` (lowest free index) under the VF PCI dir (mlx5: parent is the DMA device) with a
    virtio_net netdev `eth<k>` (lowest free); MTU limit = the device MTU (VIRTIO_NET_F_MTU).
    vhost_vdpa: `vhost-vdpa-<minor>` under the vdpa device, minor from its own IDA, `/dev/vhost-vdpa-<minor>`.
    Proven on kernel: the virtio_net netdev and the char device under /dev
    (`test_contract_vdpa.py::test_virtio_binding_gives_a_virtio_net_netdev_that_moves_into_a_pod`,
    `::test_vhost_binding_gives_a_char_device`, `::test_the_vhost_char_device_is_a_dev_node_while_bound`,
    `::test_rebinding_virtio_to_vhost_removes_the_netdev`); the VF parent: sim only.
20. DEV_DEL: missing → ENODEV; unbinds first (netdev / char device go away). Proven on kernel
    (`test_contract_vdpa.py::test_delete_of_a_missing_device_is_nothing_to_do`,
    `::test_deleting_a_bound_device_removes_what_it_gave`).
29. DEV_ATTR_SET (MAC), in the kernel's order: a kernel without the command (`vdpa_attr_set` False, i.e. before
    ≈6.12) → EOPNOTSUPP whatever the request (genl rejects an unknown cmd first); MAC not 6 bytes → EINVAL
    (attribute policy); unknown device → ENODEV. It changes the config-space MAC only: a bound virtio_net
    netdev keeps the MAC it read at probe and shows the new one after a rebind (inference: virtio_net reads it
    once). mlx5's MPFS update is not modelled. Proven on kernel for 6.1's EOPNOTSUPP
    (`test_contract_vdpa.py::test_set_mac_takes_effect_where_the_kernel_has_attr_set`); the ≥6.12 half:
    kernel cannot show (the guest runs 6.1).
30. DEV_CONFIG_GET: unknown device → ENODEV; the MAC and MTU given to DEV_NEW read back. mlx5 offers
    VIRTIO_NET_F_MAC only when the device has a MAC (the given one or the VF's administrative one at DEV_NEW),
    and F_MTU, MQ and F_STATUS always (inference from mlx5_vnet.c): MAC absent without one; MTU, max_vqp (1
    unless DEV_NEW asked for more) and the link status always there, the link up while the VF's vport is,
    i.e. while its representor is admin up (rule 23). Proven on kernel with vdpa_sim_net: ENODEV and the MAC
    and MTU read back (`test_contract_vdpa.py::test_net_config_shows_what_the_device_was_created_with`); mlx5's
    feature choices: sim only.
"""

from __future__ import annotations

import errno as E
import logging
from collections.abc import Iterable

from vdpa_operator.host.port import NO_CONFIG
from vdpa_operator.host.sim import faults
from vdpa_operator.host.sim.kernel import netdev
from vdpa_operator.host.sim.kernel.errors import FamilyMissing, KernelError
from vdpa_operator.host.sim.kernel.txn import Txn
from vdpa_operator.host.sim.state import MELLANOX, VDPA_BUS_DRIVERS, Netdev, PciFn, State, VdpaDev, reps_of
from vdpa_operator.host.types import VdpaConfig, VdpaDevice, VdpaMgmtDev, VdpaNetConfig

logger = logging.getLogger(__name__)

CONFIG_ATTRS = ("mac", "mtu", "max_vqp")
VIRTIO_NET_ID = 1
VDPA_MAX_VQ_SIZE = 256


def _family(state: State) -> None:
    if "vdpa" not in state.modules:
        raise FamilyMissing(E.ENOENT, "generic netlink family vdpa not registered (module vdpa not loaded)")


def _mgmtdev_vfs(state: State) -> list[PciFn]:
    if "mlx5_vdpa" not in state.modules or "vdpa" not in state.modules:
        return []
    return sorted((fn for fn in state.pci.values()
                   if fn.pf is not None and fn.driver == "mlx5_core" and fn.vnet
                   and state.pfs[fn.pf].eswitch == "switchdev"), key=lambda f: f.address)


def _value(dev: VdpaDev) -> VdpaDevice:
    return VdpaDevice(name=dev.name, mgmtdev=VdpaMgmtDev("pci", dev.vf), device_id=VIRTIO_NET_ID,
                      vendor_id=int(MELLANOX, 16), max_vqs=dev.nvqs, max_vq_size=VDPA_MAX_VQ_SIZE)


def _lowest_free(used: Iterable[int | None]) -> int:
    """The lowest index not in `used` (an IDA's `ida_alloc`)."""
    taken = {i for i in used if i is not None}
    return min(set(range(len(taken) + 1)) - taken)


# --- genl: reading ------------------------------------------------------------------------------------------


def mgmtdevs(state: State) -> list[VdpaMgmtDev]:
    _family(state)
    return [VdpaMgmtDev("pci", fn.address, supported_classes=1 << VIRTIO_NET_ID,
                        max_vqs=state.config.max_virtio_queues + 1) for fn in _mgmtdev_vfs(state)]


def devices(state: State) -> list[VdpaDevice]:
    _family(state)
    return [_value(dev) for dev in sorted(state.vdpa.values(), key=lambda d: d.name)]


def device(state: State, name: str) -> VdpaDevice:
    _family(state)
    dev = state.vdpa.get(name)
    if dev is None:
        raise KernelError(E.ENODEV, "device not found")
    return _value(dev)


def dev_config(state: State, name: str) -> VdpaNetConfig:
    _family(state)
    dev = state.vdpa.get(name)
    if dev is None:
        raise KernelError(E.ENODEV, "device not found")
    fn = state.pci[dev.vf]
    rep = next((n for n in reps_of(state, fn.pf or "") if n.vf == fn.vf_index), None)
    return VdpaNetConfig(mac=dev.mac, mtu=dev.mtu, max_vqp=dev.max_vqp or 1, link_up=rep is not None and rep.up)


# --- genl: changing -----------------------------------------------------------------------------------------


def dev_new(t: Txn, name: str, mgmtdev: VdpaMgmtDev, config: VdpaConfig = NO_CONFIG) -> None:
    state = t.state
    _family(state)
    t.fault("vdpa_dev_new", name)
    if not name:
        raise KernelError(E.EINVAL, "device name is required")
    if config.mac is not None and not netdev.MAC_RE.fullmatch(config.mac.lower()):
        raise KernelError(E.EINVAL, f"invalid MAC {config.mac}")  # the attribute policy: 6 bytes
    if config.max_vqp is not None and config.max_vqp == 0:
        raise KernelError(E.EINVAL, "At least one pair of VQs is required")
    vf = next((fn for fn in _mgmtdev_vfs(state) if mgmtdev.bus == "pci" and fn.address == mgmtdev.name), None)
    if vf is None:
        raise KernelError(E.ENODEV, "Fail to find the specified management device")
    asked = {attr for attr in CONFIG_ATTRS if getattr(config, attr) is not None}
    if asked - set(state.config.vdpa_config_attrs):
        raise KernelError(E.EOPNOTSUPP, "All provided attributes are not supported")
    if any(dev.vf == vf.address for dev in state.vdpa.values()):
        raise KernelError(E.ENOSPC, f"{vf.address} already has a vdpa device (mlx5: one per VF)")
    max_vqs = state.config.max_virtio_queues
    if config.max_vqp is not None and config.max_vqp > max_vqs // 2:
        raise KernelError(E.EINVAL, f"max_vqp {config.max_vqp} > {max_vqs // 2}")
    if name in state.vdpa:
        raise KernelError(E.EEXIST, f"vdpa device {name} exists")
    pf = state.pfs[vf.pf or ""]
    vport_mac = pf.vf_macs.get(str(vf.vf_index), netdev.ZERO_MAC)
    mac = config.mac.lower() if config.mac else (vport_mac if vport_mac != netdev.ZERO_MAC else None)
    pairs = config.max_vqp or 1
    dev = VdpaDev(name=name, vf=vf.address, mac=mac, mtu=config.mtu or 1500, max_vqp=config.max_vqp,
                  nvqs=2 * pairs + 1)
    state.vdpa[name] = dev
    if state.vdpa_autoprobe:
        probe(t, dev)


def dev_del(t: Txn, name: str) -> None:
    _family(t.state)
    t.fault("vdpa_dev_del", name)
    dev = t.state.vdpa.get(name)
    if dev is None:
        raise KernelError(E.ENODEV, "device not found")
    remove(t, dev)


def dev_attr_set(t: Txn, name: str, mac: str) -> None:
    state = t.state
    _family(state)
    if not state.config.vdpa_attr_set:
        raise KernelError(E.EOPNOTSUPP, "no such command (VDPA_CMD_DEV_ATTR_SET needs Linux 6.12)")
    t.fault("vdpa_attr_set", name)
    mac = mac.lower()
    if not netdev.MAC_RE.fullmatch(mac):
        raise KernelError(E.EINVAL, f"invalid MAC {mac}")  # the attribute policy: 6 bytes
    dev = state.vdpa.get(name)
    if dev is None:
        raise KernelError(E.ENODEV, "device not found")
    dev.mac = mac


def remove(t: Txn, dev: VdpaDev) -> None:
    """The device goes (DEV_DEL, or its management device went): unbound first."""
    if dev.driver is not None:
        detach(t, dev)
    t.state.vdpa.pop(dev.name, None)


# --- the bus: what binding gives ----------------------------------------------------------------------------


def probe(t: Txn, dev: VdpaDev) -> None:
    """The first loaded bus driver that matches (load order = registration order)."""
    for driver in [m for m in t.state.modules if m in VDPA_BUS_DRIVERS]:
        if dev.driver_override in (None, driver):
            attach(t, dev, driver, autoprobe=True)
            return


def attach(t: Txn, dev: VdpaDev, driver: str, *, autoprobe: bool = False) -> None:
    state = t.state
    if autoprobe and faults.take(state, "vdpa_bind", dev.name) is not None:
        logger.debug("sim: probe of vdpa %s by %s failed (injected); left unbound", dev.name, driver)
        return
    if driver == "virtio_vdpa":
        dev.virtio = _lowest_free(d.virtio for d in state.vdpa.values())
        nd = Netdev(ifindex=0, name=netdev.free_name(state, None, "eth"), kind="virtio",
                    mac=dev.mac or netdev.local_mac("virtio", dev.name), mtu=dev.mtu, max_mtu=dev.mtu,
                    pci=dev.vf, vdpa=dev.name)
        netdev.add_netdev(state, nd)
        if state.config.real_netdevs:
            netdev.real_pair_create(t, nd)
    else:
        dev.vhost_minor = _lowest_free(d.vhost_minor for d in state.vdpa.values())
    dev.driver = driver


def detach(t: Txn, dev: VdpaDev) -> None:
    if dev.driver == "virtio_vdpa":
        nd = next((n for n in t.state.netdevs if n.kind == "virtio" and n.vdpa == dev.name), None)
        if nd is not None:
            netdev.remove_netdev(t, nd)
    dev.driver, dev.virtio, dev.vhost_minor = None, None, None
