"""Wire the simulated host into one `Host`: the only place that knows which sim class implements which
Protocol. PCI discovery and vDPA binding are the Linux adapter's own sysfs code (`SysfsPci`, `VdpaSysfs`)
running on the simulated tree, device nodes its `DevfsNodes` on `<root>/dev`; udev rules are real files under
`<root>/etc/udev/rules.d`."""

from __future__ import annotations

import logging

from vdpa_operator.host.linux.pci import SysfsPci
from vdpa_operator.host.linux.udev import UdevRuleFiles
from vdpa_operator.host.port import Host, Ovs
from vdpa_operator.host.sim.devlink import SimDevlink
from vdpa_operator.host.sim.devnodes import SimDevNodes
from vdpa_operator.host.sim.ethtool import SimEthtool
from vdpa_operator.host.sim.kernel import SimKernel
from vdpa_operator.host.sim.modules import SimModules
from vdpa_operator.host.sim.rtnl import SimLinks
from vdpa_operator.host.sim.sysfs import SimSysfs
from vdpa_operator.host.sim.vdpa import SimVdpa

logger = logging.getLogger(__name__)


class SimUdev(UdevRuleFiles):
    """Rule files as on a real node; `reload` never reaches the machine's own udevd. The representors already
    carry the names the 20-switchdev rule gives (`<pf>_<vf>`), so there is nothing to re-run."""

    def reload(self) -> None:
        logger.debug("sim: udev rules in %s reloaded (nothing to do)", self.rules_dir)


def sim_host(kernel: SimKernel, *, ovs: Ovs | None = None) -> Host:
    sysfs = SimSysfs(kernel)
    return Host(
        pci=SysfsPci(sysfs),
        links=SimLinks(kernel),
        ethtool=SimEthtool(kernel),
        devlink=SimDevlink(kernel),
        vdpa=SimVdpa(sysfs),
        dev=SimDevNodes(kernel),
        modules=SimModules(kernel),
        udev=SimUdev(kernel.root / "etc/udev/rules.d"),
        ovs=ovs,
    )
