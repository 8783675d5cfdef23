"""Validation rules: every case of upstream `validate_test.go` and `validate_networks_test.go`, ported, plus the
vDPA scenarios this project is about. Messages are asserted as upstream's exact text."""

from __future__ import annotations

import copy
from typing import Any

import pytest

import scenario
from vdpa_operator.api.admission import (
    DEFAULT_NAMESPACE,
    ClusterView,
    MaxUnavailableError,
    Operation,
    Problem,
    Settings,
    Verdict,
    admit,
    check_policy_on_node,
    max_unavailable,
    policy_conflicts,
    resource_name_problem,
    static_policy_problems,
    validate,
)
from vdpa_operator.api.kube import Node
from vdpa_operator.api.models import (
    OVSNetwork,
    SriovIBNetwork,
    SriovNetwork,
    SriovNetworkNodePolicy,
    SriovNetworkNodeState,
    SriovNetworkPoolConfig,
    SriovOperatorConfig,
)
from vdpa_operator.api.nics import SupportedNics

NS = DEFAULT_NAMESPACE
CAPABLE = {"feature.node.kubernetes.io/network-sriov.capable": "true"}

UPSTREAM_NICS = SupportedNics.parse(
    """
    8086 158a 154c
    8086 158b 154c
    8086 1572 154c
    8086 0d58 154c
    8086 1583 154c
    8086 1592 1889
    8086 1593 1889
    8086 159b 1889
    15b3 1013 1014
    15b3 1015 1016
    15b3 1017 1018
    15b3 1019 101a
    15b3 101b 101c
    15b3 101d 101e
    15b3 a2d6 101e
    14e4 16d7 16dc
    14e4 1750 1806
    """.splitlines()
)
"""The NIC table upstream's validate_test.go installs in TestMain."""
UPSTREAM = Settings(nics=UPSTREAM_NICS)


# --- builders (JSON names, as a user writes them) -------------------------------------------------------------


def policy(name: str = "", namespace: str = "", **spec: Any) -> SriovNetworkNodePolicy:
    """A policy; required spec fields default to Go's zero values, as in upstream's Go test literals."""
    body: dict[str, Any] = {"resourceName": "", "nodeSelector": {}, "numVfs": 0, "nicSelector": {}}
    body.update(spec)
    return SriovNetworkNodePolicy.model_validate(
        {"metadata": {"name": name, "namespace": namespace}, "spec": body}, by_name=False
    )


def upstream_policy(**changes: Any) -> SriovNetworkNodePolicy:
    """Upstream `newNodePolicy()`."""
    spec: dict[str, Any] = {
        "deviceType": "netdevice",
        "nicSelector": {"pfNames": ["ens803f1#0-2"], "rootDevices": ["0000:86:00.1"], "vendor": "8086"},
        "nodeSelector": CAPABLE,
        "numVfs": 63,
        "priority": 99,
        "resourceName": "p1",
    }
    spec.update(changes)
    return policy("p1", **spec)


def intel_pf(name: str, pci: str, device: str = "158b", **extra: Any) -> dict[str, Any]:
    return {
        "deviceID": device, "driver": "i40e", "mtu": 1500, "name": name, "pciAddress": pci, "vendor": "8086",
        "numVfs": 4, "totalvfs": 64, "linkType": "ETH", **extra,
    }


def node_state(interfaces: list[dict[str, Any]], name: str = "", **status: Any) -> SriovNetworkNodeState:
    return SriovNetworkNodeState.model_validate(
        {"metadata": {"name": name, "namespace": NS}, "status": {"interfaces": interfaces, **status}},
        by_name=False,
    )


def upstream_state_interfaces() -> list[dict[str, Any]]:
    """Upstream `newNodeState()` status: two supported i40e PFs and one with an unlisted device id."""
    return [
        intel_pf("ens803f0", "0000:86:00.0"),
        intel_pf("ens803f1", "0000:86:00.1"),
        intel_pf("ens803f2", "0000:86:00.2", device="1015"),
    ]


def upstream_state(**iface1: Any) -> SriovNetworkNodeState:
    interfaces = upstream_state_interfaces()
    interfaces[1].update(iface1)
    return node_state(interfaces)


def node(name: str = "", labels: dict[str, str] | None = None, provider_id: str = "") -> Node:
    return Node.model_validate(
        {"metadata": {"name": name, "labels": labels or {}}, "spec": {"providerID": provider_id}}, by_name=False
    )


UPSTREAM_NODE = node(provider_id="openstack")
"""Upstream `NewNode()`."""


def messages(problems: tuple[Problem, ...] | Verdict) -> list[str]:
    found = problems.errors if isinstance(problems, Verdict) else problems
    return [str(p) for p in found]


def has_message(problems: tuple[Problem, ...] | Verdict, text: str) -> bool:
    return any(text in m for m in messages(problems))


# --- SriovOperatorConfig --------------------------------------------------------------------------------------


def operator_config(name: str = "default", namespace: str = NS, **spec: Any) -> SriovOperatorConfig:
    body = {
        "configDaemonNodeSelector": {}, "disableDrain": True, "enableInjector": True,
        "enableOperatorWebhook": True, "logLevel": 2,
    }
    body.update(spec)
    return SriovOperatorConfig.model_validate(
        {"metadata": {"name": name, "namespace": namespace}, "spec": body}, by_name=False
    )


def test_operator_config_default() -> None:
    """Upstream TestValidateSriovOperatorConfigWithDefaultOperatorConfig (nothing stored yet)."""
    config, empty = operator_config(), ClusterView()
    deleted = validate(config, Operation.DELETE, empty)
    assert deleted.allowed and deleted.warnings == ()
    updated = validate(config, Operation.UPDATE, empty)
    assert updated.allowed
    assert "Node draining is disabled" in updated.warnings[0]
    assert updated.warnings == (
        "Node draining is disabled for applying SriovNetworkNodePolicy, it may result in workload interruption.",
    )
    assert validate(config, Operation.CREATE, empty).allowed


def test_operator_config_disable_drain_while_a_node_updates() -> None:
    """Upstream TestValidateSriovOperatorConfigDisableDrain."""
    previous = operator_config(disableDrain=False)
    state = node_state([], name="worker-1", syncStatus="InProgress")
    cluster = ClusterView(node_states=(state,), operator_config=previous)
    verdict = validate(operator_config(disableDrain=True), Operation.UPDATE, cluster)
    assert not verdict.allowed
    assert verdict.errors[0].message == "can't set Spec.DisableDrain = true while node[worker-1] is updating"
    assert verdict.errors[0].field == "spec.disableDrain"

    finished = node_state([], name="worker-1", syncStatus="Succeeded")
    cluster = ClusterView(node_states=(finished,), operator_config=previous)
    assert validate(operator_config(disableDrain=True), Operation.UPDATE, cluster).allowed


@pytest.mark.parametrize(
    ("cluster", "allowed"),
    [
        pytest.param(None, True, id="no-cluster-data"),
        pytest.param(ClusterView(), True, id="no-previous-config"),
        pytest.param(ClusterView(operator_config=operator_config(disableDrain=True)), True, id="already-true"),
    ],
)
def test_operator_config_disable_drain_transition_needs_a_false_previous(
    cluster: ClusterView | None, allowed: bool
) -> None:
    if cluster is not None:
        cluster = ClusterView(
            node_states=(node_state([], name="w", syncStatus="InProgress"),),
            operator_config=cluster.operator_config,
        )
    assert validate(operator_config(disableDrain=True), Operation.UPDATE, cluster).allowed is allowed


