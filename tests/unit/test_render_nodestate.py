"""Node-state rendering: upstream's `api/v1/helper_test.go` tables (Apply, vDPA apply, bridges, eSwitch mode,
NeedToUpdateSriov, ResolveInterfaceName) ported case by case, plus the sync loop around them."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from vdpa_operator.api.kube import Node
from vdpa_operator.api.models import (
    Interface,
    InterfaceExt,
    SriovNetworkNodePolicy,
    SriovNetworkNodeState,
)
from vdpa_operator.api.nodestate import effective_eswitch_mode, need_to_update_sriov
from vdpa_operator.api.selection import resolve_interface_name
from vdpa_operator.render.nodestate import (
    RenderError,
    apply_bridge_config,
    apply_policy,
    bridge_name,
    render_node_state_spec,
    sort_by_priority,
)

SRIOV_CAPABLE = {"feature.node.kubernetes.io/network-sriov.capable": "true"}


def i40e_pf(name: str, pci: str, device_id: str = "158b") -> dict[str, Any]:
    return {"Vfs": [{"pciAddress": "", "vfID": 0}], "deviceID": device_id, "driver": "i40e", "mtu": 1500,
            "name": name, "pciAddress": pci, "vendor": "8086", "numVfs": 4, "totalvfs": 64}


def node_state(spec: dict[str, Any] | None = None, interfaces: list[dict[str, Any]] | None = None
               ) -> SriovNetworkNodeState:
    """Upstream's `newNodeState()`: three Intel PFs, the third a different device id; `spec` optional."""
    if interfaces is None:
        interfaces = [
            i40e_pf("ens803f0", "0000:86:00.0"),
            i40e_pf("ens803f1", "0000:86:00.1"),
            i40e_pf("ens803f2", "0000:86:00.2", device_id="1015"),
        ]
    return SriovNetworkNodeState.model_validate(
        {"spec": spec or {}, "status": {"interfaces": interfaces}}, by_name=False
    )


def policy(name: str = "p1", **spec: Any) -> SriovNetworkNodePolicy:
    """Upstream's `newNodePolicy()`, with `spec` keys (JSON names) replaced."""
    body: dict[str, Any] = {
        "deviceType": "netdevice",
        "nicSelector": {"pfNames": ["ens803f1"], "rootDevices": ["0000:86:00.1"], "vendor": "8086"},
        "nodeSelector": SRIOV_CAPABLE,
        "numVfs": 2,
        "priority": 99,
        "resourceName": "p1res",
    }
    body.update(spec)
    return SriovNetworkNodePolicy.model_validate({"metadata": {"name": name}, "spec": body}, by_name=False)


def virtio_policy() -> SriovNetworkNodePolicy:
    """Upstream's `newVirtioVdpaNodePolicy()`: VFs 2-3 of ens803f1 as virtio vDPA."""
    return policy(vdpaType="virtio", numVfs=4, resourceName="virtiovdpa",
                  nicSelector={"pfNames": ["ens803f1#2-3"], "rootDevices": ["0000:86:00.1"], "vendor": "8086"})


def vhost_policy() -> SriovNetworkNodePolicy:
    """Upstream's `newVhostVdpaNodePolicy()`."""
    return policy(vdpaType="vhost", resourceName="vhostvdpa")


def group(resource: str, vf_range: str, policy_name: str, device_type: str = "netdevice", **extra: Any
          ) -> dict[str, Any]:
    return {"deviceType": device_type, "resourceName": resource, "vfRange": vf_range, "policyName": policy_name,
            **extra}


def pf(name: str, pci: str, num_vfs: int, groups: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"pciAddress": pci, "numVfs": num_vfs, "name": name, **extra, "vfGroups": groups}


def interfaces_of(state: SriovNetworkNodeState) -> list[dict[str, Any]]:
    return [i.to_go_dict() for i in state.spec.interfaces]


P1_ON_F1 = pf("ens803f1", "0000:86:00.1", 2, [group("p1res", "0-1", "p1")])

