"""A simulated host with ConnectX-6 Dx NICs: a kernel model that keeps a sysfs tree in the kernel's layout and
reproduces the side effects and errno of mlx5, devlink and vdpa, so the Linux sysfs code reads it unchanged.

`SimKernel` is the model: the `kernel` package, one module per kernel subsystem, lists every behaviour it
claims; `sim_host` (factory.py) wires it into a `Host`."""

from vdpa_operator.host.sim.factory import sim_host
from vdpa_operator.host.sim.kernel import SimKernel
from vdpa_operator.host.sim.state import NicSpec, PfSpec

__all__ = ["NicSpec", "PfSpec", "SimKernel", "sim_host"]
