"""The daemon's apply under kernel faults, on the simulated host: every kind of step a vDPA apply runs fails once
with each of EBUSY, ENOSPC, EOPNOTSUPP, ENODEV and ETIMEDOUT. The apply must stop at that step (unless upstream
tolerates that errno there) with a message naming the step, its object and the errno; the next sync must
converge. Plus a real timeout: VFs that appear later than the daemon waits for.

The step kinds are taken from real plans (`test_every_fault_op_is_hit_by_some_scenario` fails when a plan
changes so that a scenario no longer contains the step it is meant to break). A fault is injected from the
`on_step` callback, just before its step runs, so it hits that step and not an earlier operation of the same
kind (the autoprobe of new VFs is a `pci_bind`, the reset after a failure is more `sriov_numvfs` writes).
"""

from __future__ import annotations

import errno as E
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from vdpa_operator.api.models import SriovNetworkNodeStateSpec
from vdpa_operator.api.nics import DEFAULT_SUPPORTED_NICS
from vdpa_operator.api.selection import index_in_range
from vdpa_operator.daemon.apply import ApplyResult
from vdpa_operator.daemon.node import NodeAgent
from vdpa_operator.daemon.observed import Observation
from vdpa_operator.daemon.plan import Plan
from vdpa_operator.daemon.steps import (
    BindDefault,
    BindVdpa,
    CreateVdpa,
    DeleteVdpa,
    EnableTcOffload,
    LoadModule,
    SetAdminMac,
    SetEswitch,
    SetFlowSteering,
    SetNumVfs,
    SetPfMtu,
    SetPfUp,
    SetVfMtu,
    Step,
    UnbindVfs,
)
from vdpa_operator.daemon.store import DaemonStore
from vdpa_operator.host.errors import HostTimeout
from vdpa_operator.host.sim import SimKernel, sim_host
from vdpa_operator.host.types import VDPA_DRIVER_FOR_TYPE, PciAddress, vdpa_name

SEED_SPEC = json.loads((Path(__file__).parents[2] / "golden" / "seed-node-state-spec.json").read_text())
PF0, PF1 = "0000:65:00.0", "0000:65:00.1"
NETDEV = {PF0: "ens1f0", PF1: "ens1f1"}
VF_ADDRESS = {  # the simulated CX-6 Dx's routing-ID layout (host/sim/kernel/pci.py, rule 1)
    (PF0, 0): "0000:65:00.2", (PF0, 1): "0000:65:00.3",
    (PF1, 0): "0000:65:01.2", (PF1, 1): "0000:65:01.3",
}

FAULT_OP = {
    LoadModule: "module_load",
    EnableTcOffload: "feature_set",
    SetFlowSteering: "param_set",
    SetNumVfs: "sriov_numvfs",
    UnbindVfs: "pci_unbind",
    SetEswitch: "eswitch_set",
    SetPfMtu: "link_set",
    BindDefault: "pci_bind",
    SetAdminMac: "vf_mac_set",
    DeleteVdpa: "vdpa_dev_del",
    CreateVdpa: "vdpa_dev_new",
    BindVdpa: "vdpa_bind",
    SetVfMtu: "link_set",
    SetPfUp: "link_set",
}
ERRNOS = {"EBUSY": E.EBUSY, "ENOSPC": E.ENOSPC, "EOPNOTSUPP": E.EOPNOTSUPP, "ENODEV": E.ENODEV,
          "ETIMEDOUT": E.ETIMEDOUT}

StepKind = type[Step]

TOLERATED: dict[tuple[StepKind, int], tuple[str, ...]] = {
    # upstream configureHWOptionsForSwitchdev: flow_steering_mode ENOTSUP/EINVAL/ENODEV are logged and skipped;
    # the apply reports it in a note naming the device, the parameter and the errno
    (SetFlowSteering, E.EOPNOTSUPP): (f"pci/{PF0}", "flow_steering_mode", "EOPNOTSUPP"),
    (SetFlowSteering, E.ENODEV): (f"pci/{PF0}", "flow_steering_mode", "ENODEV"),
    # upstream EnableHwTcOffload: a feature the device cannot change is skipped (with a note)
    (EnableTcOffload, E.EOPNOTSUPP): (NETDEV[PF0], "hw-tc-offload"),
    # upstream CreateVDPADevice: EOPNOTSUPP to max_vqp → created again without it (checked separately below)
    (CreateVdpa, E.EOPNOTSUPP): (),
    # upstream DeleteVDPADevice: ENODEV means "no such device", which is what the step wants
    (DeleteVdpa, E.ENODEV): (),
}
"""(step kind, errno) the apply goes through, and what its note about it names."""

