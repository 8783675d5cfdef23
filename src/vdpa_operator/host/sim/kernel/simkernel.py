"""`SimKernel`: one simulated host, its lifecycle, and its entry points — each a transaction (`store.py`)
around one rule of a subsystem module, where the rules and the errno live."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

from vdpa_operator.host.sim.faults import Faults
from vdpa_operator.host.sim.kernel import drivers, eswitch, ethtool, netdev, pci, vdpa
from vdpa_operator.host.sim.kernel import modules as kmodules
from vdpa_operator.host.sim.kernel import routes as ip_routes
from vdpa_operator.host.sim.kernel.store import STATE_FILE, StateStore
from vdpa_operator.host.sim.kernel.txn import Effects, Txn
from vdpa_operator.host.sim.state import DEFAULT_NICS, Config, NicSpec, State, from_json, to_json

P = ParamSpec("P")
R = TypeVar("R")


def _changes(rule: Callable[Concatenate[Txn, P], R]) -> Callable[Concatenate[SimKernel, P], R]:
    """The entry point of a rule that may change the host: one transaction around it."""

    @functools.wraps(rule)
    def entry(self: SimKernel, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with self._changing() as t:
            return rule(t, *args, **kwargs)

    return entry


def _reads(rule: Callable[Concatenate[State, P], R]) -> Callable[Concatenate[SimKernel, P], R]:
    """The entry point of a query: the state as the file shows it, nothing written."""

    @functools.wraps(rule)
    def entry(self: SimKernel, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with self._store.reading() as state:
            return rule(state, *args, **kwargs)

    return entry


class SimKernel:
    """One simulated host rooted at a directory. Thread-safe; several processes may attach to one root."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.sys_root = self.root / "sys"
        self.dev_root = self.root / "dev"
        self._effects = Effects(self.tick)
        self._store = StateStore(self.root, lambda state: pci.materialise_due(Txn(state, self._effects)))
        self.faults = Faults(self._store.transaction)

    # --- lifecycle ----------------------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        root: str | os.PathLike[str],
        nics: Sequence[NicSpec] = DEFAULT_NICS,
        *,
        modules: Sequence[str] = kmodules.DEFAULT_MODULES,
        vdpa_config_attrs: Sequence[str] = vdpa.CONFIG_ATTRS,
        vdpa_attr_set: bool = True,
        switchdev_requires_unbound_vfs: bool = True,
        vf_create_delay: float = 0.0,
        node_netns: str | None = None,
        real_netdevs: bool | None = None,
        kernel_release: str = "6.1.0-sim",
        smfs_supported: bool = True,
        max_virtio_queues: int = 256,
    ) -> SimKernel:
        """A fresh host: NICs with their PFs bound to mlx5_core, legacy, no VFs. `real_netdevs` (default: root
        and a `node_netns` given) backs virtio netdevs and their representors with real veth pairs there."""
        root = Path(root)
        if (root / STATE_FILE).exists():
            raise FileExistsError(f"{root / STATE_FILE} exists: attach with SimKernel.open()")
        unknown = set(vdpa_config_attrs) - set(vdpa.CONFIG_ATTRS)
        if unknown:
            raise ValueError(f"unknown vdpa config attributes {sorted(unknown)}; known: "
                             f"{', '.join(vdpa.CONFIG_ATTRS)}")
        if real_netdevs is None:
            real_netdevs = os.geteuid() == 0 and node_netns is not None
        if real_netdevs and node_netns is None:
            raise ValueError("real_netdevs needs node_netns: the real netns that stands for the node")
        config = Config(
            nics=list(nics), kernel_release=kernel_release, vdpa_config_attrs=list(vdpa_config_attrs),
            vdpa_attr_set=vdpa_attr_set, switchdev_requires_unbound_vfs=switchdev_requires_unbound_vfs,
            vf_create_delay=vf_create_delay, max_virtio_queues=max_virtio_queues, smfs_supported=smfs_supported,
            node_netns=node_netns, real_netdevs=real_netdevs,
        )
        state = State(config=config)
        lo = netdev.loopback(None)
        lo.up = True
        state.netdevs.append(lo)
        for module in modules:
            kmodules.with_dependencies(state, module)
        for nic_index, nic in enumerate(config.nics):
            pci.add_nic(state, nic_index, nic)
        kernel = cls(root)
        kernel._store.create(state)
        return kernel

    @classmethod
    def open(cls, root: str | os.PathLike[str]) -> SimKernel:
        """Attach to an existing simulated host (another process's, or one this process made before kill -9)."""
        root = Path(root)
        if not (root / STATE_FILE).exists():
            raise FileNotFoundError(f"no simulated host at {root} (no {STATE_FILE}); create it first")
        kernel = cls(root)
        kernel._store.attach()
        return kernel

    def snapshot(self) -> State:
        """A copy of the current state (for tests and for rendering)."""
        with self._store.transaction() as state:
            return from_json(to_json(state))

    @property
    def config(self) -> Config:
        return self.snapshot().config

    def tick(self) -> None:
        """Let time pass: VFs whose creation was delayed appear once due. Cheap when nothing is pending."""
        if self._store.pending():
            with self._store.transaction():
                pass

    @contextmanager
    def _changing(self) -> Iterator[Txn]:
        with self._store.transaction() as state:
            yield Txn(state, self._effects)

    # --- entry points, by subsystem -----------------------------------------------------------------------

    # modules.py
    is_loaded = _reads(kmodules.is_loaded)
    load_module = _changes(kmodules.load)
    unload_module = _changes(kmodules.unload)

    # pci.py: SR-IOV
    write_sriov_numvfs = _changes(pci.write_sriov_numvfs)
    write_sriov_autoprobe = _changes(pci.write_sriov_autoprobe)

    # drivers.py: the driver core of both buses
    write_bind = _changes(drivers.write_bind)
    write_unbind = _changes(drivers.write_unbind)
    write_driver_override = _changes(drivers.write_driver_override)
    write_probe = _changes(drivers.write_probe)
    write_autoprobe = _changes(drivers.write_autoprobe)

    # eswitch.py: devlink
    eswitch_mode = _reads(eswitch.eswitch_mode)
    set_eswitch_mode = _changes(eswitch.set_eswitch_mode)
    devlink_ports = _reads(eswitch.ports)
    devlink_param = _reads(eswitch.param)
    set_devlink_param = _changes(eswitch.set_param)

    # vdpa.py
    vdpa_mgmtdevs = _reads(vdpa.mgmtdevs)
    vdpa_devices = _reads(vdpa.devices)
    vdpa_device = _reads(vdpa.device)
    vdpa_dev_new = _changes(vdpa.dev_new)
    vdpa_dev_del = _changes(vdpa.dev_del)
    vdpa_dev_attr_set = _changes(vdpa.dev_attr_set)
    vdpa_dev_config = _reads(vdpa.dev_config)

    # netdev.py and routes.py: rtnetlink
    links = _reads(netdev.links)
    link = _reads(netdev.link)
    switch_port = _reads(netdev.node_switch_port)
    link_speed = _reads(netdev.node_link_speed)
    vf_macs = _reads(netdev.vf_macs)
    set_link_up = _changes(netdev.set_link_up)
    set_link_mtu = _changes(netdev.set_link_mtu)
    set_link_mac = _changes(netdev.set_link_mac)
    rename_link = _changes(netdev.rename_link)
    move_link = _changes(netdev.move_link)
    set_vf_mac = _changes(netdev.set_vf_mac)
    netns_deleted = _changes(netdev.netns_deleted)
    addresses = _reads(ip_routes.addresses)
    routes = _reads(ip_routes.routes)
    add_address = _changes(ip_routes.add_address)
    add_route = _changes(ip_routes.add_route)

    # ethtool.py
    driver_info = _reads(ethtool.driver_info)
    feature = _reads(ethtool.feature)
    set_feature = _changes(ethtool.set_feature)

    def netns_exists(self, netns: str) -> bool:
        """Rule 31 (netdev.py): the model's answer, or the real kernel's for a path outside the model."""
        with self._store.reading() as state:
            real, ns = state.config.real_netdevs, netdev.ns(state, netns)
        return netdev.netns_exists(real, ns)
