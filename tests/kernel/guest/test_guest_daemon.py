"""The node daemon's Applier on the real kernel, inside the QEMU guest only.

Why: the daemon's steps are checked against the simulated host everywhere else; here the same `Applier`
(`vdpa_operator.daemon.apply`) runs them through the product Linux Host (`linux_host`) against netdevsim,
vdpa_sim_net and OVS on the kernel datapath, so what a step does, what re-running it does, and how a failure
reads are what the kernel answers. The steps are written out by hand: the planner's input comes from discovery
of PCI PFs, and the bed's NIC is not PCI (see `test_steps_the_kernel_bed_cannot_show`). The steps' `devlink` and
`mgmtdev` fields point them at the bed's devlink device and vDPA management device. Oracles are the bed's
kernel (sysfs, devlink ports, the OVS command line), not the code under test.

Outside the guest (VDPA_CONTRACT_BED != kernel) every test here skips.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from contract.beds import MLX5_PARAMS, PCI_IDENTITY, VDPA_VF_PARENT, VF_NETDEVS
from contract.wait import wait_until
from vdpa_operator.daemon.apply import OVS_ENABLED_NOTE, OVS_RESTART_NOTE, Applier, ApplyResult
from vdpa_operator.daemon.observed import Observation
from vdpa_operator.daemon.plan import Plan
from vdpa_operator.daemon.steps import (
    HW_TC_OFFLOAD,
    OVS_HW_OFFLOAD_KEY,
    VDPA_MAX_VQP,
    BindDefault,
    BindDpdk,
    BindVdpa,
    CreateVdpa,
    DeleteVdpa,
    EnableTcOffload,
    LoadModule,
    RemoveOvsHwOffload,
    SetAdminMac,
    SetEswitch,
    SetFlowSteering,
    SetNumVfs,
    SetOvsHwOffload,
    SetPfMtu,
    SetPfUp,
    SetVfMtu,
    Step,
    UnbindVfs,
    VfRef,
)
from vdpa_operator.daemon.store import OVS_OFFLOAD_MARKER, DaemonStore
from vdpa_operator.host.linux.genl import GenlCommandError
from vdpa_operator.host.port import NO_CONFIG, Host
from vdpa_operator.host.types import (
    DevlinkHandle,
    DevlinkPort,
    EswitchMode,
    PciAddress,
    PortFlavour,
    VdpaConfig,
    VdpaDriver,
    VdpaMgmtDev,
    vdpa_name,
)

pytestmark = pytest.mark.skipif(
    os.environ.get("VDPA_CONTRACT_BED") != "kernel",
    reason="runs inside the QEMU guest only (tests/kernel/test_guest.py boots it)",
)

VDPA_BUS = Path("/sys/bus/vdpa/devices")
VF_ADDRESS = "0000:65:00.4"
"""The VF the vDPA steps name; on the bed only the device name `vdpa:<VF>` exists, on vdpasim_net."""
VF = VfRef(pf="", index=0, address=VF_ADDRESS)
NO_OBSERVATION = Observation(interfaces=())
"""The steps name no PF of the plan's `configure` set, so a failure triggers no PF reset."""


@pytest.fixture
def kbed() -> Iterator[Any]:
    from kernel.guest_bed import kernel_bed  # imported here: this module must import cleanly on any host

    yield from kernel_bed()


@pytest.fixture(scope="module")
def host() -> Host:
    """The product Linux Host without OVSDB (only the OVS test needs it; it uses the bed's `host`, which
    touches the shared OVS daemons and so makes the bed reset OVSDB at teardown)."""
    from vdpa_operator.host.linux.factory import linux_host

    return linux_host(ovsdb_remote=None)


@pytest.fixture
def store(tmp_path: Path) -> DaemonStore:
    return DaemonStore(tmp_path / "sriov-operator")


def apply(host: Host, store: DaemonStore, *steps: Step) -> ApplyResult:
    return Applier(host, store).apply(Plan(steps=steps), NO_OBSERVATION)


def applied(host: Host, store: DaemonStore, *steps: Step) -> ApplyResult:
    """Apply and require success: every step ran and the journal is gone."""
    result = apply(host, store, *steps)
    assert result.ok, result.error_message()
    assert result.done == len(steps)
    assert store.journal() is None
    return result