APPLY_CASES: list[tuple[str, SriovNetworkNodeState, SriovNetworkNodePolicy, bool, list[dict[str, Any]]]] = [
    ("starting config", node_state(), policy(), False, [P1_ON_F1]),
    (
        "one policy present different pf",
        node_state({"interfaces": [pf("ens803f0", "0000:86:00.0", 2, [group("prevres", "0-1", "p2")])]}),
        policy(), False,
        [pf("ens803f0", "0000:86:00.0", 2, [group("prevres", "0-1", "p2")]), P1_ON_F1],
    ),
    (
        # the policy applied last has the higher priority and overwrites what is there
        "one policy present same pf different priority",
        node_state({"interfaces": [pf("ens803f1", "0000:86:00.1", 3, [group("vfiores", "0-1", "p2", "vfio-pci")])]}),
        policy(), False, [P1_ON_F1],
    ),
    (
        # same priority, overlapping ranges: only the last group stays, but numVfs and MTU are merged
        "one policy present same pf same priority",
        node_state({"interfaces": [
            pf("ens803f1", "0000:86:00.1", 3, [group("vfiores", "0-1", "p2", "vfio-pci")], mtu=2000)
        ]}),
        policy(), True,
        [pf("ens803f1", "0000:86:00.1", 3, [group("p1res", "0-1", "p1")], mtu=2000)],
    ),
    (
        # same priority, disjoint ranges: everything is merged
        "one policy present same pf same priority partitioning",
        node_state({"interfaces": [pf("ens803f1", "0000:86:00.1", 5, [group("vfiores", "2-4", "p2", "vfio-pci")])]}),
        policy(), True,
        [pf("ens803f1", "0000:86:00.1", 5, [group("p1res", "0-1", "p1"), group("vfiores", "2-4", "p2", "vfio-pci")])],
    ),
    (
        # vDPA policies of both kinds with the same priority and disjoint ranges share the PF
        "one vdpa policy present same pf same priority partitioning",
        node_state({"interfaces": [
            pf("ens803f1", "0000:86:00.1", 4, [group("vhostvdpa", "0-1", "p2", vdpaType="vhost")])
        ]}),
        virtio_policy(), True,
        [pf("ens803f1", "0000:86:00.1", 4, [
            group("virtiovdpa", "2-3", "p1", vdpaType="virtio"),
            group("vhostvdpa", "0-1", "p2", vdpaType="vhost"),
        ])],
    ),
    (
        # same priority, and the new group overlaps both present groups: both go
        "two policy present same pf same priority overlap",
        node_state({"interfaces": [pf("ens803f1", "0000:86:00.1", 2, [
            group("vfiores1", "0-0", "p2", "vfio-pci"), group("vfiores2", "1-1", "p3", "vfio-pci"),
        ])]}),
        policy(), True, [P1_ON_F1],
    ),
    (
        # same priority, same resource name: the present group goes although the ranges are disjoint
        "one policy present same pf same priority same ResourceName",
        node_state({"interfaces": [pf("ens803f1", "0000:86:00.1", 4, [group("p1res", "2-3", "p2", "vfio-pci")])]}),
        policy(), True,
        [pf("ens803f1", "0000:86:00.1", 4, [group("p1res", "0-1", "p1")])],
    ),
    (
        # different priority but disjoint groups: merged (numVfs too)
        "one policy present same pf diff priority no overlap VFs",
        node_state({"interfaces": [pf("ens803f1", "0000:86:00.1", 4, [group("p2res", "2-3", "p2", "vfio-pci")])]}),
        policy(), False,
        [pf("ens803f1", "0000:86:00.1", 4, [group("p1res", "0-1", "p1"), group("p2res", "2-3", "p2", "vfio-pci")])],
    ),
    (
        "no selectors",
        node_state(), policy(nicSelector={"pfNames": [], "rootDevices": []}), False, [],
    ),
]


@pytest.mark.parametrize(("current", "new_policy", "equal_priority", "expected"),
                         [case[1:] for case in APPLY_CASES], ids=[case[0] for case in APPLY_CASES])
