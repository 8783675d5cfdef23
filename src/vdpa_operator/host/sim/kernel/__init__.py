"""A ConnectX-6 Dx host as the kernel shows it: the state, the rules, and the errno (the simulated kernel).

`SimKernel.create(root, nics=…)` makes a host under `root`; `SimKernel.open(root)` attaches another process or
a restarted one to it. The adapters in `host/sim/` (`sysfs`, `devlink`, `vdpa`, `rtnl`, `ethtool`, `modules`,
`devnodes`) are thin: every rule lives in this package, one module per kernel subsystem, each listing its
rules (numbered 1–31 across the package) with the kernel source they follow:

    pci.py       PCI and SR-IOV, mlx5_core probe and remove (1–4, 6, 7)
    drivers.py   the driver core of the pci and vdpa buses: bind, unbind, override, probe (5, 21)
    eswitch.py   devlink: eswitch mode, representors, ports, parameters (8–13)
    ethtool.py   driver info and features (14, 15)
    vdpa.py      the vdpa genl family, management devices, devices, bus drivers (16–20, 29, 30)
    netdev.py    links per netns: names, state, moves, VF MACs, netns, privileged mode's veths (22, 24–26, 31)
    routes.py    addresses and routes (23)
    modules.py   modules and what loading them does; static /dev nodes (27, 28)
    store.py     persistence: state.json under a lock, the sysfs tree rendered from it
    codec.py     state.json's text, re-encoding only the objects that changed
    simkernel.py `SimKernel`: lifecycle and the entry points, each a transaction around one rule

Sources are Debian's linux-source-6.1 (6.1.192); "inference" marks what the sources do not show. Each rule
says where the real kernel shows it: "proven on kernel" names the test that asserts it in the QEMU tier
(tests/kernel boots Debian's 6.1 there and runs tests/contract on netdevsim and vdpa_sim_net, one assertion
set for both beds); "kernel cannot show" says why the bed cannot (mostly: netdevsim and vdpa_sim_net are not
mlx5); "sim only" marks what no kernel test asserts yet.
"""

from vdpa_operator.host.sim.kernel.errors import FamilyMissing, KernelError, host_error, host_errors
from vdpa_operator.host.sim.kernel.simkernel import SimKernel
from vdpa_operator.host.sim.kernel.store import LOCK_FILE, PENDING_MARKER, STATE_FILE

__all__ = [
    "LOCK_FILE",
    "PENDING_MARKER",
    "STATE_FILE",
    "FamilyMissing",
    "KernelError",
    "SimKernel",
    "host_error",
    "host_errors",
]