def test_operator_config_disable_drain_ignores_states_of_other_namespaces() -> None:
    state = SriovNetworkNodeState.model_validate(
        {"metadata": {"name": "w", "namespace": "elsewhere"}, "status": {"syncStatus": "InProgress"}}
    )
    cluster = ClusterView(node_states=(state,), operator_config=operator_config(disableDrain=False))
    assert validate(operator_config(disableDrain=True), Operation.UPDATE, cluster).allowed


@pytest.mark.parametrize(
    ("name", "namespace", "field"),
    [("other", NS, "metadata.name"), ("default", "elsewhere", "metadata.namespace"), ("x", "", "metadata.name")],
)
def test_operator_config_must_be_the_default_one(name: str, namespace: str, field: str) -> None:
    verdict = validate(operator_config(name, namespace), Operation.CREATE, None)
    assert not verdict.allowed
    assert verdict.errors[0].message == f"only default SriovOperatorConfig in {NS} namespace is used"
    assert verdict.errors[0].field == field
    assert verdict.warnings == ()
    assert validate(operator_config(name, namespace), Operation.DELETE, None).allowed


def test_operator_config_uses_the_configured_namespace() -> None:
    settings = Settings(namespace="sriov")
    assert validate(operator_config(namespace="sriov"), Operation.CREATE, None, settings).allowed
    verdict = validate(operator_config(), Operation.CREATE, None, settings)
    assert has_message(verdict, "only default SriovOperatorConfig in sriov namespace is used")


# --- SriovNetworkPoolConfig -----------------------------------------------------------------------------------


def pool_config(**spec: Any) -> SriovNetworkPoolConfig:
    return SriovNetworkPoolConfig.model_validate({"metadata": {"name": "default"}, "spec": spec}, by_name=False)


def upstream_pool(**changes: Any) -> SriovNetworkPoolConfig:
    """Upstream `newDefaultNetworkPoolConfig()`."""
    return pool_config(maxUnavailable=1, nodeSelector={"matchLabels": {}}, **changes)


@pytest.mark.parametrize("operation", list(Operation))
def test_pool_config_default(operation: Operation) -> None:
    """Upstream TestValidateSriovNetworkPoolConfigWithDefault."""
    assert validate(upstream_pool(), operation, None).allowed


@pytest.mark.parametrize("operation", [Operation.UPDATE, Operation.CREATE, Operation.DELETE])
def test_pool_config_parallel_and_hw_offload(operation: Operation) -> None:
    """Upstream TestValidateSriovNetworkPoolConfigWithParallelAndHWOffload; upstream checks DELETE too."""
    verdict = validate(upstream_pool(ovsHardwareOffloadConfig={"name": "test"}), operation, None)
    assert not verdict.allowed
    assert verdict.errors[0].message == (
        "SriovOperatorConfig can't have both parallel configuration and OvsHardwareOffloadConfig"
    )


@pytest.mark.parametrize(
    "spec",
    [{"maxUnavailable": 1}, {"nodeSelector": {}}],
    ids=["maxUnavailable", "empty-nodeSelector"],
)
def test_pool_config_any_parallel_setting_conflicts_with_offload(spec: dict[str, Any]) -> None:
    assert not validate(pool_config(ovsHardwareOffloadConfig={"name": "x"}, **spec), Operation.CREATE, None).allowed


def test_pool_config_offload_alone_is_fine() -> None:
    assert validate(pool_config(ovsHardwareOffloadConfig={"name": "x"}), Operation.CREATE, None).allowed


@pytest.mark.parametrize(
    ("value", "inner"),
    [
        ("bla", "invalid type: strings needs to be a percentage"),
        ("99999999999999999.", "invalid type: strings needs to be a percentage"),
        ("10000%", "invalid value: percentage needs to be between 1 and 100"),
        ("0%", "invalid value: percentage needs to be between 1 and 100"),
        ("-5%", "invalid value: percentage needs to be between 1 and 100"),
        ("x%", 'invalid value "x%": strconv.Atoi: parsing "x": invalid syntax'),
        ("5%%", 'invalid value "5%%": strconv.Atoi: parsing "5%": invalid syntax'),
        ("99999999999999999999%", 'invalid value "99999999999999999999%": strconv.Atoi: parsing '
                                  '"99999999999999999999": value out of range'),
        (-1, "negative number is not allowed"),
    ],
)
def test_pool_config_invalid_max_unavailable(value: int | str, inner: str) -> None:
    verdict = validate(pool_config(maxUnavailable=value), Operation.CREATE, None)
    assert not verdict.allowed
    assert verdict.errors[0].message == f"SriovOperatorConfig invalid maxUnavailable: {inner}"
    assert verdict.errors[0].field == "spec.maxUnavailable"


@pytest.mark.parametrize("value", [0, 1, 7, "1%", "50%", "100%", "+5%"])
def test_pool_config_valid_max_unavailable(value: int | str) -> None:
    assert validate(pool_config(maxUnavailable=value), Operation.CREATE, None).allowed


@pytest.mark.parametrize(
    ("value", "nodes", "expected"),
    [
        pytest.param(1, 1, 1, id="valid int MaxUnavailable"),
        pytest.param("33%", 10, 3, id="valid string percentage MaxUnavailable"),
        pytest.param(None, 10, -1, id="parallel"),
        pytest.param("30%", 1, 0, id="zero"),
        pytest.param("100%", 7, 7, id="all"),
        pytest.param("99%", 100, 99, id="rounds-down"),
        pytest.param("15%", 19, 2, id="rounds-down-again"),
    ],
)
def test_max_unavailable(value: int | str | None, nodes: int, expected: int) -> None:
    """Upstream helper_test.go TestSriovNetworkPoolConfig_MaxUnavailable, valid rows (and a few more)."""
    assert max_unavailable(value, nodes) == expected


@pytest.mark.parametrize(
    ("value", "nodes"),
    [
        pytest.param("bla", 1, id="invalid string MaxUnavailable"),
        pytest.param(-1, 10, id="negative int MaxUnavailable"),
        pytest.param("99999999999999999.", 10, id="out of range int MaxUnavailable"),
        pytest.param("10000%", 10, id="over 100%"),
    ],
)
def test_max_unavailable_errors(value: int | str, nodes: int) -> None:
    """Upstream helper_test.go TestSriovNetworkPoolConfig_MaxUnavailable, error rows."""
    with pytest.raises(MaxUnavailableError):
        max_unavailable(value, nodes)
    with pytest.raises(ValueError):
        max_unavailable(value, nodes)


# --- network kinds (upstream validate_networks_test.go) -------------------------------------------------------

NETWORK_KINDS = {"SriovNetwork": SriovNetwork, "SriovIBNetwork": SriovIBNetwork, "OVSNetwork": OVSNetwork}


@pytest.mark.parametrize(
    ("kind", "namespace", "network_namespace", "fails"),
    [
        (kind, namespace, network_namespace, namespace == "xxx" and network_namespace == "yyy")
        for kind in NETWORK_KINDS
        for namespace, network_namespace in [
            ("operator-namespace", ""), ("operator-namespace", "xxx"), ("xxx", ""), ("xxx", "yyy"),
        ]
    ],
)
def test_network_namespace(kind: str, namespace: str, network_namespace: str, fails: bool) -> None:
    """Upstream TestValidate_NetworkNamespace (all 12 cases), with operator namespace "operator-namespace"."""
    network = NETWORK_KINDS[kind].model_validate(
        {"metadata": {"name": "n", "namespace": namespace},
         "spec": {"resourceName": "r", "networkNamespace": network_namespace}},
        by_name=False,
    )
    verdict = validate(network, Operation.CREATE, None, Settings(namespace="operator-namespace"))
    assert verdict.allowed is not fails
    if fails:
        assert verdict.errors[0].message == (
            ".Spec.NetworkNamespace field can't be specified if the resource is not in the operator-namespace "
            "namespace"
        )
        assert verdict.errors[0].field == "spec.networkNamespace"