def test_apply(current: SriovNetworkNodeState, new_policy: SriovNetworkNodePolicy, equal_priority: bool,
               expected: list[dict[str, Any]]) -> None:
    state = copy.deepcopy(current)
    apply_policy(state, new_policy, equal_priority)
    assert interfaces_of(state) == expected


def test_apply_bad_pf_partition_is_an_error_naming_the_policy() -> None:
    state = node_state()
    bad = policy(nicSelector={"pfNames": ["ens803f0#a-c"], "rootDevices": []})
    with pytest.raises(RenderError) as caught:
        apply_policy(state, bad, False)
    assert caught.value.policy == "p1"
    assert "ens803f0#a-c" in str(caught.value) and "policy p1" in str(caught.value)
    assert interfaces_of(state) == []


def test_virtio_vdpa_apply() -> None:
    state = node_state()
    apply_policy(state, virtio_policy(), False)
    assert interfaces_of(state) == [
        pf("ens803f1", "0000:86:00.1", 4, [group("virtiovdpa", "2-3", "p1", vdpaType="virtio")])
    ]


def test_vhost_vdpa_apply() -> None:
    state = node_state()
    apply_policy(state, vhost_policy(), False)
    assert interfaces_of(state) == [
        pf("ens803f1", "0000:86:00.1", 2, [group("vhostvdpa", "0-1", "p1", vdpaType="vhost")])
    ]


# --- Apply details upstream's table does not spell out ----------------------------------------------------------


def test_pf_selected_by_alt_name_gets_the_whole_range() -> None:
    """generatePfNameVfGroup compares with the real name only: the alt name selects, its range is ignored."""
    state = node_state(interfaces=[{**i40e_pf("ens803f1", "0000:86:00.1"), "altNames": ["enp134s0f1"]}])
    apply_policy(state, policy(numVfs=8, nicSelector={"pfNames": ["enp134s0f1#4-7"]}), False)
    assert interfaces_of(state) == [pf("ens803f1", "0000:86:00.1", 8, [group("p1res", "0-7", "p1")])]


def test_range_of_the_matching_entry_and_whole_range_for_others() -> None:
    state = node_state()
    apply_policy(state, policy(numVfs=8, nicSelector={"vendor": "8086", "pfNames": ["ens803f0#2-5", "ens803f1"]}),
                 False)
    assert [i["vfGroups"][0]["vfRange"] for i in interfaces_of(state)] == ["2-5", "0-7"]


def test_bad_range_after_the_matching_entry_is_not_parsed() -> None:
    state = node_state()
    apply_policy(state, policy(nicSelector={"pfNames": ["ens803f1#0-1", "ens803f0#x-y"], "rootDevices":
                                            ["0000:86:00.1"]}), False)
    assert interfaces_of(state) == [P1_ON_F1]


def test_zero_vfs_adds_no_interface() -> None:
    state = node_state()
    apply_policy(state, policy(numVfs=0), False)
    assert interfaces_of(state) == []


def test_pf_fields_come_from_the_last_policy() -> None:
    state = node_state({"interfaces": [pf("ens803f1", "0000:86:00.1", 4, [group("other", "2-3", "p2")],
                                          mtu=9000, eSwitchMode="switchdev", linkType="eth", externallyManaged=True)]})
    apply_policy(state, policy(mtu=1500), True)
    [merged] = interfaces_of(state)
    assert merged["mtu"] == 9000 and merged["numVfs"] == 4
    assert "eSwitchMode" not in merged and "linkType" not in merged and "externallyManaged" not in merged


# --- eSwitch mode defaults (TestGetEswitchModeFromSpec / FromStatus) ------------------------------------------


@pytest.mark.parametrize(("mode", "expected"), [("legacy", "legacy"), ("switchdev", "switchdev"), ("", "legacy")],
                         ids=["set to legacy", "set to switchdev", "not set"])
def test_effective_eswitch_mode(mode: str, expected: str) -> None:
    assert effective_eswitch_mode(mode) == expected
    assert effective_eswitch_mode(Interface.model_validate({"pciAddress": "x", "eSwitchMode": mode}).eswitch_mode) \
        == expected
    assert effective_eswitch_mode(InterfaceExt.model_validate({"pciAddress": "x", "eSwitchMode": mode}).eswitch_mode) \
        == expected


