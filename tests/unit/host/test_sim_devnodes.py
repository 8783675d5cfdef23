"""The simulated host's `/dev` through the Host port (host/sim/kernel/modules.py rule 28, and vdpa.py for the char
device of rule 19): static
misc nodes from the start, `vhost-vdpa-<N>` while a device is bound to vhost_vdpa, and the stand-in file that
takes a node's place where mknod is not permitted."""

from __future__ import annotations

import os
import stat

from unit.host.sim_setup import to_switchdev
from vdpa_operator.host.port import Host
from vdpa_operator.host.sim import SimKernel
from vdpa_operator.host.types import VdpaDriver, VdpaMgmtDev, pci_address, vdpa_name

VF = pci_address("0000:65:00.4")


def test_vhost_net_and_tun_exist_on_a_fresh_node(host: Host, kernel: SimKernel) -> None:
    for name, rdev in (("vhost-net", (10, 238)), ("net/tun", (10, 200))):
        path = host.dev.char_device(name)
        assert path == str(kernel.dev_root / name)
        st = os.stat(path)
        if stat.S_ISCHR(st.st_mode):
            assert (os.major(st.st_rdev), os.minor(st.st_rdev)) == rdev
        else:  # no CAP_MKNOD
            assert (kernel.dev_root / name).read_text() == f"{rdev[0]}:{rdev[1]}\n"


def test_vhost_vdpa_node_comes_and_goes_with_the_binding(host: Host, kernel: SimKernel) -> None:
    host.modules.load("vhost_vdpa")
    to_switchdev(host, 4)
    assert host.dev.char_device("vhost-vdpa-0") is None
    host.vdpa.create(vdpa_name(VF), VdpaMgmtDev("pci", VF))
    assert host.vdpa.binding(vdpa_name(VF)).driver == VdpaDriver.VHOST
    assert host.dev.char_device("vhost-vdpa-0") == str(kernel.dev_root / "vhost-vdpa-0")
    host.vdpa.delete(vdpa_name(VF))
    assert host.dev.char_device("vhost-vdpa-0") is None


def test_a_stand_in_file_counts_and_other_files_do_not(host: Host, kernel: SimKernel) -> None:
    """Without CAP_MKNOD the sim writes `major:minor` in a plain file; that is its char device. Any other file is
    not one, as on Linux."""
    (kernel.dev_root / "stand-in").write_text("246:7\n")
    (kernel.dev_root / "plain").write_text("hello\n")
    assert host.dev.char_device("stand-in") == str(kernel.dev_root / "stand-in")
    assert host.dev.char_device("plain") is None
    assert host.dev.char_device("net") is None  # a directory
    assert host.dev.char_device("no-such-node") is None