def test_other_kinds_are_not_checked() -> None:
    assert validate(node_state([]), Operation.CREATE, ClusterView()) == Verdict(allowed=True)
    assert validate(node(), Operation.DELETE, None) == Verdict(allowed=True)


# --- the default policy and namespaces ------------------------------------------------------------------------


@pytest.mark.parametrize("operation", list(Operation))
def test_default_policy_is_not_checked(operation: Operation) -> None:
    """Upstream TestValidateSriovNetworkNodePolicyWithDefaultPolicy."""
    default = policy("default", NS, numVfs=1, resourceName="p0")
    verdict = validate(default, operation, ClusterView())
    assert verdict == Verdict(allowed=True)


def test_default_named_policy_elsewhere_is_checked() -> None:
    verdict = validate(policy("default", "other", numVfs=1, resourceName="p0"), Operation.CREATE, None)
    assert not verdict.allowed
    assert verdict.warnings


@pytest.mark.parametrize("operation", list(Operation))
def test_policy_outside_the_operator_namespace_warns(operation: Operation) -> None:
    outside = upstream_policy(nicSelector={"vendor": "8086"})
    outside = outside.model_copy(update={"metadata": outside.metadata.model_copy(update={"namespace": "apps"})})
    verdict = validate(outside, operation, None, UPSTREAM)
    assert verdict.allowed
    assert verdict.warnings == (
        f"p1 is created or updated but not used. Only policy in {NS} namespace is respected.",
    )


def test_policy_delete_skips_every_rule() -> None:
    broken = policy("broken", NS)
    assert validate(broken, Operation.DELETE, ClusterView()) == Verdict(allowed=True)
    assert not validate(broken, Operation.UPDATE, None).allowed


# --- validatePolicyForNodeState (per-node rules) --------------------------------------------------------------


def node_check(pol: SriovNetworkNodePolicy, state: SriovNetworkNodeState | None = None) -> Any:
    return check_policy_on_node(pol, state or upstream_state(), UPSTREAM_NODE, UPSTREAM)


F0 = {"pfNames": ["ens803f0"], "rootDevices": ["0000:86:00.0"], "vendor": "8086"}


def f0_policy(name: str = "p1", **spec: Any) -> SriovNetworkNodePolicy:
    body: dict[str, Any] = {
        "deviceType": "netdevice", "nicSelector": F0, "nodeSelector": CAPABLE, "numVfs": 63, "priority": 99,
        "resourceName": "p0",
    }
    body.update(spec)
    return policy(name, **body)


@pytest.mark.parametrize(
    ("pol", "error"),
    [
        pytest.param(f0_policy(""), None, id="ValidPolicy"),
        pytest.param(
            f0_policy(numVfs=65), "numVfs(65) in CR p1 exceed the maximum allowed value(64) interface(ens803f0)",
            id="InvalidNumVfsPolicy",
        ),
        pytest.param(
            f0_policy(numVfs=5, externallyManaged=True),
            "numVfs(5) in CR p1 is higher than the virtual functions allocated for the PF externally value(4)",
            id="InvalidNumVfsExternallyCreated",
        ),
        pytest.param(f0_policy(numVfs=4, externallyManaged=True), None, id="ValidNumVfsExternallyCreated"),
        pytest.param(f0_policy(numVfs=3, externallyManaged=True), None, id="ValidLowerNumVfsExternallyCreated"),
        pytest.param(f0_policy(numVfs=4, externallyManaged=True, mtu=1500), None, id="ExternallyManageAndMTU"),
        pytest.param(
            f0_policy(numVfs=4, externallyManaged=True, mtu=9000),
            "MTU(9000) in CR p1 is higher than the MTU for the PF externally value(1500)",
            id="ExternallyManageAndDifferentMTU",
        ),
        pytest.param(
            f0_policy(numVfs=4, externallyManaged=True, mtu=9000, linkType="IB"),
            "LinkType(IB) in CR p1 is not equal to the LinkType for the PF externally value(ETH)",
            id="ExternallyManageAndDifferentLinkType",
        ),
        pytest.param(
            f0_policy(numVfs=4, vdpaType="virtio"), "vendor(8086) in CR p1 not supported for vdpa interface(ens803f0)",
            id="VirtioVdpaWithNotSupportedVendor",
        ),
        pytest.param(
            f0_policy(numVfs=4, vdpaType="vhost"), "vendor(8086) in CR p1 not supported for vdpa interface(ens803f0)",
            id="VhostVdpaWithNotSupportedVendor",
        ),
        pytest.param(
            f0_policy("", numVfs=4, priority=0, eSwitchMode="switchdev", externallyManaged=True), None,
            id="ExternallyManageAndSwitchdev",
        ),
        pytest.param(
            f0_policy("", numVfs=30, priority=0, eSwitchMode="switchdev", externallyManaged=True),
            "is higher than the virtual functions allocated for the PF externally value",
            id="ExternallyManageAndSwitchdevAndWrongVFCount",
        ),
    ],
)
def test_policy_for_node_state(pol: SriovNetworkNodePolicy, error: str | None) -> None:
    """Upstream TestValidatePolicyForNodeState* cases on `newNodeState()` and an OpenStack node."""
    check = node_check(pol)
    assert check.selected
    if error is None:
        assert check.problems == ()
    else:
        assert has_message(check.problems, error), messages(check.problems)


@pytest.mark.parametrize(
    ("policy_link", "pf_link"), [("ETH", "ETH"), ("eth", "ETH"), ("ETH", "eth")]
)
def test_policy_for_node_state_externally_managed_link_type_is_case_insensitive(
    policy_link: str, pf_link: str
) -> None:
    """Upstream TestValidatePolicyForNodeStateWithExternallyManageAndLinkType."""
    interfaces = upstream_state_interfaces()
    interfaces[0]["linkType"] = pf_link
    pol = f0_policy(numVfs=4, externallyManaged=True, linkType=policy_link)
    assert node_check(pol, node_state(interfaces)).problems == ()


def selector_policy(nic_selector: dict[str, Any], num_vfs: int = 63) -> SriovNetworkNodePolicy:
    return policy(
        "", deviceType="netdevice", nicSelector=nic_selector, nodeSelector=CAPABLE, numVfs=num_vfs, priority=99,
        resourceName="p0",
    )