ARMED_EARLIER = {BindVdpa: (CreateVdpa, 2)}
"""A new vdpa device is bound by the bus's autoprobe inside DEV_NEW, so the bind step finds it bound and asks the
kernel nothing. Armed at the create with two faults: the probe fails (the device stays unbound, as in the
kernel), then the daemon's own bind hits the second."""


# --- scenarios: a node and a spec whose plan contains the step kinds under test -----------------------------------


@dataclass
class Node:
    kernel: SimKernel
    agent: NodeAgent
    spec: SriovNetworkNodeStateSpec

    def plan(self) -> tuple[Plan, Observation]:
        observed = self.agent.observe()
        return self.agent.plan(self.spec, observed), observed


def seed_spec(*, mtu: int = 0, vdpa_types: tuple[str, str] = ("virtio", "virtio")) -> SriovNetworkNodeStateSpec:
    """The seed spec; `mtu` on PFs and groups; `vdpa_types` per VF of PF0 ("" = no vDPA device)."""
    data = json.loads(json.dumps(SEED_SPEC))
    for iface in data["interfaces"]:
        if mtu:
            iface["mtu"] = mtu
            for group in iface["vfGroups"]:
                group["mtu"] = mtu
    if vdpa_types != ("virtio", "virtio"):
        pf0 = data["interfaces"][0]
        template = pf0["vfGroups"][0]
        pf0["vfGroups"] = [{**template, "vfRange": f"{i}-{i}", "vdpaType": t} for i, t in enumerate(vdpa_types)]
        for group in pf0["vfGroups"]:
            if not group["vdpaType"]:
                del group["vdpaType"]
    return SriovNetworkNodeStateSpec.model_validate(data)


def new_node(tmp_path: Path, spec: SriovNetworkNodeStateSpec, **kernel_options: object) -> Node:
    kernel = SimKernel.create(tmp_path / "host", real_netdevs=False, **kernel_options)  # type: ignore[arg-type]
    agent = NodeAgent(sim_host(kernel), DaemonStore(tmp_path / "store"), DEFAULT_SUPPORTED_NICS)
    return Node(kernel, agent, spec)


def fresh(tmp_path: Path) -> Node:
    return new_node(tmp_path, seed_spec())


def fresh_with_mtu(tmp_path: Path) -> Node:
    return new_node(tmp_path, seed_spec(mtu=9000))


def fresh_with_pfs_down(tmp_path: Path) -> Node:
    node = new_node(tmp_path, seed_spec())
    for netdev in NETDEV.values():
        node.agent.host.links.set_up(netdev, False)
    return node


def converged_then_vdpa_dropped(tmp_path: Path) -> Node:
    """The seed applied, then the spec drops the vDPA device of PF0's VF 1."""
    node = new_node(tmp_path, seed_spec())
    assert apply_once(node).ok
    node.spec = seed_spec(vdpa_types=("virtio", ""))
    return node


SCENARIOS: dict[str, tuple[Callable[[Path], Node], tuple[StepKind, ...]]] = {
    "seed": (fresh, (LoadModule, EnableTcOffload, SetFlowSteering, SetNumVfs,
                     UnbindVfs, SetEswitch, BindDefault, SetAdminMac,
                     CreateVdpa, BindVdpa)),
    "mtu": (fresh_with_mtu, (SetPfMtu, SetVfMtu)),
    "pf-down": (fresh_with_pfs_down, (SetPfUp,)),
    "vdpa-dropped": (converged_then_vdpa_dropped, (DeleteVdpa,)),
}


def apply_once(node: Node, on_step: Callable[[int, int, Step, str], None] | None = None) -> ApplyResult:
    planned, observed = node.plan()
    return node.agent.apply(planned, observed, on_step=on_step)


# --- what a converged node looks like -----------------------------------------------------------------------------


