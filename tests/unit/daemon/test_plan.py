"""The daemon's plan as table tests (pure): the seed policy and each case of upstream-operator.md §4.5–§4.7,
§4.10, against hand-built observations of a two-port ConnectX-6 Dx node."""

from __future__ import annotations

from typing import Any

import pytest

from vdpa_operator.api.models import Interface, InterfaceExt, SriovNetworkNodeStateSpec, VirtualFunction
from vdpa_operator.daemon.observed import Observation, PfFacts
from vdpa_operator.daemon.plan import InvalidSpec, Plan, PlanError, plan
from vdpa_operator.daemon.steps import (
    BindDpdk,
    BindVdpa,
    LoadModule,
    RemoveUdevRule,
    SetEswitch,
    SetNumVfs,
    SetPfMtu,
    SetVfMtu,
    VfRef,
    WriteUdevRule,
)
from vdpa_operator.host.types import VDPA_DRIVER_FOR_TYPE, DevlinkParam, EswitchMode, SwitchPort
from vdpa_operator.host.udev_rules import nm_disable_rule, pf_name_rule, switchdev_rule

PF0, PF1 = "0000:65:00.0", "0000:65:00.1"
VF_IDS = ("101e",)
SWITCH_ID = "b8cef603002afea9"


def vf_address(pf: str, index: int) -> str:
    base = 2 if pf == PF0 else 9
    n = base + index
    return f"0000:65:{n // 8:02x}.{n % 8}"


def pf_status(pf: str = PF0, *, numvfs: int = 0, mode: str = "legacy", mtu: int = 1500, vdpa: str = "",
              vf_driver: str = "mlx5_core", admin: str = "up", **extra: Any) -> InterfaceExt:
    name = "ens1f0" if pf == PF0 else "ens1f1"
    vfs = [VirtualFunction(pci_address=vf_address(pf, i), vf_id=i, driver=vf_driver, mtu=1500, name=f"{name}v{i}",
                           mac=f"02:00:00:00:0{pf[-1]}:0{i}", vdpa_type=vdpa) for i in range(numvfs)]
    return InterfaceExt(pci_address=pf, name=name, driver="mlx5_core", vendor="15b3", device_id="101d", mtu=mtu,
                        num_vfs=numvfs, total_vfs=8, eswitch_mode=mode, link_type="ETH", link_admin_state=admin,
                        vfs=vfs, **extra)


def facts(pf: str = PF0, *, numvfs: int = 0, vdpa_driver: str | None = None, tc: bool | None = True,
          steering: str | None = "smfs") -> PfFacts:
    return PfFacts(
        switch_port=SwitchPort(f"p{pf[-1]}", SWITCH_ID),
        hw_tc_offload=tc,
        flow_steering=DevlinkParam("flow_steering_mode", steering, "runtime") if steering is not None else None,
        admin_macs={i: f"02:00:00:00:0{pf[-1]}:0{i}" for i in range(numvfs)},
        vdpa={vf_address(pf, i): vdpa_driver for i in range(numvfs)} if vdpa_driver else {},
    )


def iface(pf: str = PF0, *, numvfs: int = 2, mode: str = "switchdev", vdpa: str = "virtio", mtu: int = 0,
          device_type: str = "netdevice", vf_range: str = "", group_mtu: int = 0, **extra: Any) -> Interface:
    name = "ens1f0" if pf == PF0 else "ens1f1"
    group = {"resourceName": "mlxnics", "deviceType": device_type, "vfRange": vf_range or f"0-{numvfs - 1}",
             "policyName": "vdpa-policy", "vdpaType": vdpa, "mtu": group_mtu}
    return Interface.model_validate({"pciAddress": pf, "numVfs": numvfs, "name": name, "eSwitchMode": mode,
                                     "mtu": mtu, "vfGroups": [group] if numvfs else [], **extra})


def rules_for(pf: str, mode: str = "switchdev") -> dict[str, str]:
    name = "ens1f0" if pf == PF0 else "ens1f1"
    rules = dict([nm_disable_rule(pf, VF_IDS)])  # type: ignore[arg-type]
    if mode == "switchdev":
        rules.update([pf_name_rule(pf, name), switchdev_rule(pf, SWITCH_ID, f"p{pf[-1]}", name)])  # type: ignore[arg-type]
    return rules