@pytest.mark.parametrize(
    ("nic_selector", "alt_names", "selected"),
    [
        pytest.param({"deviceID": "1015"}, None, False, id="InvalidDevice"),
        pytest.param({"pfNames": ["ens803f2"]}, None, False, id="InvalidPfName"),
        pytest.param({"pfNames": ["ens803f1"]}, None, True, id="ValidPfName"),
        pytest.param(
            {"netFilter": "openstack/NetworkID:ada9ec67-2c97-467c-b674-c47200e2f5da"}, None, True,
            id="ValidNetFilter",
        ),
        pytest.param({"pfNames": ["ens803f1"], "vendor": "8086"}, None, True, id="PfNameMatchingInterfaceName"),
        pytest.param(
            {"pfNames": ["eth0"], "vendor": "8086"}, ["eth0", "net1", "oldname"], True,
            id="PfNameMatchingAlternativeName",
        ),
        pytest.param(
            {"pfNames": ["nonexistent"], "vendor": "8086"}, ["eth0", "net1", "oldname"], False,
            id="PfNameNotMatchingEitherNameOrAltNames",
        ),
        pytest.param({"pfNames": ["ens803f1"], "vendor": "8086"}, [], True, id="EmptyAlternativeNames"),
        pytest.param({"pfNames": ["ens803f1"], "vendor": "8086"}, None, True, id="NilAlternativeNames"),
        pytest.param(
            {"pfNames": ["legacy"], "vendor": "8086"}, ["eth0", "net1", "oldname", "legacy"], True,
            id="MultipleAlternativeNamesOneMatches",
        ),
        pytest.param(
            {"pfNames": ["eth0#0-1"], "vendor": "8086"}, ["eth0", "net1"], True,
            id="PfNameAndVfRangeMatchingAlternativeName",
        ),
    ],
)
def test_policy_for_node_state_selection(
    nic_selector: dict[str, Any], alt_names: list[str] | None, selected: bool
) -> None:
    """Upstream cases that assert no error and whether an interface was selected (`interfaceSelected`)."""
    state = upstream_state() if alt_names is None else upstream_state(altNames=alt_names)
    num_vfs = 4 if "vendor" in nic_selector else 63
    check = node_check(selector_policy(nic_selector, num_vfs), state)
    assert check.problems == ()
    assert check.selected is selected
    if not selected:
        assert check.not_selected


def test_policy_for_node_state_valid_vf_and_net_filter() -> None:
    """Upstream TestValidatePolicyForNodeStateWithValidVFAndNetFilter."""
    net = "openstack/NetworkID:e48c7670-bcb4-4f9c-8038-012b6571501d"
    pf = intel_pf("ens803f0", "0000:86:00.0", numVfs=1, netFilter=net)
    del pf["linkType"]
    pf["Vfs"] = [{"deviceID": "158b", "driver": "iavf", "pciAddress": "0000:86:00.1", "mtu": 1500, "vfID": 0}]
    check = node_check(selector_policy({"pfNames": ["ens803f0"], "netFilter": net}, 1), node_state([pf]))
    assert check.selected and check.problems == ()


# --- virtual platforms (the rest of validateNicModel) ---------------------------------------------------------

VF_NET = "openstack/NetworkID:ada9ec67-2c97-467c-b674-c47200e2f5da"


def vm_state(net_filter: str = VF_NET) -> SriovNetworkNodeState:
    """A VM sees a VF (Intel 154c, a supported *VF* id) as its PF."""
    return node_state([intel_pf("ens3", "0000:00:05.0", device="154c", totalvfs=1, netFilter=net_filter)])


@pytest.mark.parametrize(
    ("provider_id", "net_filter", "selected"),
    [
        ("openstack://uuid", VF_NET, True),
        ("OpenStack://uuid", VF_NET, True),
        ("aws:///us-east-1a/i-0abc", VF_NET, True),
        ("", VF_NET, False),
        ("gce://project/zone/vm", VF_NET, False),
        ("openstack://uuid", "openstack/NetworkID:other", False),
    ],
)
def test_vf_model_is_selected_only_on_virtual_platforms(provider_id: str, net_filter: str, selected: bool) -> None:
    pol = selector_policy({"netFilter": net_filter}, 1)
    check = check_policy_on_node(pol, vm_state(), node(provider_id=provider_id), UPSTREAM)
    assert check.selected is selected


def test_net_filter_is_ignored_for_supported_pf_models() -> None:
    """Upstream quirk: a supported PF is selected whatever the netFilter says (only VFs need the match)."""
    pol = selector_policy({"netFilter": "openstack/NetworkID:nothing-like-it"}, 1)
    check = check_policy_on_node(pol, upstream_state(), node(), UPSTREAM)
    assert check.selected


# --- validatePolicyForNodePolicy (conflicts between policies) -------------------------------------------------


def p0_policy(**spec: Any) -> SriovNetworkNodePolicy:
    body: dict[str, Any] = {
        "deviceType": "netdevice", "nicSelector": {"pfNames": ["ens803f1#3-4"], "vendor": "8086"},
        "nodeSelector": CAPABLE, "numVfs": 63, "priority": 99, "resourceName": "p0",
    }
    body.update(spec)
    return policy("p0", **body)


@pytest.mark.parametrize(
    ("current", "existing", "error"),
    [
        pytest.param(
            p0_policy(externallyManaged=True), upstream_policy(externallyManaged=True), None,
            id="WithOutExternallyManageConflict",
        ),
        pytest.param(
            p0_policy(externallyManaged=True), upstream_policy(),
            "externallyManage is inconsistent with existing policy p1", id="WithExternallyManageConflict",
        ),
        pytest.param(
            p0_policy(nicSelector={"pfNames": ["ens803f1#2-2"], "vendor": "8086"}), upstream_policy(),
            "VF index range in ens803f1#2-2 is overlapped with existing policy p1", id="WithOverlappedVfRange",
        ),
        pytest.param(
            policy("p1", deviceType="netdevice", numVfs=63, priority=99, resourceName="p1", nodeSelector=CAPABLE,
                   nicSelector={"pfNames": ["ens803f1#1-2"], "rootDevices": ["0000:86:00.1"], "vendor": "8086"}),
            upstream_policy(), None, id="UpdatedExistingVfRange",
        ),
        pytest.param(
            p0_policy(externallyManaged=True, eSwitchMode="switchdev"), upstream_policy(externallyManaged=True),
            None, id="AllowSwitchdevWithExternallyManage",
        ),
        pytest.param(
            policy("currentPolicy", resourceName="resourceX", excludeTopology=True),
            policy("previousPolicy", resourceName="resourceX", excludeTopology=False),
            "excludeTopology[true] field conflicts with policy [previousPolicy].ExcludeTopology[false] as they "
            "target the same resource[resourceX]",
            id="DifferentExcludeTopologyForTheSameResource",
        ),
        pytest.param(
            policy("currentPolicy", resourceName="resourceX", numVfs=10, nicSelector={"pfNames": ["eno1#0-4"]},
                   excludeTopology=True),
            policy("previousPolicy", resourceName="resourceX", numVfs=10, nicSelector={"pfNames": ["eno1#5-9"]}),
            "excludeTopology[true] field conflicts with policy [previousPolicy].ExcludeTopology[false] as they "
            "target the same resource[resourceX]",
            id="DifferentExcludeTopologyForTheSameResourceAndTheSamePF",
        ),
        pytest.param(
            policy("currentPolicy", resourceName="resourceX", excludeTopology=True),
            policy("previousPolicy", resourceName="resourceX", excludeTopology=True),
            None, id="SameExcludeTopologyForTheSameResource",
        ),
        pytest.param(
            policy("currentPolicy", resourceName="resourceX", numVfs=10,
                   nicSelector={"rootDevices": ["0000:86:00.1"]}),
            policy("previousPolicy", resourceName="resourceX", numVfs=5,
                   nicSelector={"rootDevices": ["0000:86:00.1"]}),
            "root device 0000:86:00.1 is overlapped with existing policy previousPolicy",
            id="DifferentNumVfForTheSameResourceAndTheSameRootDevice",
        ),
    ],
)
def test_policy_for_node_policy(
    current: SriovNetworkNodePolicy, existing: SriovNetworkNodePolicy, error: str | None
) -> None:
    """Upstream TestValidatePolicyForNodePolicy* / TestValidatePolicies* cases (no node state)."""
    problems = policy_conflicts(current, existing, None)
    if error is None:
        assert problems == ()
    else:
        assert messages(problems) and messages(problems)[0].startswith(error), messages(problems)


