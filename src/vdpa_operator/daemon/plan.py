"""From (NodeState spec, what the node shows) to the ordered steps that make the node match: a pure function,
so the same plan is printed by `vdpactl node plan`, run by the daemon, and checked by table tests.

The order is upstream's for mlx5 (upstream-operator.md §4.5–§4.7, `pkg/host/internal/sriov`): modules, then per
PF to configure: record, hw-tc-offload, flow steering (while legacy), udev rules, VFs in legacy and the switch to
switchdev, the representor rule, PF MTU, then per VF: default driver, admin MAC, vDPA devices, MTU; PF up;
udev reload; then resets of PFs the operator configured that left the spec; then OVS hw-offload.

A PF is configured when upstream's drift predicate (`need_to_update_sriov`) says so, or when an interrupted
apply touched it (`force`). Within a configured PF a step is planned only where the node differs, so a plan
for a converged node is empty and re-running any plan is harmless. Steps that depend on what an earlier step
creates (the addresses and MACs of VFs that do not exist yet) name the VF by index; the applier resolves them.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable
from dataclasses import dataclass

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
from vdpa_operator.api.selection import index_in_range
from vdpa_operator.daemon.observed import Observation, PfFacts
from vdpa_operator.host.types import VDPA_DRIVER_FOR_TYPE, PciAddress, is_pci_address, vdpa_name
from vdpa_operator.host.udev_rules import nm_disable_rule, pf_name_rule, rule_filenames, switchdev_rule

DEFAULT_VF_DRIVER = "mlx5_core"
FLOW_STEERING_PARAM = "flow_steering_mode"
FLOW_STEERING_SMFS = "smfs"
HW_TC_OFFLOAD = "hw-tc-offload"
VDPA_MAX_VQP = 32
"""Upstream creates every vDPA device with `max_vqp 32` (multiqueue), retrying without it on EOPNOTSUPP."""
DEFAULT_RESET_MTU = 1500
MODULE_FOR_VDPA_TYPE = {vdpa_type: str(driver) for vdpa_type, driver in VDPA_DRIVER_FOR_TYPE.items()}
"""Each vdpa bus driver is the module of the same name."""
MODULE_FOR_DEVICE_TYPE = {DEVICE_TYPE_VFIO_PCI: "vfio_pci"}
MANAGED_MODULES = frozenset({*MODULE_FOR_VDPA_TYPE.values(), *MODULE_FOR_DEVICE_TYPE.values()})
OVS_HW_OFFLOAD_KEY = "hw-offload"


class Action(enum.StrEnum):
    LOAD_MODULE = "load-module"
    SAVE_RECORD = "save-pf-record"
    DELETE_RECORD = "delete-pf-record"
    ENABLE_TC_OFFLOAD = "enable-hw-tc-offload"
    SET_FLOW_STEERING = "set-flow-steering-mode"
    REMOVE_UDEV_RULE = "remove-udev-rule"
    WRITE_UDEV_RULE = "write-udev-rule"
    UNBIND_VFS = "unbind-vfs"
    SET_ESWITCH = "set-eswitch-mode"
    SET_NUMVFS = "set-numvfs"
    SET_PF_MTU = "set-pf-mtu"
    BIND_DEFAULT = "bind-default-driver"
    SET_ADMIN_MAC = "set-vf-admin-mac"
    UNBIND_VF = "unbind-vf"
    DELETE_VDPA = "delete-vdpa"
    CREATE_VDPA = "create-vdpa"
    BIND_VDPA = "bind-vdpa-driver"
    BIND_DPDK = "bind-dpdk-driver"
    SET_VF_MTU = "set-vf-mtu"
    SET_PF_UP = "set-pf-up"
    RELOAD_UDEV = "reload-udev-rules"
    SET_OVS_HW_OFFLOAD = "set-ovs-hw-offload"
    REMOVE_OVS_HW_OFFLOAD = "remove-ovs-hw-offload"


@dataclass(frozen=True)
class VfRef:
    """A VF by its PF and index; `address` is known when the VF existed at planning time."""

    pf: str
    index: int
    address: str | None = None

    def __str__(self) -> str:
        return self.address or f"VF {self.index} of {self.pf}"


@dataclass(frozen=True)
class Step:
    action: Action
    pf: str = ""
    """The PF the step belongs to; "" for node-wide steps."""
    vf: VfRef | None = None
    netdev: str = ""
    """The PF netdev for netdev-level steps."""
    value: str = ""
    """What the step sets: a mode, a count, an MTU, a driver, a module, a rule file name."""
    content: str = ""
    """Rule file content, PF record JSON, devlink cmode."""
    device: str = ""
    """The devlink handle (eswitch, flow steering) or vDPA management device (create) when it is not the PCI
    default (`pci/<pf>`, `pci/<vf>`): the kernel test bed's netdevsim and vdpa_sim_net devices."""

    def describe(self, vf_address: str | None = None) -> str:
        """One line, naming the object as `ip`, `devlink` and `vdpa` would (`vf_address` once resolved)."""
        vf = vf_address or (str(self.vf) if self.vf else "")
        a = Action
        match self.action:
            case a.LOAD_MODULE:
                return f"load kernel module {self.value}"
            case a.SAVE_RECORD:
                return f"save PF record {self.pf}"
            case a.DELETE_RECORD:
                return f"delete PF record {self.pf}"
            case a.ENABLE_TC_OFFLOAD:
                return f"enable {HW_TC_OFFLOAD} on {self.netdev}"
            case a.SET_FLOW_STEERING:
                return f"set devlink param {FLOW_STEERING_PARAM}={self.value} on {self.device or 'pci/' + self.pf}"
            case a.REMOVE_UDEV_RULE:
                return f"remove udev rule {self.value}"
            case a.WRITE_UDEV_RULE:
                return f"write udev rule {self.value}"
            case a.UNBIND_VFS:
                return f"unbind the VFs of {self.pf}"
            case a.SET_ESWITCH:
                return f"set eswitch mode {self.value} on {self.device or 'pci/' + self.pf}"
            case a.SET_NUMVFS:
                return f"set sriov_numvfs={self.value} on {self.pf} and wait for the VFs"
            case a.SET_PF_MTU:
                return f"set mtu {self.value} on {self.netdev}"
            case a.BIND_DEFAULT:
                return f"bind {vf} to its default driver"
            case a.SET_ADMIN_MAC:
                return f"set admin MAC of {vf} on {self.netdev}"
            case a.UNBIND_VF:
                return f"unbind {vf}"
            case a.DELETE_VDPA:
                return f"delete vdpa device {vdpa_label(vf)}"
            case a.CREATE_VDPA:
                on = f" on {self.device}" if self.device else ""
                return f"create vdpa device {vdpa_label(vf)}{on} max_vqp {VDPA_MAX_VQP}"
            case a.BIND_VDPA:
                return f"bind {vdpa_label(vf)} to {self.value}"
            case a.BIND_DPDK:
                return f"bind {vf} to {self.value}"
            case a.SET_VF_MTU:
                return f"set mtu {self.value} on the netdev of {vf}"
            case a.SET_PF_UP:
                return f"set {self.netdev} up"
            case a.RELOAD_UDEV:
                return "reload udev rules (rename representors)"
            case a.SET_OVS_HW_OFFLOAD:
                return f"set Open_vSwitch other_config:{OVS_HW_OFFLOAD_KEY}=true"
            case a.REMOVE_OVS_HW_OFFLOAD:
                return f"remove Open_vSwitch other_config:{OVS_HW_OFFLOAD_KEY}"
        raise AssertionError(self.action)

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {"action": str(self.action), "description": self.describe()}
        if self.pf:
            data["pf"] = self.pf
        if self.vf:
            data["vf"] = {"pf": self.vf.pf, "index": self.vf.index, "address": self.vf.address}
        if self.value:
            data["value"] = self.value
        return data