# --- NeedToUpdateSriov --------------------------------------------------------------------------------------------


def vf(vf_id: int, driver: str, **extra: Any) -> dict[str, Any]:
    return {"pciAddress": f"0000:86:02.{vf_id}", "vfID": vf_id, "driver": driver, **extra}


NEED_TO_UPDATE_CASES: list[tuple[str, dict[str, Any], dict[str, Any], bool]] = [
    # upstream's table
    ("number of VFs changed", {"numVfs": 1}, {"numVfs": 0}, True),
    ("no update", {"numVfs": 1}, {"numVfs": 1}, False),
    (
        "vfio-pci VF is not configured for any group",
        {"numVfs": 3, "vfGroups": [{"vfRange": "1-2", "deviceType": "netdevice"}]},
        {"numVfs": 3, "Vfs": [vf(0, "vfio-pci"), vf(1, "iavf"), vf(2, "iavf")]},
        False,
    ),
    (
        "driverless VF needs update",
        {"numVfs": 1, "vfGroups": [{"vfRange": "0-0", "deviceType": "netdevice"}]},
        {"numVfs": 1, "Vfs": [vf(0, "")]},
        True,
    ),
    # the remaining branches
    ("PF MTU below the spec", {"mtu": 9000}, {"mtu": 1500}, True),
    ("PF MTU above the spec is fine", {"mtu": 1500}, {"mtu": 9000}, False),
    ("eSwitch mode differs", {"eSwitchMode": "switchdev"}, {}, True),
    ("unset eSwitch mode is legacy", {"eSwitchMode": "legacy"}, {}, False),
    ("PF link down", {}, {"linkAdminState": "down"}, True),
    (
        "netdevice group, VF on a DPDK driver",
        {"numVfs": 1, "vfGroups": [{"vfRange": "0-0", "deviceType": "netdevice"}]},
        {"numVfs": 1, "Vfs": [vf(0, "igb_uio")]},
        True,
    ),
    (
        "vfio-pci group, VF on vfio-pci",
        {"numVfs": 1, "vfGroups": [{"vfRange": "0-0", "deviceType": "vfio-pci"}]},
        {"numVfs": 1, "Vfs": [vf(0, "vfio-pci")]},
        False,
    ),
    (
        "vfio-pci group, VF on a netdev driver",
        {"numVfs": 1, "vfGroups": [{"vfRange": "0-0", "deviceType": "vfio-pci"}]},
        {"numVfs": 1, "Vfs": [vf(0, "mlx5_core")]},
        True,
    ),
    (
        "VF MTU differs from the group's",
        {"numVfs": 1, "vfGroups": [{"vfRange": "0-0", "deviceType": "netdevice", "mtu": 9000}]},
        {"numVfs": 1, "Vfs": [vf(0, "mlx5_core", mtu=1500)]},
        True,
    ),
    (
        "RDMA on Ethernet with an uninitialized GUID",
        {"numVfs": 1, "vfGroups": [{"vfRange": "0-0", "isRdma": True}]},
        {"numVfs": 1, "linkType": "ETH", "Vfs": [vf(0, "mlx5_core", guid="0000:0000:0000:0000")]},
        True,
    ),
    (
        "no RDMA on Ethernet: GUID not checked",
        {"numVfs": 1, "vfGroups": [{"vfRange": "0-0"}]},
        {"numVfs": 1, "linkType": "ETH", "Vfs": [vf(0, "mlx5_core", guid="0000:0000:0000:0000")]},
        False,
    ),
    (
        "InfiniBand always checks the GUID",
        {"numVfs": 1, "vfGroups": [{"vfRange": "0-0"}]},
        {"numVfs": 1, "linkType": "IB", "Vfs": [vf(0, "mlx5_core", guid="0000:0000:0000:0000")]},
        True,
    ),
    (
        "externally managed PF with a netdevice VF",
        {"numVfs": 1, "externallyManaged": True, "vfGroups": [{"vfRange": "0-0"}]},
        {"numVfs": 1, "Vfs": [vf(0, "mlx5_core")]},
        True,
    ),
    (
        "vDPA type missing on the VF",
        {"numVfs": 1, "vfGroups": [{"vfRange": "0-0", "deviceType": "netdevice", "vdpaType": "virtio"}]},
        {"numVfs": 1, "Vfs": [vf(0, "mlx5_core")]},
        True,
    ),
    (
        "vDPA type matches",
        {"numVfs": 1, "vfGroups": [{"vfRange": "0-0", "deviceType": "netdevice", "vdpaType": "vhost"}]},
        {"numVfs": 1, "Vfs": [vf(0, "mlx5_core", vdpaType="vhost")]},
        False,
    ),
    (
        "only the first group containing the VF counts",
        {"numVfs": 1, "vfGroups": [{"vfRange": "0-0", "deviceType": "netdevice"},
                                   {"vfRange": "0-0", "deviceType": "vfio-pci"}]},
        {"numVfs": 1, "Vfs": [vf(0, "mlx5_core")]},
        False,
    ),
]


