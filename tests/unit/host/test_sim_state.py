"""One simulated host, many attachments: state shared through `<root>/state.json` between `SimKernel`
instances and processes, reconstruction after a crash, and fault injection that crosses process boundaries."""

from __future__ import annotations

import errno
import json
import multiprocessing
import shutil
import time
from pathlib import Path

import pytest

from unit.host.sim_setup import sim_kernel
from vdpa_operator.host.errors import DeviceBusy, HostError, KernelModuleMissing, NoSpace
from vdpa_operator.host.sim import SimKernel, sim_host
from vdpa_operator.host.sim.faults import OPS
from vdpa_operator.host.sim.state import from_json, to_json
from vdpa_operator.host.sim.sysfs import SimSysfs
from vdpa_operator.host.types import DevlinkHandle, EswitchMode, VdpaMgmtDev, pci_address

PF0 = pci_address("0000:65:00.0")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    sim_kernel(tmp_path)
    return tmp_path / "host"


def test_create_refuses_an_existing_root_and_open_needs_one(root: Path, tmp_path: Path) -> None:
    with pytest.raises(FileExistsError):
        SimKernel.create(root)
    with pytest.raises(FileNotFoundError):
        SimKernel.open(tmp_path / "nothing")


def test_two_attachments_see_each_others_changes(root: Path) -> None:
    a, b = sim_host(SimKernel.open(root)), sim_host(SimKernel.open(root))
    a.pci.set_numvfs(PF0, 3)
    assert len(b.pci.list_vfs(PF0)) == 3
    b.links.set_mtu("ens1f0", 9000)
    assert a.links.get("ens1f0").mtu == 9000


def _child(root: str, queue: multiprocessing.Queue[object]) -> None:
    host = sim_host(SimKernel.open(root))
    host.pci.set_numvfs(PF0, 2)
    for vf in host.pci.list_vfs(PF0):
        host.pci.unbind(vf.address)
    host.devlink.set_eswitch_mode(DevlinkHandle.pci(PF0), EswitchMode.SWITCHDEV)
    queue.put([p.netdev for p in host.devlink.ports(DevlinkHandle.pci(PF0))])


