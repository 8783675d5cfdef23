"""Run a plan through the Host port, one step at a time, with a journal.

Before the first step the journal records the PFs the plan touches; it advances as the apply moves on and is
removed only when the plan completes. A daemon killed at any point finds the journal on restart and
configures those PFs again even where upstream's drift predicate sees nothing to do: every step re-checks or
is idempotent, so running the rest of a plan twice converges, and nothing created before the kill leaks
(PF records are saved before a PF is touched, so a PF that leaves the spec meanwhile is still reset). The
plan sees an interrupted apply's leftovers without the journal too; a damaged journal is moved aside.

On a failed step of a PF that is not externally managed, the PF is reset (upstream `configSriovInterfaces`)
and the error names the step, its object and the errno.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import assert_never

from vdpa_operator.daemon.observed import Observation
from vdpa_operator.daemon.plan import Plan, reset_device
from vdpa_operator.daemon.steps import (
    FLOW_STEERING_PARAM,
    HW_TC_OFFLOAD,
    OVS_HW_OFFLOAD_KEY,
    VDPA_MAX_VQP,
    BindDefault,
    BindDpdk,
    BindVdpa,
    CreateVdpa,
    DeleteRecord,
    DeleteVdpa,
    EnableTcOffload,
    LoadModule,
    ReloadUdev,
    RemoveOvsHwOffload,
    RemoveUdevRule,
    SaveRecord,
    SetAdminMac,
    SetEswitch,
    SetFlowSteering,
    SetNumVfs,
    SetOvsHwOffload,
    SetPfMtu,
    SetPfUp,
    SetVfMtu,
    Step,
    UnbindVf,
    UnbindVfs,
    VfRef,
    WriteUdevRule,
)
from vdpa_operator.daemon.store import DaemonStore, Journal
from vdpa_operator.host.errors import DeviceNotFound, HostError, HostTimeout, InvalidArgument, NotSupported
from vdpa_operator.host.port import NUMVFS_TIMEOUT, Host
from vdpa_operator.host.switchdev import eswitch_mode
from vdpa_operator.host.types import (
    PciAddress,
    VdpaConfig,
    VdpaMgmtDev,
    vdpa_name,
)

logger = logging.getLogger(__name__)

JOURNAL_INTERVAL = 0.25
"""Progress is journalled when the apply moves to another PF and at least this often: recovery needs only the PFs
(written before the first step), the progress is for the restart report, and a write per step cost more than all
the rest of the daemon's own work at 128 VFs."""

VF_NETDEV_TIMEOUT = 10.0
"""Upstream `VFIsReady` waits this long for a VF's netdev before rebinding it once."""

OVS_ENABLED_NOTE = ("Open_vSwitch other_config:hw-offload=true: a running ovs-vswitchd enables its flow API at "
                    "once (it logs 'netdev: Flow API Enabled'); no restart needed")
OVS_RESTART_NOTE = ("Open_vSwitch other_config:hw-offload removed: ovs-vswitchd cannot turn its flow API off while "
                    "running; restart it (systemctl restart openvswitch-switch) for the change to take effect")
"""What OVS does with the key (checked on ovs-vswitchd 3.1 here): `netdev_set_flow_api_enabled` enables offload
when the key turns true, once, and has no path back, so only a removal leaves vswitchd needing a restart."""


@dataclass(frozen=True)
class StepFailure:
    index: int
    step: Step
    description: str
    error: HostError

    def message(self, total: int) -> str:
        return f"{self.description} (step {self.index + 1}/{total}): {self.error}"


@dataclass
class ApplyResult:
    total: int
    done: int = 0
    failure: StepFailure | None = None
    reset_error: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failure is None

    def error_message(self) -> str:
        if self.failure is None:
            return ""
        text = self.failure.message(self.total)
        if self.reset_error:
            text += f"; resetting {self.failure.step.pf} afterwards also failed: {self.reset_error}"
        return text


ProgressCallback = Callable[[int, int, Step, str], None]
"""(index, total, step, description with VF addresses resolved) before each step runs."""