def converged(pf: str = PF0, *, numvfs: int = 2, vdpa: str = "virtio", mode: str = "switchdev",
              **status: Any) -> dict[str, Any]:
    """The pieces of an Observation for one PF that already matches `iface(pf, numvfs, mode, vdpa)`."""
    driver = VDPA_DRIVER_FOR_TYPE.get(vdpa)
    return {
        "status": pf_status(pf, numvfs=numvfs, mode=mode, vdpa=vdpa, **status),
        "facts": facts(pf, numvfs=numvfs, vdpa_driver=driver),
        "rules": rules_for(pf, mode),
        "record": iface(pf, numvfs=numvfs, mode=mode, vdpa=vdpa),
    }


def observation(*pfs: dict[str, Any], modules: frozenset[str] = frozenset({"virtio_vdpa", "vhost_vdpa"}),
                **extra: Any) -> Observation:
    records = {p["status"].pci_address: p["record"] for p in pfs if p.get("record") is not None}
    rules: dict[str, str] = {}
    for p in pfs:
        rules.update(p.get("rules", {}))
    return Observation(
        interfaces=tuple(p["status"] for p in pfs),
        pfs={p["status"].pci_address: p.get("facts", facts(p["status"].pci_address)) for p in pfs},
        udev_rules=rules,
        loaded_modules=modules,
        records=extra.pop("records", records),
        **extra,
    )


def fresh(pf: str = PF0) -> dict[str, Any]:
    """A PF as the node first shows it: legacy, no VFs, dmfs, hw-tc-offload off, no rules, no record."""
    return {"status": pf_status(pf), "facts": facts(pf, tc=False, steering="dmfs")}


def spec(*interfaces: Interface) -> SriovNetworkNodeStateSpec:
    return SriovNetworkNodeStateSpec(interfaces=list(interfaces))


def run(s: SriovNetworkNodeStateSpec, o: Observation, **kw: Any) -> Plan:
    return plan(s, o, vf_device_ids=VF_IDS, **kw)


def actions(p: Plan, pf: str | None = None) -> list[str]:
    return [str(s.action) for s in p.steps if pf is None or s.pf == pf]


# --- the seed ---------------------------------------------------------------------------------------------------

SEED_PF_ACTIONS = [
    "save-pf-record", "enable-hw-tc-offload", "set-flow-steering-mode", "write-udev-rule", "write-udev-rule",
    "set-numvfs", "unbind-vfs", "set-eswitch-mode", "write-udev-rule",
    "bind-default-driver", "set-vf-admin-mac", "create-vdpa", "bind-vdpa-driver",
    "bind-default-driver", "set-vf-admin-mac", "create-vdpa", "bind-vdpa-driver",
]


def test_seed_from_nothing_follows_upstreams_mlx5_order() -> None:
    p = run(spec(iface(PF0), iface(PF1)), observation(fresh(PF0), fresh(PF1), modules=frozenset()))
    assert actions(p) == ["load-module", *SEED_PF_ACTIONS, *SEED_PF_ACTIONS, "reload-udev-rules"]
    assert p.steps[0] == LoadModule("virtio_vdpa")
    assert p.configure == (PF0, PF1) and p.reset == () and not p.drain  # no VFs yet: nothing to drain
    descriptions = [s.describe() for s in p.steps_of(PF0)]
    assert "set devlink param flow_steering_mode=smfs on pci/0000:65:00.0" in descriptions
    assert "set sriov_numvfs=2 on 0000:65:00.0 and wait for the VFs" in descriptions
    assert "set eswitch mode switchdev on pci/0000:65:00.0" in descriptions
    assert "create vdpa device vdpa:<VF 1 of 0000:65:00.0> max_vqp 32" in descriptions
    assert [(s.rule, s.content) for s in p.steps_of(PF0) if isinstance(s, WriteUdevRule)] == list(
        rules_for(PF0).items())
    assert {s.driver for s in p.steps if isinstance(s, BindVdpa)} == {"virtio_vdpa"}


def test_converged_node_plans_nothing() -> None:
    p = run(spec(iface(PF0), iface(PF1)), observation(converged(PF0), converged(PF1)))
    assert p.steps == () and p.configure == () and not p.drain


