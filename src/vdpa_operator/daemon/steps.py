"""The steps of a node plan: one frozen dataclass per kind, with the fields that kind needs and the one line
`vdpactl node plan` prints for it. `daemon.plan` decides which steps to take, `daemon.apply` performs them with
one dispatch on the class; a new kind of step is one class here and one case there, both checked by mypy.

Steps that act on a VF carry a `VfRef`: the VF's address when it existed at planning time, else its PF and
index (the applier resolves those once the VF exists). The devlink handle and vDPA management device default
to the PCI ones (`pci/<pf>`, `pci/<vf>`); the kernel test bed points them at netdevsim and vdpa_sim_net.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import ClassVar, TypeAlias

from vdpa_operator.api.models import Interface
from vdpa_operator.host.types import (
    DevlinkHandle,
    EswitchMode,
    PciAddress,
    VdpaDriver,
    VdpaMgmtDev,
    is_pci_address,
    vdpa_name,
)

FLOW_STEERING_PARAM = "flow_steering_mode"
HW_TC_OFFLOAD = "hw-tc-offload"
OVS_HW_OFFLOAD_KEY = "hw-offload"
VDPA_MAX_VQP = 32
"""Upstream creates every vDPA device with `max_vqp 32` (multiqueue), retrying without it on EOPNOTSUPP."""


@dataclass(frozen=True)
class VfRef:
    """A VF by its PF and index; `address` is known when the VF existed at planning time."""

    pf: str
    index: int
    address: str | None = None

    def __str__(self) -> str:
        return self.address or f"VF {self.index} of {self.pf}"


def vdpa_label(vf: str) -> str:
    return vdpa_name(PciAddress(vf)) if is_pci_address(vf) else f"vdpa:<{vf}>"


# --- node-wide steps ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _OnNode:
    pf: ClassVar[str] = ""
    vf: ClassVar[None] = None


@dataclass(frozen=True)
class LoadModule(_OnNode):
    action: ClassVar[str] = "load-module"
    module: str

    def describe(self, vf_address: str | None = None) -> str:
        return f"load kernel module {self.module}"


@dataclass(frozen=True)
class ReloadUdev(_OnNode):
    action: ClassVar[str] = "reload-udev-rules"

    def describe(self, vf_address: str | None = None) -> str:
        return "reload udev rules (rename representors)"


@dataclass(frozen=True)
class SetOvsHwOffload(_OnNode):
    action: ClassVar[str] = "set-ovs-hw-offload"

    def describe(self, vf_address: str | None = None) -> str:
        return f"set Open_vSwitch other_config:{OVS_HW_OFFLOAD_KEY}=true"


@dataclass(frozen=True)
class RemoveOvsHwOffload(_OnNode):
    action: ClassVar[str] = "remove-ovs-hw-offload"

    def describe(self, vf_address: str | None = None) -> str:
        return f"remove Open_vSwitch other_config:{OVS_HW_OFFLOAD_KEY}"


# --- PF steps -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _OnPf:
    vf: ClassVar[None] = None
    pf: str


@dataclass(frozen=True)
class SaveRecord(_OnPf):
    """The PF record (the ownership marker a reset needs), saved before the PF is touched."""

    action: ClassVar[str] = "save-pf-record"
    record: Interface

    def describe(self, vf_address: str | None = None) -> str:
        return f"save PF record {self.pf}"


@dataclass(frozen=True)
class DeleteRecord(_OnPf):
    action: ClassVar[str] = "delete-pf-record"

    def describe(self, vf_address: str | None = None) -> str:
        return f"delete PF record {self.pf}"


@dataclass(frozen=True)
class EnableTcOffload(_OnPf):
    action: ClassVar[str] = "enable-hw-tc-offload"
    netdev: str

    def describe(self, vf_address: str | None = None) -> str:
        return f"enable {HW_TC_OFFLOAD} on {self.netdev}"


@dataclass(frozen=True)
class SetFlowSteering(_OnPf):
    action: ClassVar[str] = "set-flow-steering-mode"
    mode: str
    cmode: str = "runtime"
    devlink: DevlinkHandle | None = None

    @property
    def handle(self) -> DevlinkHandle:
        return self.devlink or DevlinkHandle.pci(PciAddress(self.pf))

    def describe(self, vf_address: str | None = None) -> str:
        return f"set devlink param {FLOW_STEERING_PARAM}={self.mode} on {self.handle}"


@dataclass(frozen=True)
class RemoveUdevRule(_OnPf):
    action: ClassVar[str] = "remove-udev-rule"
    rule: str
    """The rule file's name."""

    def describe(self, vf_address: str | None = None) -> str:
        return f"remove udev rule {self.rule}"


@dataclass(frozen=True)
class WriteUdevRule(_OnPf):
    action: ClassVar[str] = "write-udev-rule"
    rule: str
    content: str

    def describe(self, vf_address: str | None = None) -> str:
        return f"write udev rule {self.rule}"


@dataclass(frozen=True)
class UnbindVfs(_OnPf):
    action: ClassVar[str] = "unbind-vfs"

    def describe(self, vf_address: str | None = None) -> str:
        return f"unbind the VFs of {self.pf}"