@pytest.mark.parametrize(("spec", "status", "expected"), [c[1:] for c in NEED_TO_UPDATE_CASES],
                         ids=[c[0] for c in NEED_TO_UPDATE_CASES])
def test_need_to_update_sriov(spec: dict[str, Any], status: dict[str, Any], expected: bool) -> None:
    iface_spec = Interface.model_validate({"pciAddress": "0000:86:00.0", **spec}, by_name=False)
    iface_status = InterfaceExt.model_validate({"pciAddress": "0000:86:00.0", **status}, by_name=False)
    assert need_to_update_sriov(iface_spec, iface_status) is expected


# --- ApplyBridgeConfig --------------------------------------------------------------------------------------------


def bridge_policy(**spec: Any) -> SriovNetworkNodePolicy:
    body: dict[str, Any] = {"nicSelector": {"rootDevices": ["0000:86:00.0"]}, "eSwitchMode": "switchdev",
                            "bridge": {"ovs": {}}}
    body.update(spec)
    return policy(**body)


TEST_OVS = {"bridge": {"datapathType": "test"}, "uplink": {"interface": {"type": "test"}}}


def ovs_bridge(pci: str, name: str, datapath: str = "test", iface_type: str = "test") -> dict[str, Any]:
    return {"name": bridge_name(pci), "bridge": {"datapathType": datapath},
            "uplinks": [{"pciAddress": pci, "name": name, "interface": {"type": iface_type}}]}


def one_pf_state(bridges: list[dict[str, Any]]) -> SriovNetworkNodeState:
    return node_state({"bridges": {"ovs": bridges}}, interfaces=[i40e_pf("ens803f0", "0000:86:00.0")])


BRIDGE_CASES: list[tuple[str, SriovNetworkNodeState, SriovNetworkNodePolicy, list[dict[str, Any]] | None]] = [
    ("no selectors", node_state(), bridge_policy(nicSelector={}), []),
    ("not switchdev config", node_state(), bridge_policy(eSwitchMode="legacy"), None),
    ("bad linkType", node_state(), bridge_policy(linkType="ib"), None),
    ("externally managed", node_state(), bridge_policy(externallyManaged=True), None),
    (
        "single policy multi match",
        node_state(),
        bridge_policy(nicSelector={"rootDevices": ["0000:86:00.0", "0000:86:00.2"]}, bridge={"ovs": TEST_OVS}),
        [ovs_bridge("0000:86:00.0", "ens803f0"), ovs_bridge("0000:86:00.2", "ens803f2")],
    ),
    (
        "update bridge set by policy with lower priority",
        one_pf_state([ovs_bridge("0000:86:00.0", "ens803f0", datapath="foo")]),
        bridge_policy(bridge={"ovs": TEST_OVS}),
        [ovs_bridge("0000:86:00.0", "ens803f0")],
    ),
    (
        "remove bridge set by policy with lower priority",
        one_pf_state([ovs_bridge("0000:86:00.0", "ens803f0", datapath="foo")]),
        bridge_policy(bridge={}),
        [],
    ),
    (
        "keep bridge set by other policy",
        one_pf_state([ovs_bridge("0000:86:00.2", "ens803f2", datapath="foo", iface_type="bar")]),
        bridge_policy(bridge={"ovs": TEST_OVS}),
        [ovs_bridge("0000:86:00.0", "ens803f0"), ovs_bridge("0000:86:00.2", "ens803f2", datapath="foo",
                                                           iface_type="bar")],
    ),
]