def test_policy_for_node_policy_resolves_alt_names_through_the_node_state() -> None:
    """Upstream TestValidatePolicyForNodePolicyWithAltNameConflict."""
    current = policy("policy1", deviceType="netdevice", nicSelector={"pfNames": ["eno2np1"]},
                     nodeSelector={"kubernetes.io/hostname": "node1"}, numVfs=2, resourceName="mlx_sriov1")
    previous = policy("policy2", deviceType="netdevice", nicSelector={"pfNames": ["sriov1"]},
                      nodeSelector={"kubernetes.io/hostname": "node1"}, numVfs=2, resourceName="mlx_sriov1")
    state = node_state([{"name": "eno2np1", "altNames": ["sriov1", "enp25s0f1np1"], "pciAddress": "0000:19:00.1",
                         "numVfs": 2, "totalvfs": 2}])
    assert has_message(policy_conflicts(current, previous, state), "VF index range in eno2np1 is overlapped")
    assert policy_conflicts(current, previous, None) == ()


def test_policy_for_node_policy_first_matching_name_decides() -> None:
    """Upstream quirk: the first pair of entries on the same PF decides; later entries are not compared."""
    current = policy("a", resourceName="a", numVfs=8, nicSelector={"pfNames": ["ens1f0#0-3", "ens1f1#0-3"]})
    existing = policy("b", resourceName="b", numVfs=8, nicSelector={"pfNames": ["ens1f0#4-7", "ens1f1#0-3"]})
    assert policy_conflicts(current, existing, None) == ()
    swapped = policy("a", resourceName="a", numVfs=8, nicSelector={"pfNames": ["ens1f1#0-3", "ens1f0#0-3"]})
    assert has_message(policy_conflicts(swapped, existing, None), "VF index range in ens1f1#0-3 is overlapped")


def test_policy_for_node_policy_reports_independent_conflicts_together() -> None:
    current = policy("a", resourceName="r", excludeTopology=True,
                     nicSelector={"pfNames": ["ens1f0"], "rootDevices": ["0000:65:00.0"]})
    existing = policy("b", resourceName="r", nicSelector={"pfNames": ["ens1f0"], "rootDevices": ["0000:65:00.0"]})
    problems = policy_conflicts(current, existing, None)
    assert [p.field for p in problems] == [
        "spec.nicSelector.pfNames[0]", "spec.nicSelector.rootDevices[0]", "spec.excludeTopology",
    ]


# --- validateResourceName -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "error"),
    [
        pytest.param("myresource", None, id="valid simple"),
        pytest.param("my-resource", None, id="valid with hyphen"),
        pytest.param("MyResource", None, id="valid uppercase"),
        pytest.param("a", None, id="valid single char"),
        pytest.param("my_resource", None, id="underscore in name"),
        pytest.param("net_device-1", None, id="underscore with hyphen"),
        pytest.param("_", "invalid", id="underscore only"),
        pytest.param("a" * 63, None, id="valid 63 chars"),
        pytest.param("", "must not be empty", id="empty"),
        pytest.param("-resource", "invalid", id="leading hyphen"),
        pytest.param("resource-", "invalid", id="trailing hyphen"),
        pytest.param("-", "invalid", id="only hyphen"),
        pytest.param("a" * 64, "no more than 63", id="64 chars"),
        pytest.param("my resource", "invalid", id="invalid char space"),
        pytest.param("my.resource", "invalid", id="invalid char dot"),
        pytest.param("my/resource", "invalid", id="invalid char slash"),
    ],
)
def test_resource_name(name: str, error: str | None) -> None:
    """Upstream TestValidateResourceName."""
    problem = resource_name_problem(name)
    if error is None:
        assert problem is None
    else:
        assert problem is not None and error in str(problem) and problem.field == "spec.resourceName"


def test_resource_name_messages_quote_like_go() -> None:
    problem = resource_name_problem('my "res"\n')
    assert problem is not None
    assert problem.message.startswith('resource name "my \\"res\\"\\n" is invalid: must consist of alphanumeric')
    assert problem.message.endswith(
        "(e.g. 'myresource', 'net-device-1'), see "
        "https://kubernetes.io/docs/concepts/overview/working-with-objects/names/#names"
    )
    long_problem = resource_name_problem("a" * 64)
    assert long_problem is not None
    assert long_problem.message == f'resource name "{"a" * 64}" must be no more than 63 characters'


# --- staticValidateSriovNetworkNodePolicy ---------------------------------------------------------------------


def static_policy(**spec: Any) -> SriovNetworkNodePolicy:
    body: dict[str, Any] = {
        "deviceType": "netdevice", "nodeSelector": CAPABLE, "numVfs": 63, "priority": 99, "resourceName": "p0",
    }
    body.update(spec)
    return policy("", **body)