def test_record_refreshed_without_touching_the_pf() -> None:
    stale = converged(PF0)
    stale["record"] = iface(PF0, vdpa="virtio", numvfs=2).model_copy(update={"name": "old"})
    p = run(spec(iface(PF0)), observation(stale))
    assert actions(p) == ["save-pf-record"] and p.configure == ()


# --- §4.5 cases -------------------------------------------------------------------------------------------------


def test_virtio_to_vhost_rebinds_the_existing_devices_after_a_drain() -> None:
    p = run(spec(iface(PF0, vdpa="vhost")), observation(converged(PF0), modules=frozenset({"virtio_vdpa"})))
    assert actions(p) == ["load-module", "save-pf-record", "bind-vdpa-driver", "bind-vdpa-driver",
                          "reload-udev-rules"]
    assert p.steps[0] == LoadModule("vhost_vdpa")
    assert [s.describe() for s in p.steps if isinstance(s, BindVdpa)] == [
        "bind vdpa:0000:65:00.2 to vhost_vdpa", "bind vdpa:0000:65:00.3 to vhost_vdpa"]
    assert p.drain


def test_dropping_vdpa_type_deletes_the_devices() -> None:
    p = run(spec(iface(PF0, vdpa="")), observation(converged(PF0)))
    assert actions(p) == ["save-pf-record", "delete-vdpa", "delete-vdpa", "reload-udev-rules"]
    assert p.steps[1].describe() == "delete vdpa device vdpa:0000:65:00.2"


def test_switchdev_to_legacy_recreates_the_vfs_in_legacy() -> None:
    p = run(spec(iface(PF0, mode="legacy", vdpa="")), observation(converged(PF0)))
    assert actions(p) == [
        "save-pf-record", "remove-udev-rule", "remove-udev-rule", "unbind-vfs", "set-eswitch-mode", "set-numvfs",
        "bind-default-driver", "set-vf-admin-mac", "bind-default-driver", "set-vf-admin-mac"]
    removed = [s.rule for s in p.steps if isinstance(s, RemoveUdevRule)]
    assert removed == [f"10-pf-name-{PF0}.rules", f"20-switchdev-{PF0}.rules"]
    assert [s.mode for s in p.steps if isinstance(s, SetEswitch)] == ["legacy"]
    assert p.drain


def test_more_vfs_rebuilds_the_pf() -> None:
    p = run(spec(iface(PF0, numvfs=4)), observation(converged(PF0)))
    pf_stage = actions(p)[:5]
    assert pf_stage == ["save-pf-record", "unbind-vfs", "set-eswitch-mode", "set-numvfs", "unbind-vfs"]
    assert actions(p).count("create-vdpa") == 4 and actions(p).count("bind-default-driver") == 4


def test_flow_steering_changes_only_in_legacy() -> None:
    """A PF in switchdev with dmfs: back to legacy with 0 VFs, smfs, then VFs and switchdev again."""
    pf = converged(PF0)
    pf["facts"] = facts(PF0, numvfs=2, vdpa_driver="virtio_vdpa", steering="dmfs")
    p = run(spec(iface(PF0, numvfs=3)), observation(pf))
    assert actions(p)[:9] == ["save-pf-record", "unbind-vfs", "set-eswitch-mode", "set-numvfs",
                              "set-flow-steering-mode", "set-numvfs", "unbind-vfs", "set-eswitch-mode",
                              "bind-default-driver"]
    assert [s.count for s in p.steps if isinstance(s, SetNumVfs)] == [0, 3]


@pytest.mark.parametrize("steering", [None, "", "smfs"])
def test_flow_steering_left_alone_when_absent_empty_or_smfs(steering: str | None) -> None:
    pf = fresh(PF0)
    pf["facts"] = facts(PF0, tc=None, steering=steering)
    p = run(spec(iface(PF0)), observation(pf))
    assert "set-flow-steering-mode" not in actions(p)
    assert "enable-hw-tc-offload" not in actions(p)  # no such feature: upstream skips it


def test_too_many_vfs_is_refused_before_anything_runs() -> None:
    with pytest.raises(InvalidSpec, match=r"spec.interfaces\[0\].numVfs: 9 is more than the 8 VFs 0000:65:00.0 "
                                          r"supports \(sriov_totalvfs\)"):
        run(spec(iface(PF0, numvfs=9)), observation(fresh(PF0)))