def test_another_process_shares_the_host(root: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[object] = ctx.Queue()
    child = ctx.Process(target=_child, args=(str(root), queue))
    child.start()
    ports = queue.get(timeout=60)
    child.join(60)
    assert child.exitcode == 0
    assert ports == ["ens1f0_0", "ens1f0_1", "ens1f0"]
    host = sim_host(SimKernel.open(root))
    assert host.devlink.eswitch_mode(DevlinkHandle.pci(PF0)) == EswitchMode.SWITCHDEV
    assert host.links.switch_port("ens1f0_1") is not None


def _hammer(root: str, vf: int) -> None:
    host = sim_host(SimKernel.open(root))
    for i in range(20):
        host.links.set_vf_mac("ens1f0", vf, f"02:00:00:00:{vf:02x}:{i:02x}")


def test_concurrent_writers_do_not_lose_updates(root: Path) -> None:
    """Two processes change different parts of the state 20 times each: with a lock around load-mutate-save
    every change lands (a lost update would leave one VF's MAC behind or skip a generation)."""
    sim_host(SimKernel.open(root)).pci.set_numvfs(PF0, 2)
    before = SimKernel.open(root).snapshot().generation
    ctx = multiprocessing.get_context("spawn")
    children = [ctx.Process(target=_hammer, args=(str(root), vf)) for vf in (0, 1)]
    for child in children:
        child.start()
    for child in children:
        child.join(120)
        assert child.exitcode == 0
    state = from_json(json.loads((root / "state.json").read_text()))
    assert state.pfs["0000:65:00.0"].vf_macs == {"0": "02:00:00:00:00:13", "1": "02:00:00:00:01:13"}
    assert state.generation == before + 40


def test_a_restarted_process_rebuilds_the_tree(root: Path) -> None:
    host = sim_host(SimKernel.open(root))
    host.pci.set_numvfs(PF0, 2)
    shutil.rmtree(root / "sys")  # what a crash mid-render might leave, at worst
    host = sim_host(SimKernel.open(root))
    assert [vf.address for vf in host.pci.list_vfs(PF0)] == ["0000:65:00.2", "0000:65:00.3"]


def test_reads_do_not_rewrite_the_state(root: Path) -> None:
    """A read never commits: not even one that meets a pod netns's lo, which is only stored once changed."""
    kernel = SimKernel.open(root)
    host = sim_host(kernel)
    before = (root / "state.json").stat().st_mtime_ns, kernel.snapshot().generation
    host.links.get("lo", netns="pod-a")
    host.links.addresses("lo", netns="pod-a")
    host.links.list("pod-a")
    host.pci.list_functions()
    host.devlink.ports()
    assert ((root / "state.json").stat().st_mtime_ns, kernel.snapshot().generation) == before
    host.links.set_up("lo", netns="pod-a")
    assert kernel.snapshot().generation == before[1] + 1
    assert host.links.get("lo", netns="pod-a").admin_up


def test_state_round_trips_through_json(root: Path) -> None:
    kernel = SimKernel.open(root)
    sim_host(kernel).pci.set_numvfs(PF0, 2)
    state = kernel.snapshot()
    assert from_json(json.loads(json.dumps(to_json(state)))) == state


# --- faults -------------------------------------------------------------------------------------------------


def test_an_injected_errno_surfaces_like_the_real_one_then_clears(root: Path) -> None:
    kernel = SimKernel.open(root)
    host = sim_host(kernel)
    kernel.faults.inject("sriov_numvfs", errno=errno.EBUSY, target=PF0)
    with pytest.raises(DeviceBusy) as failure:  # through SimSysfs.write → Sysfs's errno mapping
        host.pci.set_numvfs(PF0, 2)
    assert "sriov_numvfs" in str(failure.value)
    host.pci.set_numvfs(PF0, 2)  # times=1: consumed
    assert kernel.faults.list() == []


def test_faults_are_shared_between_attachments(root: Path) -> None:
    SimKernel.open(root).faults.inject("eswitch_set", errno=errno.EIO, times=2)
    host = sim_host(SimKernel.open(root))
    for _ in range(2):
        with pytest.raises(HostError) as failure:
            host.devlink.set_eswitch_mode(DevlinkHandle.pci(PF0), EswitchMode.SWITCHDEV)
        assert failure.value.errno == errno.EIO
    host.devlink.set_eswitch_mode(DevlinkHandle.pci(PF0), EswitchMode.SWITCHDEV)


def test_a_fault_only_hits_its_target(root: Path) -> None:
    kernel = SimKernel.open(root)
    host = sim_host(kernel)
    kernel.faults.inject("link_set", errno=errno.EPERM, target="ens1f1", times=None)
    host.links.set_mtu("ens1f0", 9000)
    for _ in range(3):
        with pytest.raises(HostError):
            host.links.set_mtu("ens1f1", 9000)
    kernel.faults.clear("link_set")
    host.links.set_mtu("ens1f1", 9000)


def test_a_delay_makes_the_kernel_slow(root: Path) -> None:
    kernel = SimKernel.open(root)
    kernel.faults.inject("feature_set", delay=0.3)
    started = time.monotonic()
    sim_host(kernel).ethtool.set_feature("ens1f0", "hw-tc-offload", True)
    assert time.monotonic() - started >= 0.3


def test_genl_like_ops_fail_with_the_host_error_class_of_the_errno(root: Path) -> None:
    kernel = SimKernel.open(root)
    host = sim_host(kernel)
    host.pci.set_numvfs(PF0, 1)
    vf = host.pci.list_vfs(PF0)[0].address
    host.pci.unbind(vf)
    host.devlink.set_eswitch_mode(DevlinkHandle.pci(PF0), EswitchMode.SWITCHDEV)
    host.pci.bind_default(vf)
    kernel.faults.inject("vdpa_dev_new", errno=errno.ENOSPC)
    with pytest.raises(NoSpace):
        host.vdpa.create("vdpa:x", VdpaMgmtDev("pci", vf))
    kernel.faults.inject("module_load", errno=errno.ENOENT, target="virtio_vdpa")
    with pytest.raises(KernelModuleMissing):
        host.modules.load("virtio_vdpa")


def test_a_failed_autoprobe_leaves_the_device_unbound(root: Path) -> None:
    kernel = SimKernel.open(root)
    host = sim_host(kernel)
    host.modules.load("virtio_vdpa")
    host.pci.set_numvfs(PF0, 1)
    vf = host.pci.list_vfs(PF0)[0].address
    host.pci.unbind(vf)
    host.devlink.set_eswitch_mode(DevlinkHandle.pci(PF0), EswitchMode.SWITCHDEV)
    kernel.faults.inject("pci_bind", errno=errno.EIO, target=vf)
    with pytest.raises(HostError):
        SimSysfs(kernel).write("bus/pci/drivers_probe", vf)
    kernel.faults.inject("vdpa_bind", errno=errno.EIO)
    host.pci.bind_default(vf)
    host.vdpa.create("vdpa:x", VdpaMgmtDev("pci", vf))
    assert host.vdpa.binding("vdpa:x").driver is None


def test_fault_arguments_are_checked(root: Path) -> None:
    kernel = SimKernel.open(root)
    with pytest.raises(ValueError):
        kernel.faults.inject("no_such_op", errno=errno.EIO)
    with pytest.raises(ValueError):
        kernel.faults.inject("link_set")
    assert "vdpa_dev_new" in OPS