# --- netdevsim: eswitch, hw-tc-offload, PF MTU and link ---------------------------------------------------------


def vf_ports(host: Host, bed: Any) -> list[DevlinkPort]:
    return [p for p in host.devlink.ports(bed.switch.handle) if p.flavour == PortFlavour.PCI_VF]


def test_switchdev_steps_on_netdevsim(kbed: Any, host: Host, store: DaemonStore) -> None:
    sw = kbed.switch
    handle, pf = sw.handle, sw.pf_netdev
    # What netdevsim starts with; each is what the steps below must change.
    assert host.devlink.eswitch_mode(handle) == EswitchMode.LEGACY
    assert host.ethtool.feature(pf, HW_TC_OFFLOAD) is False
    start = host.links.get(pf)
    assert not start.admin_up
    mtu = start.mtu + 1500
    # Upstream's mlx5 order (§4.5): VFs in legacy, then switchdev. netdevsim's sriov_numvfs is not a PCI PF's,
    # so the bed writes it (SET_NUMVFS: see test_steps_the_kernel_bed_cannot_show).
    sw.set_numvfs(2)
    steps = (
        EnableTcOffload("", pf),
        SetFlowSteering("", "smfs", "runtime", devlink=handle),
        SetEswitch("", EswitchMode.SWITCHDEV, devlink=handle),
        SetPfMtu("", pf, mtu),
        SetPfUp("", pf),
    )
    representors: dict[str, int] = {}
    for run in (1, 2):  # the second run finds everything done: no failure, nothing re-created
        result = applied(host, store, *steps)
        # netdevsim has no flow_steering_mode: the kernel answers EINVAL and the applier goes on, as upstream.
        assert len(result.notes) == 1 and "flow_steering_mode left as it is (EINVAL)" in result.notes[0], result
        assert host.devlink.eswitch_mode(handle) == EswitchMode.SWITCHDEV
        assert host.ethtool.feature(pf, HW_TC_OFFLOAD) is True
        link = host.links.get(pf)
        assert (link.mtu, link.admin_up) == (mtu, True)
        ports = wait_until(lambda: len(vf_ports(host, kbed)) == 2 and vf_ports(host, kbed), what="two pcivf ports")
        uplink = host.links.switch_port(pf)
        assert uplink is not None
        assert sorted(p.vfnum for p in ports if p.vfnum is not None) == [0, 1]
        for port in ports:
            assert port.netdev, port
            rep = host.links.switch_port(port.netdev)
            assert rep is not None and rep.port_name == f"pf{port.pfnum}vf{port.vfnum}"
            assert rep.switch_id == uplink.switch_id
        indexes = {p.netdev: host.links.get(p.netdev).index for p in ports if p.netdev}
        if run == 1:
            representors = indexes
        else:
            assert indexes == representors, "re-running switchdev re-created the representors"

    applied(host, store, SetEswitch("", EswitchMode.LEGACY, devlink=handle))
    assert host.devlink.eswitch_mode(handle) == EswitchMode.LEGACY
    assert vf_ports(host, kbed) == []
    assert [rep for rep in representors if host.links.find(rep) is not None] == []


# --- vdpa_sim_net: modules, create, bind virtio/vhost, delete ---------------------------------------------------


@dataclass
class DevNewCall:
    config: VdpaConfig
    answer: int
    """The kernel's errno; 0 when it accepted the request."""


def record_dev_new(host: Host, monkeypatch: pytest.MonkeyPatch) -> list[DevNewCall]:
    """What VDPA_CMD_DEV_NEW requests reached the kernel and what it answered: a pass-through spy on the
    product adapter's transport (the policy above it, the EOPNOTSUPP retry, is what is watched)."""
    transport = host.vdpa.transport  # type: ignore[attr-defined]
    real = transport.dev_new
    calls: list[DevNewCall] = []

    def dev_new(name: str, mgmtdev: Any, config: VdpaConfig = NO_CONFIG) -> None:
        try:
            real(name, mgmtdev, config)
        except GenlCommandError as exc:
            calls.append(DevNewCall(config, exc.errno))
            raise
        calls.append(DevNewCall(config, 0))

    monkeypatch.setattr(transport, "dev_new", dev_new)
    return calls


def rmmod(module: str) -> None:
    """Only the module itself (`modprobe -r` would take its now unused dependencies too)."""
    from kernel.guest_bed import run

    run("rmmod", module)


