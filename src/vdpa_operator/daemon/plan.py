"""From (NodeState spec, what the node shows) to the ordered steps that make the node match: a pure function,
so the same plan is printed by `vdpactl node plan`, run by the daemon, and checked by table tests.

The order is upstream's for mlx5 (upstream-operator.md §4.5–§4.7, `pkg/host/internal/sriov`): modules, then per
PF to configure: record, hw-tc-offload, flow steering (while legacy), udev rules, VFs in legacy and the switch to
switchdev, the representor rule, PF MTU, then per VF: default driver, admin MAC, vDPA devices, MTU; PF up;
udev reload; then resets of PFs the operator configured that left the spec; then OVS hw-offload.

A spec is checked as a whole first (`api.nodestate_checks`): values the daemon cannot act on are refused
before anything is planned. A PF is configured when upstream's drift predicate (`need_to_update_sriov`) says
so, or when an interrupted apply touched it (`force`). Within a configured PF a step is planned only where the
node differs, so a plan for a converged node is empty and re-running any plan is harmless. What an apply killed
between two steps leaves, the plan sees without the journal too (a VF left unbound is bound and its admin MAC
set; `tests/hostile/test_apply_kill.py`), all but a udev reload still owed, which the journal brings back.
Steps that depend on what an earlier step creates (the addresses and MACs of VFs that do not exist yet) name
the VF by index; the applier resolves them. The step kinds are `daemon.steps`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from vdpa_operator.api.decoding import FieldIssue
from vdpa_operator.api.models import Interface, InterfaceExt, SriovNetworkNodeStateSpec, VfGroup
from vdpa_operator.api.nodestate import (
    DEVICE_TYPE_VFIO_PCI,
    DPDK_DRIVERS,
    ESWITCH_LEGACY,
    ESWITCH_SWITCHDEV,
    LINK_ADMIN_STATE_DOWN,
    effective_eswitch_mode,
    need_to_update_sriov,
)
from vdpa_operator.api.nodestate_checks import spec_problems
from vdpa_operator.api.selection import index_in_range
from vdpa_operator.daemon.observed import Observation, PfFacts
from vdpa_operator.daemon.steps import (
    OVS_HW_OFFLOAD_KEY,
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
from vdpa_operator.errors import VdpaOperatorError
from vdpa_operator.host.types import VDPA_DRIVER_FOR_TYPE, EswitchMode, PciAddress
from vdpa_operator.host.udev_rules import nm_disable_rule, pf_name_rule, rule_filenames, switchdev_rule

DEFAULT_VF_DRIVER = "mlx5_core"
FLOW_STEERING_SMFS = "smfs"
DEFAULT_RESET_MTU = 1500
MODULE_FOR_VDPA_TYPE = {vdpa_type: str(driver) for vdpa_type, driver in VDPA_DRIVER_FOR_TYPE.items()}
"""Each vdpa bus driver is the module of the same name."""
MODULE_FOR_DEVICE_TYPE = {DEVICE_TYPE_VFIO_PCI: "vfio_pci"}
MANAGED_MODULES = frozenset({*MODULE_FOR_VDPA_TYPE.values(), *MODULE_FOR_DEVICE_TYPE.values()})


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...]
    configure: tuple[str, ...] = ()
    """PFs whose configuration routine runs."""
    reset: tuple[str, ...] = ()
    """PFs the operator configured that left the spec."""
    externally_managed: tuple[str, ...] = ()
    """PFs of `configure` the admin set up: never reset."""
    drain: bool = False
    """Upstream's generic-plugin drain decision (§4.4)."""
    notes: tuple[str, ...] = ()

    @property
    def pfs(self) -> tuple[str, ...]:
        return (*self.configure, *self.reset)

    def steps_of(self, pf: str) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if s.pf == pf)


class PlanError(VdpaOperatorError):
    """The spec cannot be applied to this node as it is (nothing was changed)."""


class InvalidSpec(PlanError):
    """The spec holds values the daemon cannot act on (`api.nodestate_checks`): bad input, not a node problem."""

    def __init__(self, issues: Sequence[FieldIssue]) -> None:
        self.issues = tuple(issues)
        super().__init__("; ".join(str(issue) for issue in self.issues))


# --- the plan ---------------------------------------------------------------------------------------------------