def vdpa_label(vf: str) -> str:
    return vdpa_name(PciAddress(vf)) if is_pci_address(vf) else f"vdpa:<{vf}>"


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


class PlanError(Exception):
    """The spec cannot be applied to this node as it is (nothing was changed)."""

    def __init__(self, pf: str, message: str) -> None:
        self.pf = pf
        super().__init__(f"{pf}: {message}")


# --- the plan ---------------------------------------------------------------------------------------------------


def plan(spec: SriovNetworkNodeStateSpec, observed: Observation, *, vf_device_ids: Iterable[str],
         force: Collection[str] = ()) -> Plan:
    """The steps that bring the node to `spec`. `vf_device_ids` are the supported VF device ids (the
    NetworkManager udev rule lists them); `force` are PFs to configure even without drift (an interrupted
    apply). Raises PlanError for a spec this node cannot take, before anything is planned."""
    vf_ids = tuple(vf_device_ids)
    notes: list[str] = []
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
    if changed and any(effective_eswitch_mode(i.eswitch_mode) == ESWITCH_SWITCHDEV for i in spec.interfaces):
        steps.append(Step(Action.RELOAD_UDEV))

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
    return [Step(Action.LOAD_MODULE, value=m) for m in sorted(needed) if m not in observed.loaded_modules]