@pytest.mark.parametrize(("current", "new_policy", "expected"), [c[1:] for c in BRIDGE_CASES],
                         ids=[c[0] for c in BRIDGE_CASES])
def test_apply_bridge_config(current: SriovNetworkNodeState, new_policy: SriovNetworkNodePolicy,
                             expected: list[dict[str, Any]] | None) -> None:
    state = copy.deepcopy(current)
    if expected is None:
        with pytest.raises(RenderError) as caught:
            apply_bridge_config(state, new_policy)
        assert caught.value.policy == "p1"
        assert state.spec.bridges.to_go_dict() == {}
        return
    apply_bridge_config(state, new_policy)
    assert state.spec.bridges.to_go_dict() == ({"ovs": expected} if expected else {})


def test_bridge_uplink_gets_the_policy_mtu() -> None:
    state = node_state()
    apply_bridge_config(state, bridge_policy(mtu=9000, bridge={"ovs": TEST_OVS}))
    [bridge] = state.spec.bridges.ovs
    assert bridge.uplinks[0].interface.mtu_request == 9000
    assert bridge.to_go_dict()["uplinks"][0]["interface"] == {"type": "test", "mtuRequest": 9000}


@pytest.mark.parametrize(("pci", "expected"),
                         [("0000:86:00.2", "br-0000_86_00.2"), ("0000:d8:00.0", "br-0000_d8_00.0")])
def test_bridge_name(pci: str, expected: str) -> None:
    assert bridge_name(pci) == expected


# --- ResolveInterfaceName (the helper lives in api/selection; rendering relies on it) ----------------------------

TWO_PFS = [{"pciAddress": "a", "name": "ens803f0", "altNames": ["alt1", "alt2"]},
           {"pciAddress": "b", "name": "ens803f1", "altNames": ["alt3"]}]


def state_with(interfaces: list[dict[str, Any]]) -> SriovNetworkNodeState:
    return SriovNetworkNodeState.model_validate({"status": {"interfaces": interfaces}}, by_name=False)


RESOLVE_CASES: list[tuple[str, str, SriovNetworkNodeState | None, str]] = [
    ("nil nodeState returns name unchanged", "eth0", None, "eth0"),
    ("name matches primary interface name", "ens803f0", state_with(TWO_PFS), "ens803f0"),
    ("name matches first alternative name", "alt1", state_with(TWO_PFS), "ens803f0"),
    ("name matches second alternative name", "alt2", state_with(TWO_PFS), "ens803f0"),
    ("name matches alternative name of different interface", "alt3", state_with(TWO_PFS), "ens803f1"),
    ("name not found returns unchanged", "nonexistent", state_with(TWO_PFS), "nonexistent"),
    ("interface with empty alt names", "notfound",
     state_with([{"pciAddress": "a", "name": "ens803f0", "altNames": []}, {"pciAddress": "b", "name": "ens803f1"}]),
     "notfound"),
    ("empty nodeState interfaces", "eth0", state_with([]), "eth0"),
]


@pytest.mark.parametrize(("name", "state", "expected"), [c[1:] for c in RESOLVE_CASES],
                         ids=[c[0] for c in RESOLVE_CASES])
def test_resolve_interface_name(name: str, state: SriovNetworkNodeState | None, expected: str) -> None:
    assert resolve_interface_name(name, state) == expected


# --- ordering and the per-node loop -----------------------------------------------------------------------------


def test_sort_by_priority_descending_then_name() -> None:
    policies = [policy("b", priority=10), policy("a", priority=10), policy("z", priority=99), policy("c", priority=0)]
    assert [p.name for p in sort_by_priority(policies)] == ["z", "a", "b", "c"]