def plan(spec: SriovNetworkNodeStateSpec, observed: Observation, *, vf_device_ids: Iterable[str],
         force: Collection[str] = ()) -> Plan:
    """The steps that bring the node to `spec`. `vf_device_ids` are the supported VF device ids (the
    NetworkManager udev rule lists them); `force` are PFs to configure even without drift (an interrupted
    apply). Raises InvalidSpec for values the daemon cannot act on and PlanError for a spec this node cannot take,
    before anything is planned."""
    issues = spec_problems(spec, {i.pci_address: i.total_vfs for i in observed.interfaces})
    if issues:
        raise InvalidSpec(issues)
    vf_ids = tuple(vf_device_ids)
    notes = list(observed.notes)
    configure: list[tuple[Interface, InterfaceExt]] = []
    for iface in spec.interfaces:
        status = observed.interface(iface.pci_address)
        if status is None:
            notes.append(f"{iface.pci_address}: in the spec but not found on this node; skipped")
            continue
        if need_to_update_sriov(iface, status) or iface.pci_address in force:
            configure.append((iface, status))

    steps = _module_steps(spec, observed)
    changed = False
    for iface, status in configure:
        steps += _record_steps(iface, observed)
        pf_steps = _configure_pf(iface, status, observed, vf_ids, notes)
        changed = changed or bool(pf_steps)
        steps += pf_steps
    for iface in spec.interfaces:  # unchanged PFs still get their record refreshed (upstream skipSriovConfig)
        if all(iface.pci_address != c.pci_address for c, _ in configure) and observed.interface(iface.pci_address):
            steps += _record_steps(iface, observed)
    # an interrupted apply may have written the rules without reloading them
    resumed = any(c.pci_address in force for c, _ in configure)
    if (changed or resumed) and any(effective_eswitch_mode(i.eswitch_mode) == ESWITCH_SWITCHDEV
                                    for i in spec.interfaces):
        steps.append(ReloadUdev())

    spec_pfs = {i.pci_address for i in spec.interfaces}
    reset = [s for s in observed.interfaces if s.pci_address not in spec_pfs and s.pci_address in observed.records]
    for status in reset:
        steps += _reset_pf(status, observed)
    steps += _ovs_steps(spec, observed, notes)
    return Plan(
        steps=tuple(steps),
        configure=tuple(c.pci_address for c, _ in configure),
        externally_managed=tuple(c.pci_address for c, _ in configure if c.externally_managed),
        reset=tuple(s.pci_address for s in reset if not observed.records[s.pci_address].externally_managed),
        drain=needs_drain(spec, observed),
        notes=tuple(notes),
    )


def needs_drain(spec: SriovNetworkNodeStateSpec, observed: Observation) -> bool:
    """Upstream `needToUpdateVFs`: a PF that has VFs now and must change, or an operator-configured PF with VFs
    that left the spec and is not externally managed."""
    wanted = {i.pci_address: i for i in spec.interfaces}
    for status in observed.interfaces:
        iface = wanted.get(status.pci_address)
        if iface is not None:
            if status.num_vfs > 0 and need_to_update_sriov(iface, status):
                return True
        elif status.num_vfs > 0:
            record = observed.records.get(status.pci_address)
            if record is not None and not record.externally_managed:
                return True
    return False


def _module_steps(spec: SriovNetworkNodeStateSpec, observed: Observation) -> list[Step]:
    """Upstream `syncDriverState`: bus drivers the groups need, before anything else."""
    needed: list[str] = []
    for iface in spec.interfaces:
        for group in iface.vf_groups:
            for module in (MODULE_FOR_VDPA_TYPE.get(group.vdpa_type), MODULE_FOR_DEVICE_TYPE.get(group.device_type)):
                if module and module not in needed:
                    needed.append(module)
    return [LoadModule(m) for m in sorted(needed) if m not in observed.loaded_modules]


def _record_steps(iface: Interface, observed: Observation) -> list[Step]:
    stored = observed.records.get(iface.pci_address)
    if stored is not None and stored.to_go_dict() == iface.to_go_dict():
        return []
    return [SaveRecord(iface.pci_address, iface.model_copy(deep=True))]


@dataclass
class _Vf:
    """A VF as the plan expects it at the VF stage."""

    ref: VfRef
    driver: str
    mtu: int = 0
    mac: str = ""
    vdpa_driver: str | None = None
    has_vdpa: bool = False
    fresh: bool = False