def assert_converged(node: Node) -> None:
    """A fresh observation plans nothing, no apply is left in the journal, and the node shows the spec: eswitch
    mode, VF count, VF drivers, vDPA types and MTUs as asked, PFs up, and exactly the vdpa devices asked for,
    each bound to the driver of its type."""
    planned, observed = node.plan()
    assert [s.describe() for s in planned.steps] == []
    assert node.agent.store.journal() is None
    wanted_vdpa: dict[str, str] = {}
    for iface in node.spec.interfaces:
        status = observed.interface(iface.pci_address)
        assert status is not None
        assert (status.eswitch_mode, status.num_vfs, status.link_admin_state) == ("switchdev", iface.num_vfs, "up")
        if iface.mtu:
            assert status.mtu == iface.mtu
        assert [vf.vf_id for vf in status.vfs] == list(range(iface.num_vfs))
        for vf in status.vfs:
            group = next(g for g in iface.vf_groups if index_in_range(vf.vf_id, g.vf_range))
            assert (vf.pci_address, vf.driver, vf.vdpa_type) == (
                VF_ADDRESS[(iface.pci_address, vf.vf_id)], "mlx5_core", group.vdpa_type)
            assert vf.representor_name == f"{NETDEV[iface.pci_address]}_{vf.vf_id}"
            if group.mtu:
                assert vf.mtu == group.mtu
            if group.vdpa_type:
                wanted_vdpa[vdpa_name(PciAddress(vf.pci_address))] = VDPA_DRIVER_FOR_TYPE[group.vdpa_type]
    vdpa = node.agent.host.vdpa
    assert {d.name: vdpa.binding(d.name).driver for d in vdpa.devices()} == wanted_vdpa


def object_of(step: Step) -> str:
    """What the step acts on, as the error must name it."""
    if step.vf is not None:
        vf = VF_ADDRESS[(step.vf.pf, step.vf.index)]
        return vdpa_name(PciAddress(vf)) if isinstance(step, CreateVdpa | BindVdpa | DeleteVdpa) else vf
    if isinstance(step, LoadModule):
        return step.module
    if isinstance(step, EnableTcOffload | SetPfMtu | SetPfUp):
        return step.netdev
    return step.pf


# --- the fault matrix ---------------------------------------------------------------------------------------------

ON_SECOND_PF = (SetEswitch, CreateVdpa)
"""Also broken on the second PF, once the first is configured: the next sync re-checks both (the journal) and
finds nothing left to do on the first."""


def fault_cases() -> list[object]:
    cases = []
    for scenario, (_, actions) in SCENARIOS.items():
        for action in actions:
            for name, code in ERRNOS.items():
                cases.append(pytest.param(scenario, action, 0, code, id=f"{scenario}-{action.action}-{name}"))
            if action in ON_SECOND_PF:
                cases.append(pytest.param(scenario, action, -1, E.EBUSY,
                                          id=f"{scenario}-{action.action}-second-pf-EBUSY"))
    return cases


def run_with_fault(node: Node, action: StepKind, occurrence: int, code: int) -> tuple[Step, ApplyResult]:
    """Apply the node's plan with `code` injected into the `occurrence`-th step of kind `action`."""
    planned, observed = node.plan()
    indexes = [i for i, s in enumerate(planned.steps) if isinstance(s, action)]
    assert indexes, f"the plan has no {action.action} step: {[s.describe() for s in planned.steps]}"
    target = indexes[occurrence]
    arm_at, times = target, 1
    if action in ARMED_EARLIER:
        earlier, times = ARMED_EARLIER[action]
        arm_at = max(i for i, s in enumerate(planned.steps[:target])
                     if isinstance(s, earlier) and s.vf == planned.steps[target].vf)

    def on_step(index: int, total: int, step: Step, description: str) -> None:
        if index == arm_at:
            node.kernel.faults.inject(FAULT_OP[action], errno=code, times=times)

    result = node.agent.apply(planned, observed, on_step=on_step)
    assert node.kernel.faults.list() == [], "the injected fault was never hit"
    return planned.steps[target], result