def test_pf_mtu_is_raised_never_lowered() -> None:
    raised = run(spec(iface(PF0, mtu=9000)), observation(converged(PF0)))
    assert raised.steps_of(PF0)[-1] == SetPfMtu(PF0, "ens1f0", 9000)
    lower = converged(PF0, mtu=9000)
    lower["record"] = iface(PF0, mtu=1500)
    assert run(spec(iface(PF0, mtu=1500)), observation(lower)).steps == ()


def test_vf_mtu_and_vfs_outside_every_group() -> None:
    p = run(spec(iface(PF0, numvfs=2, vf_range="1-1", group_mtu=9000)), observation(converged(PF0)))
    vf_steps = [s for s in p.steps if s.vf is not None]
    assert vf_steps == [SetVfMtu(VfRef(PF0, 1, vf_address(PF0, 1)), 9000)]  # VF 0 is in no group: left alone


def test_driverless_vf_gets_its_default_driver_and_admin_mac_and_pf_goes_up() -> None:
    pf = converged(PF0, vf_driver="", admin="down")
    p = run(spec(iface(PF0)), observation(pf))
    assert actions(p) == ["bind-default-driver", "set-vf-admin-mac", "bind-default-driver", "set-vf-admin-mac",
                          "set-pf-up", "reload-udev-rules"]


def test_vf_left_unbound_by_an_interrupted_apply_gets_its_admin_mac() -> None:
    """Killed after the switch to switchdev: the VFs are unbound, so neither their netdev nor its MAC can be
    seen, and the admin MAC is still zero. Binding a VF is followed by pinning its MAC, as for new VFs."""
    half = converged(PF0)
    unbound = [vf.model_copy(update={"driver": "", "name": "", "mac": "", "mtu": 0, "vdpa_type": ""})
               for vf in half["status"].vfs]
    half["status"] = half["status"].model_copy(update={"vfs": unbound})
    half["facts"] = PfFacts(switch_port=SwitchPort("p0", SWITCH_ID), hw_tc_offload=True,
                            admin_macs={0: "00:00:00:00:00:00", 1: "00:00:00:00:00:00"})
    p = run(spec(iface(PF0)), observation(half), force=[PF0])
    assert actions(p) == [
        "bind-default-driver", "set-vf-admin-mac", "create-vdpa", "bind-vdpa-driver",
        "bind-default-driver", "set-vf-admin-mac", "create-vdpa", "bind-vdpa-driver", "reload-udev-rules"]
    assert run(spec(iface(PF0)), observation(half)).steps == p.steps  # drift sees it without the journal too


def test_vfio_group_loads_vfio_pci_and_binds_it() -> None:
    p = run(spec(iface(PF0, mode="legacy", vdpa="", device_type="vfio-pci")),
            observation(converged(PF0, mode="legacy", vdpa="")))
    assert actions(p) == ["load-module", "save-pf-record", "bind-dpdk-driver", "bind-dpdk-driver"]
    assert p.steps[0] == LoadModule("vfio_pci")
    assert p.steps[2] == BindDpdk(VfRef(PF0, 0, vf_address(PF0, 0)), "vfio-pci")


# --- externally managed -----------------------------------------------------------------------------------------


def test_externally_managed_pf_gets_only_the_vf_stage() -> None:
    admin_made = converged(PF0, vdpa="")
    admin_made["facts"] = facts(PF0, numvfs=2, tc=False, steering="dmfs")
    admin_made["rules"] = {}
    p = run(spec(iface(PF0, externallyManaged=True)), observation(admin_made))
    assert actions(p) == ["save-pf-record", "create-vdpa", "bind-vdpa-driver", "create-vdpa", "bind-vdpa-driver",
                          "reload-udev-rules"]
    assert p.externally_managed == (PF0,)


@pytest.mark.parametrize(("status", "wanted", "message"), [
    ({"numvfs": 1}, {"numvfs": 2}, "numVfs 2 is more than the 1 VFs present"),
    ({"mode": "legacy"}, {}, "eSwitchMode 'switchdev' differs from the configured 'legacy'"),
    ({"mtu": 1500}, {"mtu": 9000}, "mtu 9000 is greater than the configured 1500"),
])
def test_externally_managed_pf_that_is_not_ready_is_refused(status: dict[str, Any], wanted: dict[str, Any],
                                                             message: str) -> None:
    observed = {"numvfs": 2, "mode": "switchdev"} | status
    pf = {"status": pf_status(PF0, numvfs=observed["numvfs"], mode=observed["mode"], mtu=status.get("mtu", 1500))}
    with pytest.raises(PlanError, match=message):
        run(spec(iface(PF0, externallyManaged=True, **wanted)), observation(pf))