def _configure_pf(iface: Interface, status: InterfaceExt, observed: Observation, vf_ids: tuple[str, ...],
                  notes: list[str]) -> list[Step]:
    pf, netdev = iface.pci_address, status.name or iface.name
    facts = observed.facts(pf)
    target = effective_eswitch_mode(iface.eswitch_mode)
    mode = effective_eswitch_mode(status.eswitch_mode)
    steps: list[Step] = []
    recreated = False
    if iface.externally_managed:
        _check_externally_managed(iface, status)
    else:
        numvfs = status.num_vfs
        if target == ESWITCH_SWITCHDEV:
            if facts.hw_tc_offload is False:
                steps.append(EnableTcOffload(pf, netdev))
            fs = facts.flow_steering
            if fs is not None and fs.value != "" and fs.value != FLOW_STEERING_SMFS:
                if mode != ESWITCH_LEGACY:  # flow steering changes only in legacy
                    steps += mode_and_numvfs(pf, ESWITCH_LEGACY, 0, mode)
                    mode, numvfs, recreated = ESWITCH_LEGACY, 0, True
                steps.append(SetFlowSteering(pf, FLOW_STEERING_SMFS, fs.cmode or "runtime"))
        wanted = dict([nm_disable_rule(PciAddress(pf), vf_ids)])
        if target == ESWITCH_SWITCHDEV:
            wanted.update([pf_name_rule(PciAddress(pf), netdev)])
        representor_rule = None
        if target == ESWITCH_SWITCHDEV:
            if facts.switch_port is None:
                notes.append(f"{pf}: {netdev} shows no phys_port_name/phys_switch_id; representor udev rule skipped")
            else:
                representor_rule = switchdev_rule(PciAddress(pf), facts.switch_port.switch_id,
                                                  facts.switch_port.port_name, netdev)
        keep = set(wanted) | ({representor_rule[0]} if representor_rule else set())
        steps += [RemoveUdevRule(pf, name) for name in rule_filenames(PciAddress(pf))
                  if name in observed.udev_rules and name not in keep]
        steps += _write_rules(pf, wanted, observed)
        if numvfs != iface.num_vfs or mode != target:
            steps += mode_and_numvfs(pf, target, iface.num_vfs, mode)
            recreated = True
        if representor_rule:
            steps += _write_rules(pf, dict([representor_rule]), observed)
        if iface.mtu > 0 and iface.mtu > status.mtu:
            steps.append(SetPfMtu(pf, netdev, iface.mtu))
    if iface.num_vfs > 0:
        for vf in _vfs_at_vf_stage(iface, status, facts, recreated):
            steps += _configure_vf(iface, vf, target, facts, netdev)
    if status.link_admin_state == LINK_ADMIN_STATE_DOWN:
        steps.append(SetPfUp(pf, netdev))
    return steps


def _write_rules(pf: str, wanted: dict[str, str], observed: Observation) -> list[Step]:
    return [WriteUdevRule(pf, name, content) for name, content in wanted.items()
            if observed.udev_rules.get(name) != content]


def mode_and_numvfs(pf: str, target: str, count: int, mode: str) -> list[Step]:
    """Upstream `setEswitchModeAndNumVFsMlx` (also its fallback for other drivers): VFs are created in legacy,
    each must show up with its `physfn` link, and the eswitch goes to switchdev only with the VFs unbound."""
    steps: list[Step] = []
    if mode != ESWITCH_LEGACY:
        steps += [UnbindVfs(pf), SetEswitch(pf, EswitchMode.LEGACY)]
    steps.append(SetNumVfs(pf, count))
    if target == ESWITCH_SWITCHDEV:
        steps += [UnbindVfs(pf), SetEswitch(pf, EswitchMode.SWITCHDEV)]
    return steps


def _check_externally_managed(iface: Interface, status: InterfaceExt) -> None:
    """Upstream `checkExternallyManagedPF`: the admin set the PF up; the operator only checks it."""
    pf = iface.pci_address
    if iface.num_vfs > status.num_vfs:
        raise PlanError(f"{pf}: numVfs {iface.num_vfs} is more than the {status.num_vfs} VFs present, and the "
                        "policy marks the PF externallyManaged: create the VFs on the host first")
    current, wanted = effective_eswitch_mode(status.eswitch_mode), effective_eswitch_mode(iface.eswitch_mode)
    if current != wanted:
        raise PlanError(f"{pf}: eSwitchMode {wanted!r} differs from the configured {current!r}, and the policy "
                        "marks the PF externallyManaged: set the eswitch mode on the host first")
    if iface.mtu > 0 and iface.mtu > status.mtu:
        raise PlanError(f"{pf}: mtu {iface.mtu} is greater than the configured {status.mtu}, and the policy marks "
                        "the PF externallyManaged: raise the PF MTU on the host first")


def _vfs_at_vf_stage(iface: Interface, status: InterfaceExt, facts: PfFacts, recreated: bool) -> list[_Vf]:
    pf = iface.pci_address
    if recreated:
        # New VFs are unbound after the switch to switchdev; in legacy they are probed, unless the count did not
        # change (the kernel keeps the VFs we unbound for the mode switch). Binding a bound VF is a no-op.
        return [_Vf(VfRef(pf, i), "", fresh=True) for i in range(iface.num_vfs)]
    vfs = []
    for vf in sorted(status.vfs, key=lambda v: v.vf_id):
        has_vdpa = vf.pci_address in facts.vdpa
        vfs.append(_Vf(VfRef(pf, vf.vf_id, vf.pci_address), vf.driver, mtu=vf.mtu, mac=vf.mac,
                       vdpa_driver=facts.vdpa.get(vf.pci_address), has_vdpa=has_vdpa))
    return vfs