@pytest.mark.parametrize(("scenario", "action", "occurrence", "code"), fault_cases())
def test_fault_fails_the_step_and_the_next_sync_converges(
    tmp_path: Path, scenario: str, action: StepKind, occurrence: int, code: int
) -> None:
    make, _ = SCENARIOS[scenario]
    node = make(tmp_path)
    step, result = run_with_fault(node, action, occurrence, code)
    errno_name = next(name for name, value in ERRNOS.items() if value == code)

    if (action, code) in TOLERATED:
        assert result.ok, result.error_message()
        named = TOLERATED[(action, code)]
        if named:
            assert any(all(word in note for word in named) for note in result.notes), result.notes
    else:
        assert not result.ok
        failure = result.failure
        assert failure is not None
        assert failure.step == step
        assert failure.error.errno == code
        vf = VF_ADDRESS[(step.vf.pf, step.vf.index)] if step.vf is not None else None
        message = result.error_message()
        assert step.describe(vf) in message
        assert object_of(step) in message
        assert errno_name in message
        assert result.reset_error == ""
        assert node.agent.store.journal() is not None  # the next sync knows this apply did not finish

    node.kernel.faults.clear()
    again = apply_once(node)
    assert again.ok, again.error_message()
    assert_converged(node)


def test_create_vdpa_retries_without_max_vqp_on_eopnotsupp(tmp_path: Path) -> None:
    """Upstream asks for `max_vqp 32` and, on EOPNOTSUPP (older mlx5), creates the device without it."""
    node = fresh(tmp_path)
    step, result = run_with_fault(node, CreateVdpa, 0, E.EOPNOTSUPP)
    assert result.ok, result.error_message()
    assert step.vf is not None
    retried = vdpa_name(PciAddress(VF_ADDRESS[(step.vf.pf, step.vf.index)]))
    max_vqp = {d.name: d.max_vqp for d in node.kernel.snapshot().vdpa.values()}
    assert max_vqp.pop(retried) is None
    assert set(max_vqp.values()) == {32}
    assert_converged(node)


def test_every_fault_op_is_hit_by_some_scenario(tmp_path: Path) -> None:
    """Each scenario's real plan contains the step kinds it is meant to break, and together the scenarios cover
    every step kind that has a fault op."""
    covered: set[StepKind] = set()
    for scenario, (make, actions) in SCENARIOS.items():
        node = make(tmp_path / scenario)
        planned, _ = node.plan()
        kinds = {type(s) for s in planned.steps} & set(FAULT_OP)
        missing = sorted(a.action for a in set(actions) - kinds)
        assert not missing, (scenario, "missing from its plan:", missing)
        if scenario == "seed":
            assert kinds == set(actions)  # the seed apply: every kernel-facing step kind it runs is under test
        covered |= set(actions)
    assert covered == set(FAULT_OP)


# --- a real timeout -----------------------------------------------------------------------------------------------


def test_vfs_slower_than_the_wait_fail_the_step_then_the_next_sync_converges(tmp_path: Path) -> None:
    """`sriov_numvfs` reads 2 at once but the VFs show up 0.25 s later (upstream #1015); a daemon that waits 0.05 s
    fails the step with a timeout and resets the PF (upstream resets a PF whose configuration failed); the
    next sync, waiting long enough, converges."""
    delay = 0.25
    node = new_node(tmp_path, seed_spec(), vf_create_delay=delay)
    node.agent.numvfs_timeout = 0.05
    result = apply_once(node)
    assert not result.ok
    failure = result.failure
    assert failure is not None
    assert isinstance(failure.step, SetNumVfs) and failure.step.pf == PF0
    assert isinstance(failure.error, HostTimeout)
    assert failure.error.errno == E.ETIMEDOUT
    message = result.error_message()
    assert failure.step.describe() in message
    assert f"wait for 2 VFs of {PF0} failed: ETIMEDOUT" in message
    assert "after 0.05s still missing" in message
    assert result.reset_error == ""
    sriov = node.agent.host.pci.sriov(PciAddress(PF0))
    assert sriov is not None and sriov.numvfs == 0  # the reset took the VFs still on their way away
    assert node.kernel.snapshot().pfs[PF0].pending_numvfs == 0

    node.agent.numvfs_timeout = 10 * delay  # the next sync waits long enough: the VFs appear during its wait
    again = apply_once(node)
    assert again.ok, again.error_message()
    assert_converged(node)
