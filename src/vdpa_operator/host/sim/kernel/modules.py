"""Kernel modules (kernel/module/main.c, kmod): what is loaded, loading with dependencies, and what loading or
unloading a driver's module does to the devices it matches. The `Modules` port adapter is `../modules.py`.

27. Loading resolves dependencies (vhost_vdpa → vdpa, vhost, vhost_iotlb); unknown → ENOENT; unloading a
    module in use → EAGAIN (EWOULDBLOCK, `delete_module`). Sim only: no kernel-tier test asserts it.
28. `/dev/vhost-net` (10:238) and `/dev/net/tun` (10:200) always exist, loaded module or not: systemd-tmpfiles
    creates them at boot from the `devname:` aliases of vhost_net and tun (opening one loads its module).
    Inference for nodes without systemd (the kernel bed's guest has neither until the module is loaded).
    Rendered by `tree.py` (`STATIC_NODES`). Kernel cannot show (the guest has no systemd).
"""

from __future__ import annotations

import errno as E

from vdpa_operator.host.sim.kernel import pci, vdpa
from vdpa_operator.host.sim.kernel.errors import KernelError
from vdpa_operator.host.sim.kernel.txn import Txn
from vdpa_operator.host.sim.state import PCI_DRIVER_MODULES, VDPA_BUS_DRIVERS, State

MODULE_DEPS: dict[str, tuple[str, ...]] = {
    "mlx5_core": (), "vdpa": (), "mlx5_vdpa": ("vdpa", "mlx5_core"), "virtio_vdpa": ("vdpa",),
    "vhost_vdpa": ("vdpa", "vhost", "vhost_iotlb"), "vhost": (), "vhost_iotlb": (), "virtio_net": (),
    "vfio_pci": ("vfio",), "vfio": (), "openvswitch": (), "veth": (),
}
DEFAULT_MODULES = ("mlx5_core", "vdpa", "mlx5_vdpa", "virtio_net")
"""Loaded at boot on a CX-6 Dx node (mlx5_vdpa auto-loads through its auxiliary alias); the operator loads
virtio_vdpa/vhost_vdpa itself (upstream §4.5)."""


def with_dependencies(state: State, module: str) -> list[str]:
    """Load `module` and its dependencies into `state`; the names newly loaded, in order."""
    loaded: list[str] = []
    for dep in MODULE_DEPS.get(module, ()):
        if dep not in state.modules:
            loaded += with_dependencies(state, dep)
    if module not in state.modules:
        state.modules.append(module)
        loaded.append(module)
    return loaded


def is_loaded(state: State, module: str) -> bool:
    return module in state.modules


def load(t: Txn, module: str) -> None:
    state = t.state
    if module in state.modules:
        return
    t.fault("module_load", module)
    if module not in MODULE_DEPS:
        raise KernelError(E.ENOENT, f"module {module} not found in directory /lib/modules")
    for name in with_dependencies(state, module):
        _loaded(t, name)


def unload(t: Txn, module: str) -> None:
    """`rmmod` (not on the Host port: the operator never unloads; tests use it to model absent modules)."""
    state = t.state
    module = module.replace("-", "_")
    if module not in state.modules:
        raise KernelError(E.ENOENT, f"module {module} is not currently loaded")
    users = [m for m in state.modules if module in MODULE_DEPS.get(m, ())]
    if users:
        raise KernelError(E.EAGAIN, f"module {module} is in use by: {' '.join(users)}")
    if module == "vdpa" and state.vdpa:
        raise KernelError(E.EAGAIN, "module vdpa is in use")
    _unloading(t, module)
    state.modules.remove(module)


def _loaded(t: Txn, module: str) -> None:
    """Driver registration: a new driver attaches to unbound devices it matches (`driver_attach`)."""
    state = t.state
    pci_driver = next((d for d, m in PCI_DRIVER_MODULES.items() if m == module), None)
    if pci_driver is not None and state.pci_autoprobe:
        for fn in sorted(state.pci.values(), key=lambda f: f.address):
            if fn.driver is None and pci.matches(fn, pci_driver):
                pci.attach(t, fn, pci_driver)
    if module in VDPA_BUS_DRIVERS and state.vdpa_autoprobe:
        for dev in sorted(state.vdpa.values(), key=lambda d: d.name):
            if dev.driver is None and dev.driver_override in (None, module):
                vdpa.attach(t, dev, module, autoprobe=True)


def _unloading(t: Txn, module: str) -> None:
    state = t.state
    pci_driver = next((d for d, m in PCI_DRIVER_MODULES.items() if m == module), None)
    if pci_driver is not None:
        for fn in sorted(state.pci.values(), key=lambda f: f.address):
            if fn.driver == pci_driver and fn.address in state.pci:
                pci.detach(t, fn)
    if module in VDPA_BUS_DRIVERS:
        for dev in state.vdpa.values():
            if dev.driver == module:
                vdpa.detach(t, dev)
    if module == "mlx5_vdpa":
        for dev in list(state.vdpa.values()):
            vdpa.remove(t, dev)