def test_vdpa_steps_on_vdpa_sim_net(kbed: Any, host: Host, store: DaemonStore, monkeypatch: pytest.MonkeyPatch) -> None:
    kbed.vdpa.prepare()  # vdpa_sim_net, virtio_vdpa, vhost_vdpa, virtio_net (no udev in the guest to load it)
    rmmod("vhost_vdpa")  # so that one LOAD_MODULE step really loads, the other finds its module loaded
    assert not host.modules.is_loaded("vhost_vdpa") and host.modules.is_loaded("virtio_vdpa")
    name = vdpa_name(PciAddress(VF_ADDRESS))
    assert name == kbed.vdpa.device_name
    device_dir = VDPA_BUS / name
    calls = record_dev_new(host, monkeypatch)

    create = CreateVdpa(VF, "virtio", kbed.vdpa.mgmtdev)
    to_virtio = (
        LoadModule("virtio_vdpa"),
        LoadModule("vhost_vdpa"),
        create,
        BindVdpa(VF, VdpaDriver.VIRTIO),
    )
    to_vhost = (create, BindVdpa(VF, VdpaDriver.VHOST))

    def virtio_netdev() -> str:
        binding = wait_until(lambda: (b := host.vdpa.binding(name)).virtio_netdev and b, what=f"{name} on virtio")
        assert binding.driver == "virtio_vdpa" and binding.vhost_chardev is None
        assert binding.virtio_netdev is not None
        info = host.ethtool.driver_info(binding.virtio_netdev)
        assert (info.driver, info.bus_info) == ("virtio_net", name)
        return binding.virtio_netdev

    def vhost_chardev() -> str:
        binding = wait_until(lambda: (b := host.vdpa.binding(name)).vhost_chardev and b, what=f"{name} on vhost")
        assert binding.driver == "vhost_vdpa" and binding.virtio_netdev is None
        assert binding.vhost_chardev is not None and stat.S_ISCHR(os.stat(binding.vhost_chardev).st_mode)
        return binding.vhost_chardev

    # virtio: create (vdpa_sim_net has no max_vqp: EOPNOTSUPP, created again without config), bind virtio_vdpa.
    applied(host, store, *to_virtio)
    assert Path("/sys/module/vhost_vdpa/initstate").read_text().strip() == "live"
    assert Path("/sys/bus/vdpa/drivers/vhost_vdpa").is_dir()
    assert [(c.config, c.answer) for c in calls] == [
        (VdpaConfig(max_vqp=VDPA_MAX_VQP), errno.EOPNOTSUPP),
        (VdpaConfig(), 0),
    ]
    device = host.vdpa.get(name)
    assert device is not None and device.mgmtdev.name == "vdpasim_net"
    device_ino = device_dir.resolve().stat().st_ino
    netdev = virtio_netdev()
    netdev_index = host.links.get(netdev).index
    applied(host, store, *to_virtio)  # again: nothing created, nothing rebound
    assert len(calls) == 2
    assert device_dir.resolve().stat().st_ino == device_ino
    assert virtio_netdev() == netdev and host.links.get(netdev).index == netdev_index

    # vhost: the existing device is kept and rebound; the virtio netdev goes, a char device comes.
    first: tuple[str, int, int] | None = None
    for _ in (1, 2):
        applied(host, store, *to_vhost)
        assert len(calls) == 2 and device_dir.resolve().stat().st_ino == device_ino
        chardev = vhost_chardev()
        assert host.links.find(netdev) is None
        node = os.stat(chardev)
        if first is None:
            first = (chardev, node.st_ino, node.st_rdev)
        else:
            assert (chardev, node.st_ino, node.st_rdev) == first, "re-running re-bound vhost_vdpa"

    # Back to the virtio spec: a real rebind this time (the first virtio bind found autoprobe had done it).
    applied(host, store, *to_virtio)
    assert virtio_netdev() and first is not None and not os.path.exists(first[0])

    for _ in (1, 2):  # deleting twice: the second finds nothing to do
        applied(host, store, DeleteVdpa(VF))
        assert host.vdpa.get(name) is None and not device_dir.exists()


# --- OVS: hw-offload through OVSDB ------------------------------------------------------------------------------