class Applier:
    def __init__(self, host: Host, store: DaemonStore, *, on_step: ProgressCallback | None = None,
                 numvfs_timeout: float = NUMVFS_TIMEOUT, vf_netdev_timeout: float = VF_NETDEV_TIMEOUT,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.host = host
        self.store = store
        self.on_step = on_step
        self.numvfs_timeout = numvfs_timeout
        self.vf_netdev_timeout = vf_netdev_timeout
        self.sleep = sleep
        self._vfs: dict[str, dict[int, PciAddress]] = {}

    def apply(self, plan: Plan, observed: Observation, *, generation: int = 0) -> ApplyResult:
        result = ApplyResult(total=len(plan.steps), notes=list(plan.notes))
        if not plan.steps:
            self.store.clear_journal()
            return result
        self._vfs.clear()
        journal = Journal(generation=generation, pfs=list(plan.pfs), total=len(plan.steps))
        previous = self.store.journal()
        if previous is not None:  # an interrupted apply: keep its PFs in the set to re-check
            journal.pfs = sorted({*journal.pfs, *previous.pfs})
            journal.history = [*previous.history[-4:], f"{previous.done}/{previous.total}: {previous.current}"]
        self.store.write_journal(journal)
        written_pf, written_at = "", time.monotonic()
        for index, step in enumerate(plan.steps):
            description = self._describe(step)
            journal.done, journal.current = index, description
            if step.pf != written_pf or time.monotonic() - written_at >= JOURNAL_INTERVAL:
                self.store.write_journal(journal)
                written_pf, written_at = step.pf, time.monotonic()
            if self.on_step is not None:
                self.on_step(index, len(plan.steps), step, description)
            try:
                note = self._run(step)
            except HostError as exc:
                result.failure = StepFailure(index, step, description, exc)
                self.store.write_journal(journal)  # where it stopped, for the restart report
                logger.warning("step %d/%d failed: %s: %s", index + 1, len(plan.steps), description, exc)
                result.reset_error = self._reset_after_failure(step, plan, observed)
                return result
            if note:
                result.notes.append(note)
            result.done = index + 1
        self.store.clear_journal()
        return result

    # --- steps -------------------------------------------------------------------------------------------------

    def _run(self, step: Step) -> str:
        """Run one step; returns a note worth reporting, or ""."""
        host = self.host
        match step:
            case LoadModule():
                host.modules.load(step.module)
            case SaveRecord():
                self.store.save_record(step.record)
            case DeleteRecord():
                self.store.delete_record(step.pf)
            case EnableTcOffload():
                try:
                    host.ethtool.set_feature(step.netdev, HW_TC_OFFLOAD, True)
                except NotSupported:  # upstream skips an unknown feature
                    return f"{step.netdev}: {HW_TC_OFFLOAD} cannot be enabled here; skipped"
            case SetFlowSteering():
                try:
                    host.devlink.set_param(step.handle, FLOW_STEERING_PARAM, step.mode, step.cmode)
                except (NotSupported, InvalidArgument, DeviceNotFound) as exc:  # upstream tolerates these
                    return f"{step.handle}: {FLOW_STEERING_PARAM} left as it is ({exc.errno_name})"
            case RemoveUdevRule():
                host.udev.remove_rule(step.rule)
            case WriteUdevRule():
                host.udev.write_rule(step.rule, step.content)
            case UnbindVfs():
                for vf in host.pci.list_vfs(PciAddress(step.pf)):
                    if vf.driver is not None:
                        host.pci.unbind(vf.address)
            case SetEswitch():
                host.devlink.set_eswitch_mode(step.handle, step.mode)
            case SetNumVfs():
                host.pci.set_numvfs(PciAddress(step.pf), step.count, timeout=self.numvfs_timeout)
                self._vfs.pop(step.pf, None)
            case SetPfMtu():
                host.links.set_mtu(step.netdev, step.mtu)
            case SetPfUp():
                host.links.set_up(step.netdev)
            case BindDefault():
                host.pci.bind_default(self._vf(step.vf))
            case SetAdminMac():
                self._set_admin_mac(step)
            case UnbindVf():
                host.pci.unbind(self._vf(step.vf))
            case DeleteVdpa():
                host.vdpa.delete(vdpa_name(self._vf(step.vf)))
            case CreateVdpa():
                address = self._vf(step.vf)
                self._create_vdpa(address, step.mgmtdev or VdpaMgmtDev("pci", address))
            case BindVdpa():
                name = vdpa_name(self._vf(step.vf))
                if host.vdpa.binding(name).driver != step.driver:
                    host.vdpa.bind(name, step.driver)
            case BindDpdk():
                host.pci.bind(self._vf(step.vf), step.driver)
            case SetVfMtu():
                host.links.set_mtu(self._vf_netdev(step.vf), step.mtu)
            case ReloadUdev():
                host.udev.reload()
            case SetOvsHwOffload():
                return self._ovs_offload(True)
            case RemoveOvsHwOffload():
                return self._ovs_offload(False)
            case _:
                assert_never(step)
        return ""

    def _create_vdpa(self, vf: PciAddress, mgmtdev: VdpaMgmtDev) -> None:
        """Upstream `CreateVDPADevice`: an existing device is kept (its driver is the next step's business)."""
        name = vdpa_name(vf)
        if self.host.vdpa.get(name) is None:
            self.host.vdpa.create(name, mgmtdev, VdpaConfig(max_vqp=VDPA_MAX_VQP))

    def _set_admin_mac(self, step: SetAdminMac) -> None:
        """Pin the VF's current MAC as its administrative MAC on the PF (upstream `SetVfAdminMac`), after
        waiting for the VF's netdev (`VFIsReady`), rebinding the VF once if it never shows up."""
        vf = self._vf(step.vf)
        try:
            netdev = self._vf_netdev(step.vf)
        except HostTimeout:
            self.host.pci.unbind(vf)
            self.host.pci.bind_default(vf)
            netdev = self._vf_netdev(step.vf)
        mac = self.host.links.get(netdev).mac
        self.host.links.set_vf_mac(step.netdev, step.vf.index, mac)

    def _ovs_offload(self, enable: bool) -> str:
        ovs = self.host.ovs
        if ovs is None:
            return "Open vSwitch went away; hw-offload left as it was"
        ovs.set_other_config(OVS_HW_OFFLOAD_KEY, "true" if enable else None)
        self.store.set_owns_ovs_offload(enable)
        return OVS_ENABLED_NOTE if enable else OVS_RESTART_NOTE

    # --- VF resolution -----------------------------------------------------------------------------------------

    def _vf(self, ref: VfRef) -> PciAddress:
        if ref.address is not None:
            return PciAddress(ref.address)
        if ref.pf not in self._vfs:
            self._vfs[ref.pf] = {vf.index: vf.address for vf in self.host.pci.list_vfs(PciAddress(ref.pf))}
        try:
            return self._vfs[ref.pf][ref.index]
        except KeyError:
            raise DeviceNotFound("find", f"VF {ref.index} of {ref.pf}",
                                 hint="the PF has fewer VFs than planned; the next sync re-plans") from None

    def _vf_netdev(self, ref: VfRef) -> str:
        vf = self._vf(ref)
        deadline = time.monotonic() + self.vf_netdev_timeout
        while True:
            netdevs = self.host.pci.get_function(vf).netdevs
            if netdevs:
                return netdevs[0]
            if time.monotonic() >= deadline:
                raise HostTimeout("wait for the netdev of", vf, detail=f"none after {self.vf_netdev_timeout:g}s")
            self.sleep(0.1)

    def _describe(self, step: Step) -> str:
        if step.vf is None or step.vf.address is not None:
            return step.describe()
        try:
            return step.describe(self._vf(step.vf))
        except HostError:
            return step.describe()

    # --- failure -----------------------------------------------------------------------------------------------

    def _reset_after_failure(self, step: Step, plan: Plan, observed: Observation) -> str:
        """Upstream resets a PF whose configuration failed, unless it is externally managed."""
        if step.pf not in plan.configure:
            return ""
        status = observed.interface(step.pf)
        if status is None or step.pf in plan.externally_managed:
            return ""
        self._vfs.clear()
        live = status.model_copy(update={"eswitch_mode": eswitch_mode(self.host, PciAddress(step.pf))})
        link = self.host.links.find(status.name) if status.name else None
        if link is not None:
            live.mtu = link.mtu
        for reset_step in reset_device(live, observed.initial.get(step.pf)):
            try:
                self._run(reset_step)
            except HostError as exc:
                logger.warning("reset of %s after a failure: %s failed: %s", step.pf, reset_step.describe(), exc)
                return str(exc)
        logger.info("reset %s after the failed step", step.pf)
        return ""