NET = "openstack/NetworkID:ada9ec67-2c97-467c-b674-c47200e2f5da"
NET_ONLY = {"nicSelector": {"netFilter": NET}, "numVfs": 1, "nodeSelector": {}, "priority": 0}
OTHER_SELECTORS = (
    "nicSelector fields vendor, deviceID, pfNames, and rootDevices are not allowed when netFilter is specified"
)


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        pytest.param({"nicSelector": {"vendor": "8086", "deviceID": "158b"}}, None, id="ValidVendorDevice"),
        pytest.param({"nicSelector": {"vendor": "8087"}}, "vendor 8087 is not supported", id="InvalidVendor"),
        pytest.param({"nicSelector": {"deviceID": "1234"}}, "device 1234 is not supported", id="InvalidDevice"),
        pytest.param(
            {"nicSelector": {"vendor": "8086", "deviceID": "1015"}}, "vendor/device 8086/1015 is not supported",
            id="InvalidVendorDevice",
        ),
        pytest.param(
            {"deviceType": "vfio-pci", "nicSelector": {"vendor": "8086", "deviceID": "158b"}, "numVfs": 1,
             "isRdma": True},
            "'deviceType: vfio-pci' conflicts with 'isRdma: true'", id="ConflictIsRdmaAndDeviceType",
        ),
        pytest.param(
            {"deviceType": "vfio-pci", "nicSelector": {"vendor": "15b3", "deviceID": "101d"}, "numVfs": 1,
             "vdpaType": "virtio", "eSwitchMode": "switchdev"},
            "'deviceType: vfio-pci' conflicts with 'virtio'", id="ConflictDeviceTypeAndVirtioVdpaType",
        ),
        pytest.param(
            {"deviceType": "vfio-pci", "nicSelector": {"vendor": "15b3", "deviceID": "101d"}, "numVfs": 1,
             "vdpaType": "vhost", "eSwitchMode": "switchdev"},
            "'deviceType: vfio-pci' conflicts with 'vhost'", id="ConflictDeviceTypeAndVhostVdpaType",
        ),
        pytest.param(
            {"nicSelector": {"vendor": "15b3", "deviceID": "101d"}, "numVfs": 1, "vdpaType": "virtio"},
            "vdpa requires the device to be configured in switchdev mode", id="VirtioVdpaMustSpecifySwitchDev",
        ),
        pytest.param(
            {"nicSelector": {"vendor": "15b3", "deviceID": "101d"}, "numVfs": 1, "vdpaType": "vhost"},
            "vdpa requires the device to be configured in switchdev mode", id="VhostVdpaMustSpecifySwitchDev",
        ),
        pytest.param(
            {"nicSelector": {}, "numVfs": 0, "priority": 0},
            "at least one of these parameters (vendor, deviceID, pfNames, rootDevices or netFilter) has to be "
            "defined in nicSelector in CR ",
            id="InvalidNicSelector",
        ),
        pytest.param(
            {"linkType": "ib", "isRdma": True, "eSwitchMode": "switchdev", "nicSelector": {"pfNames": ["ens803f1"]},
             "numVfs": 0, "priority": 0},
            "'eSwitchMode: switchdev' can be used only with ethernet links", id="InvalidLinkTypeForSwitchdev",
        ),
        pytest.param(
            {"bridge": {"ovs": {}}, "nicSelector": {"pfNames": ["ens803f1"]}, "numVfs": 0, "priority": 0},
            "software bridge management requires the device to be configured in switchdev mode",
            id="BridgeConfigWithoutSwitchdev",
        ),
        pytest.param(
            {"bridge": {"ovs": {}}, "eSwitchMode": "switchdev", "externallyManaged": True,
             "nicSelector": {"pfNames": ["ens803f1"]}, "numVfs": 0, "priority": 0},
            "software bridge management can't be used when the device externally managed",
            id="BridgeConfigWithExternallyManaged",
        ),
        pytest.param(
            {**NET_ONLY, "nicSelector": {"netFilter": NET, "vendor": "8086"}}, OTHER_SELECTORS,
            id="netFilter with vendor",
        ),
        pytest.param(
            {**NET_ONLY, "nicSelector": {"netFilter": NET, "deviceID": "158b"}}, OTHER_SELECTORS,
            id="netFilter with deviceID",
        ),
        pytest.param(
            {**NET_ONLY, "nicSelector": {"netFilter": NET, "pfNames": ["ens803f0"]}}, OTHER_SELECTORS,
            id="netFilter with pfNames",
        ),
        pytest.param(
            {**NET_ONLY, "nicSelector": {"netFilter": NET, "rootDevices": ["0000:86:00.0"]}}, OTHER_SELECTORS,
            id="netFilter with rootDevices",
        ),
        pytest.param(
            {**NET_ONLY, "eSwitchMode": "switchdev"}, "eSwitchMode is not supported when netFilter is specified",
            id="NetFilterAndEswitchMode",
        ),
        pytest.param(
            {**NET_ONLY, "bridge": {"ovs": {}}}, "bridge configuration is not supported when netFilter is specified",
            id="NetFilterAndBridge",
        ),
        pytest.param(
            {**NET_ONLY, "linkType": "ib"},
            "linkType \"ib\" is not allowed when netFilter is specified, only 'eth' or 'ETH' are supported",
            id="netFilter with linkType ib",
        ),
        pytest.param(
            {**NET_ONLY, "linkType": "IB"},
            "linkType \"IB\" is not allowed when netFilter is specified, only 'eth' or 'ETH' are supported",
            id="netFilter with linkType IB",
        ),
        pytest.param({**NET_ONLY, "linkType": "eth"}, None, id="netFilter with linkType eth"),
        pytest.param({**NET_ONLY, "linkType": "ETH"}, None, id="netFilter with linkType ETH"),
        pytest.param(NET_ONLY, None, id="netFilter with empty linkType / NetFilterOnly"),
    ],
)
def test_static_rules(spec: dict[str, Any], error: str | None) -> None:
    """Upstream TestStaticValidateSriovNetworkNodePolicy* cases."""
    problems = static_policy_problems(static_policy(**spec), UPSTREAM)
    if error is None:
        assert problems == ()
    else:
        assert has_message(problems, error), messages(problems)
        assert not validate(static_policy(**spec), Operation.CREATE, None, UPSTREAM).allowed


def test_static_invalid_vendor_in_dev_mode() -> None:
    """Upstream TestStaticValidateSriovNetworkNodePolicyWithInvalidVendorDevMode."""
    pol = static_policy(nicSelector={"vendor": "8087"})
    assert static_policy_problems(pol, Settings(nics=UPSTREAM_NICS, dev_mode=True)) == ()


@pytest.mark.parametrize(
    ("entry", "num_vfs", "error"),
    [
        ("ens1f0#0-1#2", 4, "failed to parse ens1f0#0-1#2 PF name in nicSelector, probably incorrect separator "
                            "character usage"),
        ("ens1f0#3", 4, "failed to parse ens1f0#3 PF name nicSelector, probably incorrect range character usage"),
        ("ens1f0#", 4, "failed to parse ens1f0# PF name nicSelector, probably incorrect range character usage"),
        ("ens1f0#0-1-2", 4, "failed to parse ens1f0#0-1-2 PF name nicSelector, probably incorrect range "
                            "character usage"),
        ("ens1f0#-1-2", 4, "probably incorrect range character usage"),
        ("ens1f0#a-2", 4, "failed to parse ens1f0#a-2 PF name nicSelector, start range is incorrect"),
        ("ens1f0# 0-2", 4, "start range is incorrect"),
        ("ens1f0#0-b", 4, "failed to parse ens1f0#0-b PF name nicSelector, end range is incorrect"),
        ("ens1f0#0-99999999999999999999", 4, "end range is incorrect"),
        ("ens1f0#3-1", 4, "failed to parse ens1f0#3-1 PF name nicSelector, end range shall not be smaller than "
                          "start range"),
        ("ens1f0#0-2", 2, "failed to parse ens1f0#0-2 PF name nicSelector, end range exceeds the maximum VF "
                          "index "),
        ("ens1f0#0-1", 2, None),
        ("ens1f0#+0-1", 2, None),
        ("ens1f0", 2, None),
    ],
)
def test_static_pf_name_ranges(entry: str, num_vfs: int, error: str | None) -> None:
    problems = static_policy_problems(static_policy(nicSelector={"pfNames": [entry]}, numVfs=num_vfs))
    if error is None:
        assert problems == ()
    else:
        assert len(problems) == 1 and error in str(problems[0]), messages(problems)
        assert problems[0].field == "spec.nicSelector.pfNames[0]"


def test_static_pf_names_stop_at_the_first_bad_entry() -> None:
    problems = static_policy_problems(
        static_policy(nicSelector={"pfNames": ["ok#0-1", "bad#3", "worse#x-1"]}, numVfs=2)
    )
    assert [p.field for p in problems] == ["spec.nicSelector.pfNames[1]"]


def test_static_reports_every_independent_rule() -> None:
    pol = static_policy(
        resourceName="bad name", nicSelector={"vendor": "dead", "pfNames": ["ens1f0#0-9"]}, numVfs=2,
        deviceType="vfio-pci", isRdma=True, vdpaType="vhost",
    )
    problems = static_policy_problems(pol, UPSTREAM)
    assert [p.field for p in problems] == [
        "spec.resourceName", "spec.nicSelector.vendor", "spec.nicSelector.pfNames[0]", "spec.isRdma",
        "spec.deviceType", "spec.eSwitchMode",
    ]
    verdict = validate(pol, Operation.CREATE, ClusterView(), UPSTREAM)
    assert verdict.errors == problems  # dynamic rules only run once the static ones pass


def test_static_vdpa_without_device_type_conflicts() -> None:
    """Upstream compares deviceType with the literal "netdevice": absent (no CRD defaulting) conflicts."""
    pol = policy("p", NS, resourceName="r", numVfs=1, nicSelector={"vendor": "15b3"}, vdpaType="virtio",
                 eSwitchMode="switchdev")
    problems = static_policy_problems(pol)
    assert messages(problems) == [
        "'deviceType: ' conflicts with 'virtio'; Set 'deviceType' to (string)'netdevice' Or Remove 'vdpaType' "
        "(spec.deviceType: set deviceType: netdevice or remove vdpaType)"
    ]


