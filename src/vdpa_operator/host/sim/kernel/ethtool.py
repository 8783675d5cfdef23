"""ethtool (net/ethtool/ioctl.c `ethtool_get_drvinfo`, mlx5 en_ethtool.c, en_rep.c, en_main.c, virtio_net.c).

14. PF/VF netdevs: driver mlx5_core, version = kernel release (mlx5 sets none), bus-info = PCI address;
    representors: driver mlx5e_rep, empty bus-info; virtio netdevs: virtio_net 1.0.0, bus-info = vdpa name;
    lo: EOPNOTSUPP. Proven on kernel for the virtio netdev, also inside a pod netns
    (`test_contract_vdpa.py::test_virtio_binding_gives_a_virtio_net_netdev_that_moves_into_a_pod`); mlx5's
    answers: sim only.
15. hw-tc-offload: present on PF, VF and representor netdevs; off on the PF in legacy, on once it is the
    switchdev uplink (`wanted_features |= NETIF_F_HW_TC`) and on representors; absent (None) on virtio.
    Proven on kernel (netdevsim's PF): present and switchable, an unknown feature absent
    (`test_contract_switchdev.py::test_hw_tc_offload_feature_can_be_switched`); mlx5's defaults: sim only.
"""

from __future__ import annotations

import errno as E

from vdpa_operator.host.sim.kernel import netdev
from vdpa_operator.host.sim.kernel.errors import KernelError
from vdpa_operator.host.sim.kernel.txn import Txn
from vdpa_operator.host.sim.state import State
from vdpa_operator.host.types import DriverInfo


def driver_info(state: State, name: str, netns: str | None = None) -> DriverInfo:
    nd = netdev.get(state, name, netns)
    release, fw = state.config.kernel_release, state.config.fw_version
    if nd.kind in ("pf", "vf"):
        return DriverInfo("mlx5_core", release, fw, nd.pci or "")
    if nd.kind == "rep":
        return DriverInfo("mlx5e_rep", release, fw, "")
    if nd.kind == "virtio":
        return DriverInfo("virtio_net", "1.0.0", "", nd.vdpa or "")
    raise KernelError(E.EOPNOTSUPP, f"{name} has no driver information")


def feature(state: State, name: str, feature: str, netns: str | None = None) -> bool | None:
    nd = netdev.get(state, name, netns)
    return nd.hw_tc if feature == "hw-tc-offload" else None


def set_feature(t: Txn, name: str, feature: str, enabled: bool, netns: str | None = None) -> None:
    t.fault("feature_set", name)
    nd = netdev.get(t.state, name, netns, change=True)
    if feature != "hw-tc-offload" or nd.hw_tc is None:
        raise KernelError(E.EOPNOTSUPP, f"{name} has no changeable feature {feature}")
    nd.hw_tc = enabled
