"""Wire the real-kernel adapters into one `Host`.

The only place that knows which class implements which Protocol on Linux. Roots are arguments, never
globals, so tests point the same code at generated trees (`sysfs_root`) or at a private OVSDB socket.
"""

from __future__ import annotations

from pathlib import Path

from vdpa_operator.host.linux.devlink import GenlDevlink
from vdpa_operator.host.linux.devnodes import DevfsNodes
from vdpa_operator.host.linux.ethtool import IoctlEthtool
from vdpa_operator.host.linux.modules import KernelModules
from vdpa_operator.host.linux.ovsdb import DEFAULT_REMOTE, connect_ovs
from vdpa_operator.host.linux.pci import SysfsPci
from vdpa_operator.host.linux.rtnl import RtnlLinks
from vdpa_operator.host.linux.sysfs import Sysfs
from vdpa_operator.host.linux.udev import UdevRuleFiles
from vdpa_operator.host.linux.vdpa import GenlVdpa
from vdpa_operator.host.port import Host


def linux_host(
    *,
    sysfs_root: str | Path = "/sys",
    dev_root: str | Path = "/dev",
    proc_root: str | Path = "/proc",
    udev_rules_dir: str | Path = "/etc/udev/rules.d",
    ovsdb_remote: str | None = DEFAULT_REMOTE,
) -> Host:
    """The Host of the machine this process runs on. `ovsdb_remote=None` (or an absent socket) gives no Ovs."""
    sysfs = Sysfs(sysfs_root)
    return Host(
        pci=SysfsPci(sysfs),
        links=RtnlLinks(sysfs),
        ethtool=IoctlEthtool(),
        devlink=GenlDevlink(),
        vdpa=GenlVdpa(sysfs, Path(dev_root)),
        dev=DevfsNodes(dev_root),
        modules=KernelModules(proc_root=str(proc_root), sysfs=sysfs),
        udev=UdevRuleFiles(str(udev_rules_dir)),
        ovs=connect_ovs(ovsdb_remote) if ovsdb_remote else None,
    )