def _record_steps(iface: Interface, observed: Observation) -> list[Step]:
    stored = observed.records.get(iface.pci_address)
    if stored is not None and stored.to_go_dict() == iface.to_go_dict():
        return []
    return [Step(Action.SAVE_RECORD, pf=iface.pci_address, content=iface.model_dump_json(by_alias=True,
                                                                                         exclude_defaults=True))]


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
        if iface.num_vfs > status.total_vfs:
            raise PlanError(pf, f"numVfs {iface.num_vfs} is larger than sriov_totalvfs {status.total_vfs}; "
                                "lower numVfs in the policy or enable more VFs in the NIC firmware")
        numvfs = status.num_vfs
        if target == ESWITCH_SWITCHDEV:
            if facts.hw_tc_offload is False:
                steps.append(Step(Action.ENABLE_TC_OFFLOAD, pf=pf, netdev=netdev))
            fs = facts.flow_steering
            if fs is not None and fs.value != "" and fs.value != FLOW_STEERING_SMFS:
                if mode != ESWITCH_LEGACY:  # flow steering changes only in legacy
                    steps += mode_and_numvfs(pf, ESWITCH_LEGACY, 0, mode)
                    mode, numvfs, recreated = ESWITCH_LEGACY, 0, True
                steps.append(Step(Action.SET_FLOW_STEERING, pf=pf, value=FLOW_STEERING_SMFS, content=fs.cmode))
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
        steps += [Step(Action.REMOVE_UDEV_RULE, pf=pf, value=name) for name in rule_filenames(PciAddress(pf))
                  if name in observed.udev_rules and name not in keep]
        steps += _write_rules(pf, wanted, observed)
        if numvfs != iface.num_vfs or mode != target:
            steps += mode_and_numvfs(pf, target, iface.num_vfs, mode)
            recreated = True
        if representor_rule:
            steps += _write_rules(pf, dict([representor_rule]), observed)
        if iface.mtu > 0 and iface.mtu > status.mtu:
            steps.append(Step(Action.SET_PF_MTU, pf=pf, netdev=netdev, value=str(iface.mtu)))
    if iface.num_vfs > 0:
        for vf in _vfs_at_vf_stage(iface, status, facts, recreated):
            steps += _configure_vf(iface, vf, target, facts, netdev)
    if status.link_admin_state == LINK_ADMIN_STATE_DOWN:
        steps.append(Step(Action.SET_PF_UP, pf=pf, netdev=netdev))
    return steps


def _write_rules(pf: str, wanted: dict[str, str], observed: Observation) -> list[Step]:
    return [Step(Action.WRITE_UDEV_RULE, pf=pf, value=name, content=content) for name, content in wanted.items()
            if observed.udev_rules.get(name) != content]


def mode_and_numvfs(pf: str, target: str, count: int, mode: str) -> list[Step]:
    """Upstream `setEswitchModeAndNumVFsMlx` (also its fallback for other drivers): VFs are created in legacy,
    each must show up with its `physfn` link, and the eswitch goes to switchdev only with the VFs unbound."""
    steps = []
    if mode != ESWITCH_LEGACY:
        steps += [Step(Action.UNBIND_VFS, pf=pf), Step(Action.SET_ESWITCH, pf=pf, value=ESWITCH_LEGACY)]
    steps.append(Step(Action.SET_NUMVFS, pf=pf, value=str(count)))
    if target == ESWITCH_SWITCHDEV:
        steps += [Step(Action.UNBIND_VFS, pf=pf), Step(Action.SET_ESWITCH, pf=pf, value=ESWITCH_SWITCHDEV)]
    return steps