def worker(**labels: str) -> Node:
    return Node.model_validate({"metadata": {"name": "worker-0", "labels": {**SRIOV_CAPABLE, **labels}}})


def test_render_none_until_the_daemon_reports_nics() -> None:
    empty = SriovNetworkNodeState.model_validate({"metadata": {"name": "worker-0"}})
    assert render_node_state_spec([policy()], worker(), empty) is None


def test_render_rebuilds_the_spec_from_scratch() -> None:
    state = node_state({"interfaces": [pf("ens803f0", "0000:86:00.0", 2, [group("old", "0-1", "gone")])]})
    spec = render_node_state_spec([policy()], worker(), state, rdma_mode="exclusive")
    assert spec is not None
    assert [i.to_go_dict() for i in spec.interfaces] == [P1_ON_F1]
    assert spec.system.rdma_mode == "exclusive"


def test_render_equal_priority_merges_pf_settings() -> None:
    """`ppp`: consecutive applied policies of the same priority max-merge numVfs/MTU even when groups overlap."""
    first = policy("a", priority=10, numVfs=4, mtu=9000, resourceName="ra")
    second = policy("b", priority=10, numVfs=2, resourceName="rb")
    spec = render_node_state_spec(sort_by_priority([first, second]), worker(), node_state())
    assert spec is not None
    assert [i.to_go_dict() for i in spec.interfaces] == [
        pf("ens803f1", "0000:86:00.1", 4, [group("rb", "0-1", "b")], mtu=9000)
    ]


def test_render_different_priority_replaces_pf_settings() -> None:
    first = policy("a", priority=20, numVfs=4, mtu=9000, resourceName="ra")
    second = policy("b", priority=10, numVfs=2, resourceName="rb")
    spec = render_node_state_spec(sort_by_priority([first, second]), worker(), node_state())
    assert spec is not None
    assert [i.to_go_dict() for i in spec.interfaces] == [pf("ens803f1", "0000:86:00.1", 2, [group("rb", "0-1", "b")])]


def test_equal_priority_counts_only_policies_applied_to_the_node() -> None:
    """The skipped policy in between (other node) does not reset `ppp`: a and b are still 'equal'."""
    first = policy("a", priority=10, numVfs=4, resourceName="ra")
    elsewhere = policy("ab", priority=10, numVfs=8, nodeSelector={"rack": "other"})
    second = policy("b", priority=10, numVfs=2, resourceName="rb")
    spec = render_node_state_spec(sort_by_priority([first, elsewhere, second]), worker(), node_state())
    assert spec is not None and spec.interfaces[0].num_vfs == 4


def test_render_skips_default_policy_and_unselected_nodes() -> None:
    policies = [policy("default"), policy("p2", nodeSelector={"rack": "r1"})]
    spec = render_node_state_spec(policies, worker(), node_state())
    assert spec is not None and spec.interfaces == []
    spec = render_node_state_spec(policies, worker(rack="r1"), node_state())
    assert spec is not None and [i.vf_groups[0].policy_name for i in spec.interfaces] == ["p2"]


def test_render_error_names_policy_and_node() -> None:
    bad = policy(nicSelector={"pfNames": ["ens803f1#0-"]})
    with pytest.raises(RenderError) as caught:
        render_node_state_spec([bad], worker(), node_state())
    assert (caught.value.policy, caught.value.node) == ("p1", "worker-0")
    assert str(caught.value).startswith("policy p1 on node worker-0: ")


def test_render_bridges_only_with_the_feature_gate() -> None:
    policies = [bridge_policy(bridge={"ovs": TEST_OVS})]
    without = render_node_state_spec(policies, worker(), node_state())
    with_gate = render_node_state_spec(policies, worker(), node_state(), manage_software_bridges=True)
    assert without is not None and without.bridges.ovs == []
    assert with_gate is not None and with_gate.bridges.to_go_dict() == {"ovs": [ovs_bridge("0000:86:00.0", "ens803f0")]}
