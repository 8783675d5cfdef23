"""The rendered tree is read by the Linux adapter's own sysfs code, unchanged and without the model: a plain
`Sysfs` on `<root>/sys` (what another process or a container mount would have) sees what the sim's Host sees."""

from __future__ import annotations

from pathlib import Path

import pytest

from unit.host.sim_setup import to_switchdev
from vdpa_operator.host.linux.modules import KernelModules
from vdpa_operator.host.linux.pci import SysfsPci
from vdpa_operator.host.linux.rtnl import RtnlLinks
from vdpa_operator.host.linux.sysfs import Sysfs
from vdpa_operator.host.linux.vdpa import VdpaSysfs
from vdpa_operator.host.port import Host
from vdpa_operator.host.sim import SimKernel, sim_host
from vdpa_operator.host.types import (
    VdpaBinding,
    VdpaDriver,
    VdpaMgmtDev,
    pci_address,
)

PF0 = pci_address("0000:65:00.0")
NAME = "vdpa:0000:65:00.4"


@pytest.fixture
def host(kernel: SimKernel) -> Host:
    host = sim_host(kernel)
    host.modules.load("virtio_vdpa")
    host.modules.load("vhost_vdpa")
    to_switchdev(host)
    host.vdpa.create(NAME, VdpaMgmtDev("pci", "0000:65:00.4"))
    return host


def test_plain_sysfs_pci_sees_what_the_sim_host_sees(kernel: SimKernel, host: Host) -> None:
    plain = SysfsPci(Sysfs(kernel.sys_root))
    model = kernel.snapshot()  # host.pci is SysfsPci on the same tree too: compare both with the model as well
    assert [f.address for f in plain.list_functions()] == sorted(model.pci)
    assert [(f.address, f.driver) for f in plain.list_functions()] == [
        (fn.address, fn.driver) for fn in sorted(model.pci.values(), key=lambda fn: fn.address)]
    assert plain.list_functions() == host.pci.list_functions()
    assert plain.list_vfs(PF0) == host.pci.list_vfs(PF0)
    assert plain.sriov(PF0) == host.pci.sriov(PF0)
    assert set(plain.get_function(PF0).netdevs) == {"ens1f0", "ens1f0_0", "ens1f0_1", "ens1f0_2", "ens1f0_3"}


def test_plain_vdpa_sysfs_finds_the_virtio_netdev_and_the_vhost_chardev(kernel: SimKernel, host: Host) -> None:
    plain = VdpaSysfs(Sysfs(kernel.sys_root), kernel.dev_root)
    assert plain.binding(NAME) == VdpaBinding(driver="virtio_vdpa", virtio_netdev="eth0")
    host.vdpa.bind(NAME, VdpaDriver.VHOST)
    assert plain.binding(NAME) == VdpaBinding(driver="vhost_vdpa", vhost_chardev=str(kernel.dev_root / "vhost-vdpa-0"))


def test_rtnl_switch_port_reads_the_representor_attributes(kernel: SimKernel, host: Host) -> None:
    reader = RtnlLinks(Sysfs(kernel.sys_root))
    for name in ("ens1f0", "ens1f0_3", "ens1f0v3", "eth0", "lo"):
        assert reader.switch_port(name) == host.links.switch_port(name), name


def test_kernel_modules_reads_sys_module(kernel: SimKernel, host: Host, tmp_path: Path) -> None:
    modules = KernelModules(proc_root=tmp_path / "no-proc", sysfs=Sysfs(kernel.sys_root), modules_dir=tmp_path)
    assert modules.is_loaded("mlx5_vdpa") and modules.is_loaded("vhost-vdpa")
    assert not modules.is_loaded("vfio_pci")
    host.modules.load("vfio_pci")
    assert modules.is_loaded("vfio_pci")


def test_rtnl_speed_reads_what_the_sim_reports(kernel: SimKernel, host: Host) -> None:
    """PFs with carrier show their speed; a PF that is down, VFs, representors and virtio netdevs show none."""
    reader = RtnlLinks(Sysfs(kernel.sys_root))
    assert host.links.speed("ens1f0") == 100000
    host.links.set_up("ens1f1", False)
    for name in ("ens1f0", "ens1f1", "ens1f0_3", "ens1f0v3", "eth0", "lo", "no-such-link"):
        assert reader.speed(name) == host.links.speed(name), name
    assert host.links.speed("ens1f1") is None
