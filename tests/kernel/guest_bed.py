"""The contract tests' `Bed` on the real kernel, inside the QEMU guest (VDPA_CONTRACT_BED=kernel).

Why: the simulated host is a model; this bed runs the same contract assertions against the kernel's own
netdevsim (an SR-IOV NIC with an eswitch, control plane only), vdpa_sim_net (a vDPA management device) and
the OVS kernel datapath, so the Linux adapter is checked against what the kernel really answers.

Set-up and teardown here use sysfs and the iproute2/OVS command line tools, never the adapter under test.
Only meaningful as root in the guest (tests/kernel/testbed.py boots it); importing it anywhere is harmless.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import os
import shlex
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from contract.beds import (
    MLX5_ESWITCH_RULES,
    MLX5_PARAMS,
    PCI_IDENTITY,
    VDPA_ATTR_SET,
    VDPA_ONE_PER_VF,
    VDPA_VF_PARENT,
    VF_NETDEVS,
)
from contract.wait import wait_until
from integration.host.ovs_daemons import OvsDaemons, running_ovs
from vdpa_operator.host.types import DevlinkHandle, VdpaMgmtDev

if TYPE_CHECKING:
    from vdpa_operator.host.port import Host, Ovs

NETDEVSIM_BUS = Path("/sys/bus/netdevsim")
DEBUGFS = Path("/sys/kernel/debug")
"""Mounted by testbed/stage2.sh."""
VDPA_DEVICE_NAME = "vdpa:0000:65:00.4"
"""What upstream would call the vDPA device of VF 0000:65:00.4 (`vdpa:<VF address>`); vdpa_sim accepts it."""
OVS_MIN_UPTIME = 11.0
"""ovs-vswitchd started earlier in a fresh guest runs 0 upcall handlers until uptime passes about 10 s
(research note, gotcha c): traffic would be lost. We pass no traffic, but waiting costs nothing by the time
pytest has started."""

CANNOT_SHOW: Mapping[str, str] = {
    PCI_IDENTITY: "netdevsim VFs are not PCI functions: no virtfn/physfn links, bus-info is `netdevsimN`",
    VF_NETDEVS: "netdevsim VFs have no netdevs of their own, only representors",
    VDPA_VF_PARENT: "vdpa_sim_net's management device is bus-less `vdpasim_net`, not a VF",
    VDPA_ONE_PER_VF: "vdpa_sim_net creates any number of devices per management device; mlx5 allows one per VF",
    MLX5_ESWITCH_RULES: "netdevsim switches eswitch mode in any order; mlx5 refuses switchdev while VFs are bound",
    MLX5_PARAMS: "netdevsim has no flow_steering_mode (or any mlx5) devlink parameter",
    VDPA_ATTR_SET: "the guest runs Debian's 6.1 kernel: no VDPA_CMD_DEV_ATTR_SET (Linux >= 6.12)",
}


class ToolError(subprocess.CalledProcessError):
    """A failed set-up command, with what the tool said in the message (CalledProcessError's omits it)."""

    def __str__(self) -> str:
        said = (self.stderr or self.stdout or "").strip()
        return f"{shlex.join(self.cmd)} exited {self.returncode}: {said or '(no output)'}"


def run(*argv: str) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ToolError(proc.returncode, list(argv), proc.stdout, proc.stderr)
    return proc.stdout


def modprobe(*modules: str) -> None:
    """One at a time (the order decides which vdpa bus driver binds new devices first), skipping loaded ones:
    each modprobe costs ~0.2 s under TCG and the beds ask for the same modules in every test."""
    for module in modules:
        if not Path("/sys/module", module).is_dir():
            run("modprobe", module)


def uptime() -> float:
    return float(Path("/proc/uptime").read_text().split()[0])


# --- switch: a netdevsim device ---------------------------------------------------------------------------------


_last_netdevsim_id = 0


def _next_netdevsim_id() -> int:
    """Never reuse an id within a process, so logs and devlink handles of successive beds stay distinct."""
    global _last_netdevsim_id
    existing = [int(p.name.removeprefix("netdevsim")) for p in (NETDEVSIM_BUS / "devices").glob("netdevsim*")]
    _last_netdevsim_id = max([_last_netdevsim_id, *existing]) + 1
    return _last_netdevsim_id


def in_guest() -> bool:
    """True in the QEMU guest that tests/kernel/testbed.py boots (its kernel command line names the out dir)."""
    try:
        return "kbed.out=" in Path("/proc/cmdline").read_text()
    except OSError:
        return False


class NetdevsimSwitch:
    """One netdevsim device with one port: an SR-IOV NIC whose eswitch has legacy and switchdev modes."""

    def __init__(self) -> None:
        modprobe("netdevsim")
        self.id = _next_netdevsim_id()
        (NETDEVSIM_BUS / "new_device").write_text(f"{self.id} 1")
        self.handle = DevlinkHandle("netdevsim", f"netdevsim{self.id}")
        self.device = NETDEVSIM_BUS / "devices" / f"netdevsim{self.id}"
        try:
            names = wait_until(lambda: list((self.device / "net").glob("*")), what=f"the netdev of {self.handle}")
            self.pf_netdev: str = names[0].name
            self.max_vfs = int(self._debugfs("max_vfs").read_text())
        except BaseException:
            self.close()
            raise

    def _debugfs(self, name: str) -> Path:
        return DEBUGFS / "netdevsim" / f"netdevsim{self.id}" / name

    def numvfs(self) -> int:
        return int((self.device / "sriov_numvfs").read_text())

    def set_numvfs(self, count: int) -> None:
        """As for a PCI PF, the kernel refuses (EBUSY) to change a non-zero VF count except through 0."""
        current = self.numvfs()
        if current == count:
            return
        if current and count:
            (self.device / "sriov_numvfs").write_text("0")
        (self.device / "sriov_numvfs").write_text(str(count))

    def close(self) -> None:
        if self.device.exists():
            (NETDEVSIM_BUS / "del_device").write_text(str(self.id))


# --- vdpa: the vdpa_sim_net management device -------------------------------------------------------------------


class SimVdpa:
    mgmtdev = VdpaMgmtDev(None, "vdpasim_net")
    other_mgmtdev = mgmtdev  # vdpa_sim_net takes any number of devices
    device_name = VDPA_DEVICE_NAME

    def prepare(self) -> None:
        """virtio_vdpa before vhost_vdpa: with both loaded, a new device binds to the first registered one, so
        it starts on virtio_vdpa. No udev runs in the guest, so virtio_net is loaded by hand, or the virtio
        device of a virtio_vdpa-bound vDPA device would stay driverless."""
        modprobe("vdpa_sim_net", "virtio_vdpa", "vhost_vdpa", "virtio_net")

    def close(self) -> None:
        """Delete every device on vdpasim_net: tests create them through the adapter, the bed cleans up."""
        if not any(Path("/sys/bus/vdpa/devices").glob("*")):
            return
        devices = json.loads(run("vdpa", "-j", "dev", "show") or "{}").get("dev", {})
        for name, attrs in devices.items():
            if attrs.get("mgmtdev") == self.mgmtdev.name:
                run("vdpa", "dev", "del", name)


# --- ovs: ovsdb-server + ovs-vswitchd on the kernel datapath ----------------------------------------------------


_shared_ovs: OvsDaemons | None = None


def shared_ovs() -> OvsDaemons:
    """One pair of daemons per guest pytest process: the contract `bed` fixture is per test and starting OVS
    under TCG costs seconds. The integration tier's private daemons (tests/integration/host/ovs_daemons.py),
    with the openvswitch module loaded and vswitchd in the guest's own netns: the kernel datapath. Each bed
    resets the database at teardown (`reset_ovs`); the daemons stop at exit."""
    global _shared_ovs
    if _shared_ovs is None:
        modprobe("openvswitch")
        if (wait := OVS_MIN_UPTIME - uptime()) > 0:
            time.sleep(wait)
        stack = contextlib.ExitStack()
        _shared_ovs = stack.enter_context(running_ovs(own_netns=False))
        atexit.register(stack.close)
    return _shared_ovs


def reset_ovs(daemons: OvsDaemons) -> None:
    """What one bed leaves behind must not leak into the next: back to the state right after `init`."""
    # One transaction (ovs-vsctl costs ~0.2 s under TCG). emer-reset drops controllers, managers, mirrors
    # and the like but keeps bridges and the Open_vSwitch row's own keys; unreferenced bridges, ports and
    # interfaces are garbage-collected, and ovs-vsctl waits until vswitchd has removed them.
    daemons.vsctl(
        "emer-reset", "--", "clear", "Open_vSwitch", ".", "bridges", "other_config", "external_ids", wait=True
    )


# --- the bed ----------------------------------------------------------------------------------------------------


class KernelBed:
    """`contract.beds.Bed` on the guest kernel. `host` and `ovs` are built on first use, so a test that needs
    neither does not start OVS; the netdevsim device exists from construction."""

    name = "kernel"
    cannot_show = CANNOT_SHOW

    def __init__(self) -> None:
        if not in_guest():
            raise RuntimeError(
                "the kernel bed creates netdevsim devices and OVS daemons: it runs only inside the QEMU guest "
                "(run tests/kernel/test_guest.py, which boots it, rather than setting VDPA_CONTRACT_BED=kernel)"
            )
        self._host: Host | None = None
        self._ovs: Ovs | None = None
        self._daemons: OvsDaemons | None = None
        self._netns: list[str] = []
        self._counter = itertools.count()
        self.vdpa = SimVdpa()
        self.switch = NetdevsimSwitch()

    @property
    def ovs_daemons(self) -> OvsDaemons:
        if self._daemons is None:
            self._daemons = shared_ovs()
        return self._daemons

    @property
    def host(self) -> Host:
        if self._host is None:
            from vdpa_operator.host.linux.factory import linux_host

            self._host = linux_host(ovsdb_remote=self.ovs_daemons.remote)
        return self._host

    @property
    def ovs(self) -> Ovs | None:
        if self._ovs is None:
            from vdpa_operator.host.linux.ovsdb import OvsdbOvs

            self._ovs = OvsdbOvs(self.ovs_daemons.remote)
        return self._ovs

    def new_netns(self) -> str:
        from vdpa_operator.host.sim.realnet import create_netns

        name = f"kbed-{os.getpid()}-{next(self._counter)}"
        path = create_netns(name)
        self._netns.append(name)
        return path

    def close(self) -> None:
        """Undo everything, in dependency order; every step runs even when an earlier one fails, and the first
        failure is raised at the end so a leak does not go unnoticed."""
        steps: list[tuple[str, Callable[[], None]]] = [
            ("close the OVSDB client", lambda: _close(self._ovs)),
            ("close the host's OVSDB client", lambda: _close(self._host.ovs if self._host else None)),
            ("reset OVS", lambda: reset_ovs(self._daemons) if self._daemons else None),
            ("delete vDPA devices", self.vdpa.close),
            ("delete the netdevsim device", self.switch.close),
            ("remove network namespaces", self._remove_netns),
        ]
        errors = []
        for what, step in steps:
            try:
                step()
            except Exception as exc:
                errors.append(f"{what}: {exc!r}")
        self._ovs = self._host = None
        if errors:
            raise RuntimeError("kernel bed teardown failed: " + "; ".join(errors))

    def _remove_netns(self) -> None:
        from vdpa_operator.host.sim.realnet import remove_netns

        while self._netns:
            remove_netns(self._netns.pop())


def _close(obj: object) -> None:
    close = getattr(obj, "close", None)
    if callable(close):
        close()


def kernel_bed() -> Iterator[KernelBed]:
    """For the contract `bed` fixture: `yield from kernel_bed()`."""
    bed = KernelBed()
    try:
        yield bed
    finally:
        bed.close()