def test_problem_str_keeps_the_upstream_message_first() -> None:
    problem = Problem("spec.eSwitchMode", "vdpa requires the device to be configured in switchdev mode",
                      "set eSwitchMode: switchdev")
    assert str(problem) == (
        "vdpa requires the device to be configured in switchdev mode (spec.eSwitchMode: set eSwitchMode: switchdev)"
    )


# --- whole-policy validation against a cluster (dynamicValidateSriovNetworkNodePolicy) ------------------------

SEED: dict[str, Any] = scenario.seed_policy_raw()


def seed(**changes: Any) -> dict[str, Any]:
    raw = copy.deepcopy(SEED)
    for key, value in changes.items():
        if value is None:
            raw["spec"].pop(key, None)
        else:
            raw["spec"][key] = value
    return raw


def as_policy(raw: dict[str, Any], name: str | None = None) -> SriovNetworkNodePolicy:
    raw = copy.deepcopy(raw)
    if name is not None:
        raw["metadata"]["name"] = name
    return SriovNetworkNodePolicy.model_validate(raw, by_name=False)


def cx6dx(name: str, pci: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name, "pciAddress": pci, "vendor": "15b3", "deviceID": "101d", "driver": "mlx5_core",
        "totalvfs": 8, "mtu": 1500, "linkType": "ETH", "eSwitchMode": "legacy", **extra,
    }


def mlx_cluster(*policies: SriovNetworkNodePolicy, nodes: int = 1, **pf0: Any) -> ClusterView:
    names = [f"worker-{i}" for i in range(nodes)]
    return ClusterView(
        nodes=tuple(node(n, CAPABLE) for n in names),
        node_states=tuple(
            node_state([cx6dx("ens1f0", "0000:65:00.0", **pf0), cx6dx("ens1f1", "0000:65:00.1")], name=n)
            for n in names
        ),
        policies=policies,
    )


def intel_cluster() -> ClusterView:
    return ClusterView(
        nodes=(node("worker-0", CAPABLE),),
        node_states=(node_state([intel_pf("ens2f0", "0000:3b:00.0", totalvfs=8)], name="worker-0"),),
    )


def test_seed_policy_is_admitted_statically_and_dynamically() -> None:
    obj = as_policy(SEED)
    assert static_policy_problems(obj) == ()
    static = admit(SEED, obj, Operation.CREATE, None)
    dynamic = admit(SEED, obj, Operation.CREATE, mlx_cluster())
    for verdict, stored in (static, dynamic):
        assert verdict.allowed, messages(verdict)
        assert verdict.warnings == ()
        assert list(verdict.patch) == [{"op": "add", "path": "/spec/isRdma", "value": False}]
        assert isinstance(stored, SriovNetworkNodePolicy)
        assert stored.to_dict()["spec"]["isRdma"] is False


def test_vdpa_with_vfio_pci_is_rejected() -> None:
    raw = seed(deviceType="vfio-pci")
    verdict, _ = admit(raw, as_policy(raw), Operation.CREATE, mlx_cluster())
    assert not verdict.allowed
    assert len(verdict.errors) == 1
    problem = verdict.errors[0]
    assert problem.message == (
        "'deviceType: vfio-pci' conflicts with 'virtio'; Set 'deviceType' to (string)'netdevice' Or Remove "
        "'vdpaType'"
    )
    assert problem.field == "spec.deviceType"
    assert problem.fix == "set deviceType: netdevice or remove vdpaType"


def test_vdpa_needs_switchdev() -> None:
    raw = seed(eSwitchMode=None)
    problem = validate(as_policy(raw), Operation.CREATE, mlx_cluster()).errors[0]
    assert (problem.field, problem.fix) == ("spec.eSwitchMode", "set eSwitchMode: switchdev")


def test_vdpa_on_intel_is_rejected_per_pf() -> None:
    raw = seed(nicSelector={"vendor": "8086"}, numVfs=2)
    verdict = validate(as_policy(raw), Operation.CREATE, intel_cluster())
    assert not verdict.allowed
    problem = verdict.errors[0]
    assert problem.message == "vendor(8086) in CR vdpa-policy not supported for vdpa interface(ens2f0)"
    assert problem.field == "spec.nicSelector"
    assert "NVIDIA/Mellanox" in problem.fix and "15b3" in problem.fix


def pf_policy(name: str, *pf_names: str, num_vfs: int = 4) -> SriovNetworkNodePolicy:
    return as_policy(seed(nicSelector={"pfNames": list(pf_names)}, numVfs=num_vfs, resourceName=name), name)


@pytest.mark.parametrize(
    ("mine", "theirs", "allowed"),
    [
        pytest.param("ens1f0", "ens1f0", False, id="unranged+unranged"),
        pytest.param("ens1f0#0-1", "ens1f0", True, id="ranged+unranged (quirk)"),
        pytest.param("ens1f0", "ens1f0#0-1", True, id="unranged+ranged (quirk)"),
        pytest.param("ens1f0#0-1", "ens1f0#2-3", True, id="disjoint"),
        pytest.param("ens1f0#0-2", "ens1f0#2-3", False, id="overlap"),
        pytest.param("ens1f0", "ens1f1", True, id="other-pf"),
    ],
)
def test_two_policies_on_one_pf(mine: str, theirs: str, allowed: bool) -> None:
    existing = pf_policy("other", theirs)
    verdict = validate(pf_policy("mine", mine), Operation.CREATE, mlx_cluster(existing))
    assert verdict.allowed is allowed, messages(verdict)
    if not allowed:
        assert verdict.errors[0].message == f"VF index range in {mine} is overlapped with existing policy other"
        assert verdict.errors[0].field == "spec.nicSelector.pfNames[0]"


def test_conflicts_use_alt_names_from_the_node_state() -> None:
    existing = pf_policy("other", "enp101s0f0np0")
    cluster = mlx_cluster(existing, altNames=["enp101s0f0np0"])
    verdict = validate(pf_policy("mine", "ens1f0"), Operation.CREATE, cluster)
    assert has_message(verdict, "VF index range in ens1f0 is overlapped with existing policy other")


def test_update_is_not_compared_with_itself() -> None:
    mine = pf_policy("mine", "ens1f0")
    assert validate(mine, Operation.UPDATE, mlx_cluster(mine)).allowed


def test_same_named_policy_in_another_namespace_is_skipped_too() -> None:
    """Upstream skips listed policies by name only."""
    existing = pf_policy("mine", "ens1f0")
    outside = as_policy({**seed(nicSelector={"pfNames": ["ens1f0"]}, numVfs=4),
                         "metadata": {"name": "mine", "namespace": "apps"}})
    verdict = validate(outside, Operation.CREATE, mlx_cluster(existing))
    assert verdict.allowed and verdict.warnings


def test_only_policies_in_the_operator_namespace_conflict() -> None:
    elsewhere = as_policy({**seed(nicSelector={"pfNames": ["ens1f0"]}, numVfs=4),
                           "metadata": {"name": "other", "namespace": "apps"}})
    assert validate(pf_policy("mine", "ens1f0"), Operation.CREATE, mlx_cluster(elsewhere)).allowed


def test_policies_on_other_nodes_do_not_conflict() -> None:
    existing = as_policy(seed(nicSelector={"pfNames": ["ens1f0"]}, numVfs=4, nodeSelector={"pool": "b"}), "other")
    assert validate(pf_policy("mine", "ens1f0"), Operation.CREATE, mlx_cluster(existing)).allowed