def test_ovs_hw_offload_steps_through_ovsdb(kbed: Any, store: DaemonStore) -> None:
    host, daemons = kbed.host, kbed.ovs_daemons  # this Host has the bed's OVSDB remote
    assert host.ovs is not None

    def other_config(*before: str) -> str:
        """ovs-vsctl as the oracle: the whole map, keys sorted (one ovs-vsctl run costs ~0.2 s under TCG)."""
        return daemons.vsctl(*before, "get", "Open_vSwitch", ".", "other_config")

    # Someone else's key, which neither step may touch.
    assert other_config("set", "Open_vSwitch", ".", "other_config:vdpa-test=kept", "--") == "{vdpa-test=kept}"
    assert not store.owns_ovs_offload()

    result = applied(host, store, SetOvsHwOffload())
    assert result.notes == [OVS_ENABLED_NOTE]
    assert other_config() == '{hw-offload="true", vdpa-test=kept}'
    assert store.owns_ovs_offload()
    marker = json.loads((store.root / OVS_OFFLOAD_MARKER).read_text())
    assert marker == {"other_config": {OVS_HW_OFFLOAD_KEY: "true"}}

    result = applied(host, store, RemoveOvsHwOffload())
    assert result.notes == [OVS_RESTART_NOTE]
    assert other_config() == "{vdpa-test=kept}"
    assert not store.owns_ovs_offload() and not (store.root / OVS_OFFLOAD_MARKER).exists()


# --- a failing step ----------------------------------------------------------------------------------------------


def test_a_failing_step_names_the_step_and_errno(kbed: Any, host: Host, store: DaemonStore) -> None:
    kbed.vdpa.prepare()
    name = vdpa_name(PciAddress(VF_ADDRESS))
    steps = (
        LoadModule("virtio_vdpa"),
        CreateVdpa(VF, "virtio", VdpaMgmtDev(None, "vdpasim_nosuch")),
        BindVdpa(VF, VdpaDriver.VIRTIO),
    )
    result = apply(host, store, *steps)
    assert not result.ok and result.done == 1
    assert result.failure is not None and result.failure.index == 1
    assert result.failure.error.errno == errno.ENODEV
    message = result.error_message()
    wanted = f"create vdpa device {name} on vdpasim_nosuch max_vqp {VDPA_MAX_VQP} (step 2/3): "
    assert message.startswith(wanted), message
    assert "vdpasim_nosuch" in message and "ENODEV" in message, message
    assert host.vdpa.get(name) is None
    journal = store.journal()  # kept: the next apply knows it was interrupted
    assert journal is not None and journal.total == 3 and journal.done == result.done

    missing = DevlinkHandle(kbed.switch.handle.bus, f"netdevsim{kbed.switch.id + 1000}")
    result = apply(host, store, SetEswitch("", EswitchMode.SWITCHDEV, devlink=missing))
    assert result.failure is not None and result.failure.error.errno == errno.ENODEV
    message = result.error_message()
    assert message.startswith(f"set eswitch mode switchdev on {missing} (step 1/1): "), message
    assert "ENODEV" in message, message


# --- what the bed cannot show --------------------------------------------------------------------------------------


CANNOT_SHOW_STEPS = [
    (SetNumVfs.action, PCI_IDENTITY),
    (UnbindVfs.action, PCI_IDENTITY),
    (BindDefault.action, PCI_IDENTITY),
    (BindDpdk.action, PCI_IDENTITY),
    (SetAdminMac.action, VF_NETDEVS),
    (SetVfMtu.action, VF_NETDEVS),
    (CreateVdpa.action, VDPA_VF_PARENT),
    (SetFlowSteering.action, MLX5_PARAMS),
]
"""Steps (or, for create-vdpa and set-flow-steering-mode, their mlx5 form) the kernel bed cannot run, and why."""


@pytest.mark.parametrize(("action", "behaviour"), CANNOT_SHOW_STEPS, ids=[f"{a}-{b}" for a, b in CANNOT_SHOW_STEPS])
def test_steps_the_kernel_bed_cannot_show(action: str, behaviour: str) -> None:
    from kernel.guest_bed import KernelBed

    reason = KernelBed.cannot_show.get(behaviour)
    if reason is not None:
        pytest.skip(f"{action}: kernel bed cannot show {behaviour}: {reason}")
    pytest.fail(f"the kernel bed can show {behaviour} now: give {action} a check in this file")
