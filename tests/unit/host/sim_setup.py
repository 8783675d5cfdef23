"""Set-up shared by the simulated-host unit tests (`test_sim_*.py`; `conftest.py` builds the default `kernel`
and `host` fixtures from it)."""

from __future__ import annotations

from pathlib import Path

from vdpa_operator.host.port import Host
from vdpa_operator.host.sim import SimKernel
from vdpa_operator.host.types import DevlinkHandle, EswitchMode, PciAddress, pci_address

PF0 = pci_address("0000:65:00.0")


def sim_kernel(tmp_path: Path, **options: object) -> SimKernel:
    """A simulated node under `tmp_path/host`, model only (no real netdevs); `options` go to `SimKernel.create`."""
    return SimKernel.create(tmp_path / "host", real_netdevs=False, **options)  # type: ignore[arg-type]


def to_switchdev(host: Host, numvfs: int = 4, pf: PciAddress = PF0) -> None:
    """Upstream's mlx5 order (§4.5): VFs in legacy, unbind them, switchdev, rebind."""
    host.pci.set_numvfs(pf, numvfs)
    vfs = host.pci.list_vfs(pf)
    for vf in vfs:
        host.pci.unbind(vf.address)
    host.devlink.set_eswitch_mode(DevlinkHandle.pci(pf), EswitchMode.SWITCHDEV)
    for vf in vfs:
        host.pci.bind_default(vf.address)