def _check_externally_managed(iface: Interface, status: InterfaceExt) -> None:
    """Upstream `checkExternallyManagedPF`: the admin set the PF up; the operator only checks it."""
    pf = iface.pci_address
    if iface.num_vfs > status.num_vfs:
        raise PlanError(pf, f"numVfs {iface.num_vfs} is more than the {status.num_vfs} VFs present, and the policy "
                            "marks the PF externallyManaged: create the VFs on the host first")
    current, wanted = effective_eswitch_mode(status.eswitch_mode), effective_eswitch_mode(iface.eswitch_mode)
    if current != wanted:
        raise PlanError(pf, f"eSwitchMode {wanted!r} differs from the configured {current!r}, and the policy marks "
                            "the PF externallyManaged: set the eswitch mode on the host first")
    if iface.mtu > 0 and iface.mtu > status.mtu:
        raise PlanError(pf, f"mtu {iface.mtu} is greater than the configured {status.mtu}, and the policy marks the "
                            "PF externallyManaged: raise the PF MTU on the host first")


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
    """Upstream `configSriovVFDevices` for one VF."""
    pf = iface.pci_address
    steps: list[Step] = []
    driver = vf.driver
    if not driver:
        steps.append(Step(Action.BIND_DEFAULT, pf=pf, vf=vf.ref))
        driver = DEFAULT_VF_DRIVER
    group = _group_of(iface, vf.ref.index)
    if group is None:
        return steps
    if driver not in DPDK_DRIVERS:
        admin = facts.admin_macs.get(vf.ref.index, "")
        if vf.fresh or (vf.mac and admin.lower() != vf.mac.lower()):
            steps.append(Step(Action.SET_ADMIN_MAC, pf=pf, vf=vf.ref, netdev=netdev))
    if group.is_rdma:
        steps.append(Step(Action.UNBIND_VF, pf=pf, vf=vf.ref))
        driver = ""
    switchdev = target == ESWITCH_SWITCHDEV
    if switchdev and not group.vdpa_type and vf.has_vdpa:
        steps.append(Step(Action.DELETE_VDPA, pf=pf, vf=vf.ref))
    if group.device_type in DPDK_DRIVERS:
        if driver != group.device_type:
            steps.append(Step(Action.BIND_DPDK, pf=pf, vf=vf.ref, value=group.device_type))
        return steps
    if driver != DEFAULT_VF_DRIVER:
        steps.append(Step(Action.BIND_DEFAULT, pf=pf, vf=vf.ref))
    if group.mtu > 0 and (vf.fresh or vf.mtu != group.mtu):
        steps.append(Step(Action.SET_VF_MTU, pf=pf, vf=vf.ref, value=str(group.mtu)))
    if switchdev and group.vdpa_type:
        wanted = VDPA_DRIVER_FOR_TYPE[group.vdpa_type]
        if not vf.has_vdpa:
            steps.append(Step(Action.CREATE_VDPA, pf=pf, vf=vf.ref, value=group.vdpa_type))
        if vf.vdpa_driver != wanted:
            steps.append(Step(Action.BIND_VDPA, pf=pf, vf=vf.ref, value=str(wanted)))
    return steps


def _group_of(iface: Interface, index: int) -> VfGroup | None:
    return next((g for g in iface.vf_groups if index_in_range(index, g.vf_range)), None)


def _reset_pf(status: InterfaceExt, observed: Observation) -> list[Step]:
    """Upstream `checkForConfigAndReset`: only PFs with a record; externally managed ones just lose it."""
    pf = status.pci_address
    if observed.records[pf].externally_managed:
        return [Step(Action.DELETE_RECORD, pf=pf)]
    steps = [Step(Action.REMOVE_UDEV_RULE, pf=pf, value=name) for name in rule_filenames(PciAddress(pf))
             if name in observed.udev_rules]
    if status.num_vfs > 0:
        steps += reset_device(status, observed.initial.get(pf))
    steps.append(Step(Action.DELETE_RECORD, pf=pf))
    return steps


def reset_device(status: InterfaceExt, initial: InterfaceExt | None) -> list[Step]:
    """Upstream `ResetSriovDevice` (Ethernet): the MTU and eswitch mode of the first status ever seen (else
    1500 and legacy), and no VFs. Also run after a failed configuration of a PF."""
    pf = status.pci_address
    mtu = initial.mtu if initial is not None else DEFAULT_RESET_MTU
    mode = effective_eswitch_mode(initial.eswitch_mode) if initial is not None else ESWITCH_LEGACY
    steps = []
    if mtu and mtu != status.mtu:
        steps.append(Step(Action.SET_PF_MTU, pf=pf, netdev=status.name, value=str(mtu)))
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
        return [Step(Action.SET_OVS_HW_OFFLOAD)]
    if not switchdev and observed.ovs_offload_owned and observed.ovs_hw_offload == "true":
        return [Step(Action.REMOVE_OVS_HW_OFFLOAD)]
    return []