def test_root_device_and_exclude_topology_conflicts_in_a_cluster() -> None:
    existing = as_policy(seed(excludeTopology=True), "other")
    verdict = validate(as_policy(SEED), Operation.CREATE, mlx_cluster(existing))
    assert messages(verdict) and [p.message for p in verdict.errors] == [
        "root device 0000:65:00.0 is overlapped with existing policy other",
        "excludeTopology[false] field conflicts with policy [other].ExcludeTopology[true] as they target the "
        "same resource[mlxnics]",
    ]


@pytest.mark.parametrize(("num_vfs", "allowed"), [(128, True), (129, False)])
def test_mellanox_vf_limit_ignores_totalvfs(num_vfs: int, allowed: bool) -> None:
    raw = seed(numVfs=num_vfs)
    verdict = validate(as_policy(raw), Operation.CREATE, mlx_cluster())
    assert verdict.allowed is allowed
    if not allowed:
        assert [p.message for p in verdict.errors] == [
            "numVfs(129) in CR vdpa-policy exceed the maximum allowed value(128) interface(ens1f0)",
            "numVfs(129) in CR vdpa-policy exceed the maximum allowed value(128) interface(ens1f1)",
        ]


@pytest.mark.parametrize(("num_vfs", "allowed"), [(8, True), (9, False)])
def test_intel_vf_limit_is_totalvfs(num_vfs: int, allowed: bool) -> None:
    pol = as_policy(seed(nicSelector={"vendor": "8086"}, numVfs=num_vfs, vdpaType=None, eSwitchMode=None))
    verdict = validate(pol, Operation.CREATE, intel_cluster())
    assert verdict.allowed is allowed
    if not allowed:
        assert verdict.errors[0].message == (
            "numVfs(9) in CR vdpa-policy exceed the maximum allowed value(8) interface(ens2f0)"
        )


def test_zero_vfs_is_rejected_once_for_all_pfs_and_nodes() -> None:
    verdict = validate(as_policy(seed(numVfs=0)), Operation.CREATE, mlx_cluster(nodes=3))
    assert [p.message for p in verdict.errors] == ["numVfs(0) in CR vdpa-policy is not allowed"]


def test_conflicts_on_many_nodes_are_reported_once() -> None:
    existing = pf_policy("other", "ens1f0")
    verdict = validate(pf_policy("mine", "ens1f0"), Operation.CREATE, mlx_cluster(existing, nodes=3))
    assert len(verdict.errors) == 1


@pytest.mark.parametrize(
    ("entry", "num_vfs", "error"),
    [
        ("ens1f0#3", 4, "failed to parse ens1f0#3 PF name nicSelector, probably incorrect range character usage"),
        ("ens1f0#0-2", 2, "failed to parse ens1f0#0-2 PF name nicSelector, end range exceeds the maximum VF index "),
    ],
)
def test_vf_range_syntax_in_a_policy(entry: str, num_vfs: int, error: str) -> None:
    raw = seed(nicSelector={"pfNames": [entry]}, numVfs=num_vfs)
    verdict, _ = admit(raw, as_policy(raw), Operation.CREATE, mlx_cluster())
    assert not verdict.allowed
    assert [p.message for p in verdict.errors] == [error]


def test_no_node_selected() -> None:
    raw = seed(nodeSelector={"pool": "missing"})
    verdict = validate(as_policy(raw), Operation.CREATE, mlx_cluster())
    assert len(verdict.errors) == 1
    assert str(verdict.errors[0]).startswith("no matched node is selected by the nodeSelector in CR vdpa-policy")
    assert verdict.errors[0].field == "spec.nodeSelector"


@pytest.mark.parametrize(
    "cluster",
    [
        pytest.param(ClusterView(nodes=(node("worker-0", CAPABLE),)), id="node-without-state"),
        pytest.param(
            ClusterView(nodes=(node("worker-0", CAPABLE),), node_states=(node_state([], name="worker-0"),)),
            id="state-without-interfaces",
        ),
        pytest.param(
            ClusterView(
                nodes=(node("worker-0", CAPABLE),),
                node_states=(SriovNetworkNodeState.model_validate(
                    {"metadata": {"name": "worker-0", "namespace": "elsewhere"},
                     "status": {"interfaces": [cx6dx("ens1f0", "0000:65:00.0")]}}, by_name=False),),
            ),
            id="state-in-another-namespace",
        ),
        pytest.param(mlx_cluster(vendor="15b3", deviceID="a2d6"), id="selector-device-differs"),
    ],
)
def test_no_supported_nic_selected(cluster: ClusterView) -> None:
    raw = seed(nicSelector={"vendor": "15b3", "deviceID": "101d", "rootDevices": ["0000:65:00.0"]})
    verdict = validate(as_policy(raw), Operation.CREATE, cluster)
    assert not verdict.allowed
    assert [p.message for p in verdict.errors] == ["no supported NIC is selected by the nicSelector in CR vdpa-policy"]


def test_state_without_namespace_counts_as_the_operator_namespace() -> None:
    state = SriovNetworkNodeState.model_validate(
        {"metadata": {"name": "worker-0"}, "status": {"interfaces": [cx6dx("ens1f0", "0000:65:00.0")]}},
        by_name=False,
    )
    cluster = ClusterView(nodes=(node("worker-0", CAPABLE),), node_states=(state,))
    assert validate(as_policy(seed(nicSelector={"pfNames": ["ens1f0"]})), Operation.CREATE, cluster).allowed


def test_dev_mode_skips_vendor_checks_but_not_nic_selection() -> None:
    """An unlisted NIC (ConnectX-6 Dx missing from the table) passes static checks in dev mode only, and is
    still never selected, because selection always requires a supported model."""
    no_cx6 = SupportedNics.parse(["8086 158b 154c"])
    obj = as_policy(SEED)
    strict = validate(obj, Operation.CREATE, mlx_cluster(), Settings(nics=no_cx6))
    assert [p.message for p in strict.errors] == ["vendor 15b3 is not supported"]
    dev = validate(obj, Operation.CREATE, mlx_cluster(), Settings(nics=no_cx6, dev_mode=True))
    assert not dev.allowed
    assert [p.message for p in dev.errors] == ["no supported NIC is selected by the nicSelector in CR vdpa-policy"]
    assert validate(obj, Operation.CREATE, None, Settings(nics=no_cx6, dev_mode=True)).allowed


def test_externally_managed_rules_in_a_cluster() -> None:
    raw = seed(externallyManaged=True, numVfs=4, mtu=9000, linkType="ib", eSwitchMode="switchdev")
    cluster = mlx_cluster(numVfs=2)
    verdict = validate(as_policy(raw), Operation.CREATE, cluster)
    fields = [p.field for p in verdict.errors]
    assert "spec.linkType" in fields  # static: switchdev needs ethernet
    ok = seed(externallyManaged=True, numVfs=2, nicSelector={"rootDevices": ["0000:65:00.0"]})
    assert validate(as_policy(ok), Operation.CREATE, cluster).allowed
    too_many = seed(externallyManaged=True, numVfs=4, mtu=9000, nicSelector={"rootDevices": ["0000:65:00.0"]})
    assert [p.field for p in validate(as_policy(too_many), Operation.CREATE, cluster).errors] == [
        "spec.numVfs", "spec.mtu",
    ]


def test_zero_vfs_is_allowed_for_a_policy_named_default() -> None:
    """Upstream skips the numVfs(0) rule for the name "default" (checked when it lives outside the namespace)."""
    raw = seed(numVfs=0)
    raw["metadata"] = {"name": "default", "namespace": "apps"}
    verdict = validate(as_policy(raw), Operation.CREATE, mlx_cluster())
    assert verdict.allowed and verdict.warnings