def _configure_vf(iface: Interface, vf: _Vf, target: str, facts: PfFacts, netdev: str) -> list[Step]:
    """Upstream `configSriovVFDevices` for one VF. A VF this plan binds gets its admin MAC set too: before the
    bind its netdev, and so its MAC, cannot be seen (a VF left unbound by an interrupted apply is one)."""
    steps: list[Step] = []
    driver = vf.driver
    if not driver:
        steps.append(BindDefault(vf.ref))
        driver = DEFAULT_VF_DRIVER
    group = _group_of(iface, vf.ref.index)
    if group is None:
        return steps
    if driver not in DPDK_DRIVERS:
        admin = facts.admin_macs.get(vf.ref.index, "")
        if vf.fresh or not vf.driver or (vf.mac and admin.lower() != vf.mac.lower()):
            steps.append(SetAdminMac(vf.ref, netdev))
    if group.is_rdma:
        steps.append(UnbindVf(vf.ref))
        driver = ""
    switchdev = target == ESWITCH_SWITCHDEV
    if switchdev and not group.vdpa_type and vf.has_vdpa:
        steps.append(DeleteVdpa(vf.ref))
    if group.device_type in DPDK_DRIVERS:
        if driver != group.device_type:
            steps.append(BindDpdk(vf.ref, group.device_type))
        return steps
    if driver != DEFAULT_VF_DRIVER:
        steps.append(BindDefault(vf.ref))
    if group.mtu > 0 and (vf.fresh or vf.mtu != group.mtu):
        steps.append(SetVfMtu(vf.ref, group.mtu))
    if switchdev and group.vdpa_type:
        wanted = VDPA_DRIVER_FOR_TYPE[group.vdpa_type]
        if not vf.has_vdpa:
            steps.append(CreateVdpa(vf.ref, group.vdpa_type))
        if vf.vdpa_driver != wanted:
            steps.append(BindVdpa(vf.ref, wanted))
    return steps


def _group_of(iface: Interface, index: int) -> VfGroup | None:
    return next((g for g in iface.vf_groups if index_in_range(index, g.vf_range)), None)


def _reset_pf(status: InterfaceExt, observed: Observation) -> list[Step]:
    """Upstream `checkForConfigAndReset`: only PFs with a record; externally managed ones just lose it."""
    pf = status.pci_address
    if observed.records[pf].externally_managed:
        return [DeleteRecord(pf)]
    steps: list[Step] = [RemoveUdevRule(pf, name) for name in rule_filenames(PciAddress(pf))
             if name in observed.udev_rules]
    if status.num_vfs > 0:
        steps += reset_device(status, observed.initial.get(pf))
    steps.append(DeleteRecord(pf))
    return steps


def reset_device(status: InterfaceExt, initial: InterfaceExt | None) -> list[Step]:
    """Upstream `ResetSriovDevice` (Ethernet): the MTU and eswitch mode of the first status ever seen (else
    1500 and legacy), and no VFs. Also run after a failed configuration of a PF."""
    pf = status.pci_address
    mtu = initial.mtu if initial is not None else DEFAULT_RESET_MTU
    mode = effective_eswitch_mode(initial.eswitch_mode) if initial is not None else ESWITCH_LEGACY
    steps = []
    if mtu and mtu != status.mtu:
        steps.append(SetPfMtu(pf, status.name, mtu))
    return steps + mode_and_numvfs(pf, mode, 0, effective_eswitch_mode(status.eswitch_mode))


def _ovs_steps(spec: SriovNetworkNodeStateSpec, observed: Observation, notes: list[str]) -> list[Step]:
    """hw-offload on while any PF in the spec is switchdev; off again once none is and this daemon set it."""
    switchdev = any(effective_eswitch_mode(i.eswitch_mode) == ESWITCH_SWITCHDEV for i in spec.interfaces)
    if not observed.ovs_present:
        if switchdev:
            notes.append(f"Open vSwitch not reachable ({observed.ovs_problem or 'no OVSDB socket'}): "
                         f"other_config:{OVS_HW_OFFLOAD_KEY} not set; flows will not be offloaded")
        return []
    if switchdev and observed.ovs_hw_offload != "true":
        return [SetOvsHwOffload()]
    if not switchdev and observed.ovs_offload_owned and observed.ovs_hw_offload == "true":
        return [RemoveOvsHwOffload()]
    return []