@dataclass(frozen=True)
class SetEswitch(_OnPf):
    action: ClassVar[str] = "set-eswitch-mode"
    mode: EswitchMode
    devlink: DevlinkHandle | None = None

    @property
    def handle(self) -> DevlinkHandle:
        return self.devlink or DevlinkHandle.pci(PciAddress(self.pf))

    def describe(self, vf_address: str | None = None) -> str:
        return f"set eswitch mode {self.mode} on {self.handle}"


@dataclass(frozen=True)
class SetNumVfs(_OnPf):
    action: ClassVar[str] = "set-numvfs"
    count: int

    def describe(self, vf_address: str | None = None) -> str:
        return f"set sriov_numvfs={self.count} on {self.pf} and wait for the VFs"


@dataclass(frozen=True)
class SetPfMtu(_OnPf):
    action: ClassVar[str] = "set-pf-mtu"
    netdev: str
    mtu: int

    def describe(self, vf_address: str | None = None) -> str:
        return f"set mtu {self.mtu} on {self.netdev}"


@dataclass(frozen=True)
class SetPfUp(_OnPf):
    action: ClassVar[str] = "set-pf-up"
    netdev: str

    def describe(self, vf_address: str | None = None) -> str:
        return f"set {self.netdev} up"


# --- VF steps -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _OnVf:
    vf: VfRef

    @property
    def pf(self) -> str:
        return self.vf.pf

    def _name(self, vf_address: str | None) -> str:
        return vf_address or str(self.vf)


@dataclass(frozen=True)
class BindDefault(_OnVf):
    action: ClassVar[str] = "bind-default-driver"

    def describe(self, vf_address: str | None = None) -> str:
        return f"bind {self._name(vf_address)} to its default driver"


@dataclass(frozen=True)
class SetAdminMac(_OnVf):
    """Pin the VF's current MAC as its administrative MAC on the PF netdev `netdev`."""

    action: ClassVar[str] = "set-vf-admin-mac"
    netdev: str

    def describe(self, vf_address: str | None = None) -> str:
        return f"set admin MAC of {self._name(vf_address)} on {self.netdev}"


@dataclass(frozen=True)
class UnbindVf(_OnVf):
    action: ClassVar[str] = "unbind-vf"

    def describe(self, vf_address: str | None = None) -> str:
        return f"unbind {self._name(vf_address)}"


@dataclass(frozen=True)
class DeleteVdpa(_OnVf):
    action: ClassVar[str] = "delete-vdpa"

    def describe(self, vf_address: str | None = None) -> str:
        return f"delete vdpa device {vdpa_label(self._name(vf_address))}"


@dataclass(frozen=True)
class CreateVdpa(_OnVf):
    action: ClassVar[str] = "create-vdpa"
    vdpa_type: str
    mgmtdev: VdpaMgmtDev | None = None
    """None: the VF's own management device, `pci/<VF>`."""

    def describe(self, vf_address: str | None = None) -> str:
        on = f" on {self.mgmtdev}" if self.mgmtdev else ""
        return f"create vdpa device {vdpa_label(self._name(vf_address))}{on} max_vqp {VDPA_MAX_VQP}"


@dataclass(frozen=True)
class BindVdpa(_OnVf):
    action: ClassVar[str] = "bind-vdpa-driver"
    driver: VdpaDriver

    def describe(self, vf_address: str | None = None) -> str:
        return f"bind {vdpa_label(self._name(vf_address))} to {self.driver}"


@dataclass(frozen=True)
class BindDpdk(_OnVf):
    action: ClassVar[str] = "bind-dpdk-driver"
    driver: str

    def describe(self, vf_address: str | None = None) -> str:
        return f"bind {self._name(vf_address)} to {self.driver}"


@dataclass(frozen=True)
class SetVfMtu(_OnVf):
    action: ClassVar[str] = "set-vf-mtu"
    mtu: int

    def describe(self, vf_address: str | None = None) -> str:
        return f"set mtu {self.mtu} on the netdev of {self._name(vf_address)}"


Step: TypeAlias = (
    LoadModule | ReloadUdev | SetOvsHwOffload | RemoveOvsHwOffload
    | SaveRecord | DeleteRecord | EnableTcOffload | SetFlowSteering | RemoveUdevRule | WriteUdevRule | UnbindVfs
    | SetEswitch | SetNumVfs | SetPfMtu | SetPfUp
    | BindDefault | SetAdminMac | UnbindVf | DeleteVdpa | CreateVdpa | BindVdpa | BindDpdk | SetVfMtu
)


def step_to_dict(step: Step) -> dict[str, object]:
    """A step as `vdpactl node plan -o json` prints it: its kind, its line, its PF and VF, and its own fields."""
    data: dict[str, object] = {"action": step.action, "description": step.describe()}
    if step.pf:
        data["pf"] = step.pf
    if step.vf is not None:
        data["vf"] = {"pf": step.vf.pf, "index": step.vf.index, "address": step.vf.address}
    for f in dataclasses.fields(step):
        value = getattr(step, f.name)
        if f.name in ("pf", "vf") or value is None:
            continue
        data[_camel(f.name)] = _json_value(value)
    return data


def _json_value(value: object) -> object:
    if isinstance(value, Interface):
        return value.to_go_dict()
    if isinstance(value, bool | int | str) and not isinstance(value, enum.Enum):
        return value
    return str(value)


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part.capitalize() for part in rest)