# --- §4.7 resets ------------------------------------------------------------------------------------------------


def test_pf_that_left_the_spec_is_reset_to_its_first_seen_state() -> None:
    initial = pf_status(PF0, mtu=1500)
    p = run(spec(), observation(converged(PF0, mtu=9000), initial={PF0: initial}))
    assert actions(p) == ["remove-udev-rule", "remove-udev-rule", "remove-udev-rule", "set-pf-mtu", "unbind-vfs",
                          "set-eswitch-mode", "set-numvfs", "delete-pf-record"]
    assert [s for s in p.steps if isinstance(s, SetPfMtu | SetNumVfs)] == [SetPfMtu(PF0, "ens1f0", 1500),
                                                                           SetNumVfs(PF0, 0)]
    assert p.reset == (PF0,) and p.drain


def test_reset_without_checkpoint_goes_to_legacy_and_1500() -> None:
    p = run(spec(), observation(converged(PF0, mtu=9000)))
    assert [s for s in p.steps if isinstance(s, SetPfMtu | SetEswitch)] == [
        SetPfMtu(PF0, "ens1f0", 1500), SetEswitch(PF0, EswitchMode.LEGACY)]


def test_pfs_without_record_or_externally_managed_are_not_reset() -> None:
    foreign = converged(PF0)
    foreign["record"] = None
    assert run(spec(), observation(foreign)).steps == ()
    admin = converged(PF1)
    admin["record"] = iface(PF1, externallyManaged=True)
    p = run(spec(), observation(admin))
    assert actions(p) == ["delete-pf-record"] and p.reset == () and not p.drain


# --- drain, OVS, interrupted applies ----------------------------------------------------------------------------


def test_no_drain_while_the_pf_has_no_vfs() -> None:
    assert not run(spec(iface(PF0)), observation(fresh(PF0))).drain
    assert run(spec(iface(PF0, numvfs=3)), observation(converged(PF0))).drain


@pytest.mark.parametrize(("wanted_switchdev", "present", "value", "owned", "expected"), [
    (True, True, None, False, ["set-ovs-hw-offload"]),
    (True, True, "false", False, ["set-ovs-hw-offload"]),
    (True, True, "true", False, []),
    (False, True, "true", True, ["remove-ovs-hw-offload"]),
    (False, True, "true", False, []),  # someone else turned it on: leave it
    (True, False, None, False, []),
])
def test_ovs_hw_offload(wanted_switchdev: bool, present: bool, value: str | None, owned: bool,
                        expected: list[str]) -> None:
    mode = "switchdev" if wanted_switchdev else "legacy"
    pf = converged(PF0, mode=mode, vdpa="virtio" if wanted_switchdev else "")
    p = run(spec(iface(PF0, mode=mode, vdpa="virtio" if wanted_switchdev else "")),
            observation(pf, ovs_present=present, ovs_hw_offload=value, ovs_offload_owned=owned,
                        ovs_problem="" if present else "no OVSDB socket at /var/run/openvswitch/db.sock"))
    assert actions(p) == expected
    if not present:
        assert any("hw-offload not set" in n and "/var/run/openvswitch/db.sock" in n for n in p.notes)


def test_interrupted_apply_rechecks_the_pf_in_full() -> None:
    """Killed after the VFs were made but before the representor rule: drift sees nothing, the journal does."""
    half = converged(PF0)
    del half["rules"][f"20-switchdev-{PF0}.rules"]
    assert run(spec(iface(PF0)), observation(half)).steps == ()
    p = run(spec(iface(PF0)), observation(half), force=[PF0])
    assert actions(p) == ["write-udev-rule", "reload-udev-rules"]


def test_pf_in_spec_but_not_on_the_node_is_noted() -> None:
    unmanaged = converged(PF0, mode="legacy", vdpa="", numvfs=0)
    unmanaged["record"] = None
    p = run(spec(iface(PF1)), observation(unmanaged))
    assert p.steps == ()
    assert p.notes[0] == f"{PF1}: in the spec but not found on this node; skipped"
