"""NetworkAttachmentDefinition rendering and the network controller's decisions.

Expected outputs are upstream's data: the golden files of `api/v1/helper_test.go` (copied verbatim into
golden/), the CNI configurations its controller tests build (`generateExpectedNetConfig` and friends in
`controllers/*network_controller_test.go`), and the condition texts of `generic_network_controller.go`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from vdpa_operator.api import crd
from vdpa_operator.api.golang import marshal
from vdpa_operator.api.kube import NetworkAttachmentDefinition
from vdpa_operator.api.meta import Condition
from vdpa_operator.api.models import OVSNetwork, SriovIBNetwork, SriovNetwork
from vdpa_operator.render.networks import (
    LAST_NETWORK_NAMESPACE,
    NETATTDEF_FINALIZER,
    OWNER_REF_ANNOTATION,
    REASON_NAD_INVALID,
    REASON_NAMESPACE_NOT_FOUND,
    REASON_NETWORK_READY,
    RESOURCE_NAME_ANNOTATION,
    AnnotateNetwork,
    CreateAttachment,
    DeleteAttachment,
    Network,
    NetworkRenderError,
    ReadyCondition,
    ReplaceAttachment,
    SetFinalizers,
    SetReadyCondition,
    apply_ready_condition,
    go_json_indent,
    plan_network,
    render_cni_config,
    render_network_attachment,
    render_network_attachment_raw,
    write_failed_condition,
)

GOLDEN = Path(__file__).parent / "golden"
OPERATOR_NS = "openshift-sriov-network-operator"
PREFIX = "openshift.io"
HOST_LOCAL = (
    '{"type":"host-local","subnet":"10.56.217.0/24","rangeStart":"10.56.217.171","rangeEnd":"10.56.217.181",'
    '"routes":[{"dst":"0.0.0.0/0"}],"gateway":"10.56.217.1"}'
)
VRF_META_PLUGINS = '\n\t\t\t\t\t{\n\t\t\t\t\t\t"type": "vrf",\n\t\t\t\t\t\t"vrfname": "blue"\n\t\t\t\t\t}\n\t\t\t\t\t'
"""Upstream's Go raw string literal, with the test file's tab indentation."""


def network(kind: type[Network], name: str, namespace: str, *, stored: bool = True, **spec: Any) -> Network:
    """A network as the API server stores it (`stored`: with the CRD defaults, e.g. logLevel "info")."""
    raw: dict[str, Any] = {
        "apiVersion": kind.API_VERSION, "kind": kind.KIND,
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}", "generation": 3},
        "spec": {"resourceName": "resource_1", **spec},
    }
    return kind.model_validate(crd.crd_defaults(kind, raw) if stored else raw, by_name=False)


def go_encoder_indent(nad: NetworkAttachmentDefinition) -> str:
    """What upstream's golden test writes: `json.NewEncoder` + `SetIndent("", "  ")` of the unstructured object."""
    return go_json_indent(marshal(nad.to_dict(), sort_keys=True), "  ") + "\n"


# --- upstream's golden files ---------------------------------------------------------------------------------

GOLDEN_CASES = {
    "TestRendering/simple": network(
        SriovNetwork, "test", "ns", stored=False, networkNamespace="testnamespace", resourceName="testresource"
    ),
    "TestRendering/chained": network(
        SriovNetwork, "test", "ns", stored=False, networkNamespace="testnamespace", resourceName="testresource",
        metaPlugins=VRF_META_PLUGINS,
    ),
    "TestIBRendering/simpleib": network(
        SriovIBNetwork, "test", "ns", stored=False, networkNamespace="testnamespace", resourceName="testresource",
        capabilities="foo",
    ),
    "TestOVSRendering/simpleovs": network(
        OVSNetwork, "test", "ns", stored=False, networkNamespace="testnamespace", resourceName="testresource"
    ),
    "TestOVSRendering/chained": network(
        OVSNetwork, "test", "ns", stored=False, networkNamespace="testnamespace", resourceName="testresource",
        mtu=1500, metaPlugins=VRF_META_PLUGINS,
    ),
    "TestOVSRendering/complexconf": network(
        OVSNetwork, "test", "ns", stored=False, networkNamespace="testnamespace", resourceName="testresource",
        capabilities='{"foo": "bar"}', bridge="test", vlan=100, mtu=1500,
        trunk=[{"id": 120}, {"minID": 500, "maxID": 550}], interfaceType="netdev", ipam='{"type": "foo"}',
    ),
}


@pytest.mark.parametrize("case", GOLDEN_CASES, ids=str)
def test_render_matches_upstream_golden_file_byte_for_byte(case: str) -> None:
    # Upstream's tests run with RESOURCE_PREFIX unset, hence "/testresource".
    nad = render_network_attachment_raw(GOLDEN_CASES[case], resource_prefix="")
    assert go_encoder_indent(nad) == (GOLDEN / f"{case}.golden").read_text()


def test_every_upstream_golden_file_has_a_case() -> None:
    files = {str(p.relative_to(GOLDEN).with_suffix("")) for p in GOLDEN.rglob("*.golden")}
    assert files == set(GOLDEN_CASES)


# --- upstream's controller tests: the config as written to the cluster ----------------------------------------

def expected(name: str, cni_type: str, keys: str, ipam: str = "{}") -> str:
    """The string upstream's controller tests format, e.g. `{ "cniVersion":"1.0.0", "name":"%s","type":"sriov",…`."""
    return '{ "cniVersion":"1.0.0", "name":"' + name + '","type":"' + cni_type + '",' + keys + '"ipam":' + ipam + " }"


DHCP = '{"type":"dhcp"}'
CONTROLLER_CASES: list[tuple[str, Network, str]] = [
    ("test-0", network(SriovNetwork, "test-0", OPERATOR_NS, ipam=HOST_LOCAL, vlan=100, vlanQoS=5, vlanProto="802.1ad"),
     expected("test-0", "sriov", '"vlan":100,"vlanQoS":5,"vlanProto": "802.1ad","logLevel":"info",', HOST_LOCAL)),
    ("test-1", network(SriovNetwork, "test-1", OPERATOR_NS, ipam=HOST_LOCAL, networkNamespace="default"),
     expected("test-1", "sriov", '"vlan":0,"vlanQoS":0,"logLevel":"info",', HOST_LOCAL)),
    ("test-2", network(SriovNetwork, "test-2", OPERATOR_NS, ipam=HOST_LOCAL, spoofChk="on"),
     expected("test-2", "sriov", '"vlan":0,"spoofchk":"on","vlanQoS":0,"logLevel":"info",', HOST_LOCAL)),
    ("test-3", network(SriovNetwork, "test-3", OPERATOR_NS, ipam=HOST_LOCAL, trust="on"),
     expected("test-3", "sriov", '"vlan":0,"trust":"on","vlanQoS":0,"logLevel":"info",', HOST_LOCAL)),
    ("test-5", network(SriovNetwork, "test-5", OPERATOR_NS, ipam=HOST_LOCAL, logLevel="debug", logFile="/tmp/tmpfile"),
     expected("test-5", "sriov", '"vlan":0,"vlanQoS":0,"logLevel":"debug","logFile":"/tmp/tmpfile",', HOST_LOCAL)),
    ("new-0", network(SriovNetwork, "new-0", OPERATOR_NS, ipam=DHCP, vlan=200, vlanProto="802.1q"),
     expected("new-0", "sriov", '"vlan":200,"vlanQoS":0,"vlanProto": "802.1q","logLevel":"info",', DHCP)),
    ("regenerate", network(SriovNetwork, "test-5", OPERATOR_NS, ipam=DHCP, vlan=200, networkNamespace="default"),
     expected("test-5", "sriov", '"vlan":200,"vlanQoS":0,"logLevel":"info",', DHCP)),
    ("ib-test-1", network(SriovIBNetwork, "ib-test-1", OPERATOR_NS, ipam=HOST_LOCAL, networkNamespace="default"),
     expected("ib-test-1", "ib-sriov", "", HOST_LOCAL)),
    ("ib-test-2", network(SriovIBNetwork, "ib-test-2", OPERATOR_NS, networkNamespace="default"),
     expected("ib-test-2", "ib-sriov", "")),
    ("ib-test-3", network(SriovIBNetwork, "ib-test-3", OPERATOR_NS, networkNamespace="default", linkState="enable"),
     expected("ib-test-3", "ib-sriov", '"link_state":"enable",')),
    ("ib-new-0", network(SriovIBNetwork, "ib-new-0", OPERATOR_NS, ipam=DHCP),
     expected("ib-new-0", "ib-sriov", "", DHCP)),
]


@pytest.mark.parametrize(("label", "net", "expected"), CONTROLLER_CASES, ids=[c[0] for c in CONTROLLER_CASES])
def test_written_config_is_upstream_controller_tests_expectation(label: str, net: Network, expected: str) -> None:
    nad = render_network_attachment(net, PREFIX)
    # Upstream compares with formatJSON(expected); for plain JSON like this Python's indent=4 is the same text.
    assert nad.spec.config == json.dumps(json.loads(expected), indent=4)
    assert nad.metadata.annotations[RESOURCE_NAME_ANNOTATION] == "openshift.io/resource_1"
    assert nad.namespace == (net.spec.network_namespace or OPERATOR_NS)


def test_controller_tests_substrings_for_ovs_vlan_and_min_tx_rate() -> None:
    ovs = render_network_attachment(network(OVSNetwork, "test", OPERATOR_NS, vlan=200), PREFIX)
    assert '"vlan": 200' in ovs.spec.config
    sriov = render_network_attachment(network(SriovNetwork, "net2", OPERATOR_NS, minTxRate=42), PREFIX)
    assert '"min_tx_rate": 42' in sriov.spec.config


# --- the template's key order and conditions ------------------------------------------------------------------


def test_sriov_keys_follow_the_template_order_when_all_are_set() -> None:
    net = network(
        SriovNetwork, "all", "ns", vlan=10, spoofChk="off", trust="on", vlanQoS=3, vlanProto="802.1ad",
        minTxRate=0, maxTxRate=100, capabilities='{"mac": true}', linkState="disable", logLevel="debug",
        logFile="/tmp/x.log", ipam='{"type": "dhcp"}',
    )
    assert render_cni_config(net) == (
        '{ "cniVersion":"1.0.0", "name":"all","type":"sriov","vlan":10,"spoofchk":"off","trust":"on","vlanQoS":3,'
        '"vlanProto":"802.1ad","min_tx_rate":0,"max_tx_rate":100,"capabilities":{"mac": true},'
        '"link_state":"disable","logLevel":"debug","logFile":"/tmp/x.log","ipam":{"type":"dhcp"} }'
    )


def test_unset_optional_sriov_fields_are_left_out_but_zero_rates_are_kept() -> None:
    bare = render_cni_config(network(SriovNetwork, "bare", "ns", stored=False))
    assert bare == '{ "cniVersion":"1.0.0", "name":"bare","type":"sriov","vlan":0,"vlanQoS":0,"ipam":{} }'
    empty_log_level = render_cni_config(network(SriovNetwork, "e", "ns", logLevel=""))
    assert "logLevel" not in empty_log_level
    zero_rates = render_cni_config(network(SriovNetwork, "z", "ns", stored=False, minTxRate=0, maxTxRate=0))
    assert '"min_tx_rate":0,"max_tx_rate":0,' in zero_rates


def test_ib_network_has_no_sriov_keys_and_ovs_omits_zero_values() -> None:
    ib = render_cni_config(network(SriovIBNetwork, "ib", "ns", capabilities='{"infinibandGUID": true}',
                                   linkState="auto", metaPlugins='{"type":"tuning"}'))
    assert ib == (
        '{ "cniVersion":"1.0.0", "name":"ib","plugins": [ {"type":"ib-sriov","capabilities":{"infinibandGUID": true},'
        '"link_state":"auto","ipam":{} }, {"type":"tuning"} ] }'
    )
    ovs = render_cni_config(network(OVSNetwork, "o", "ns", vlan=0, mtu=0, trunk=[{"id": 0}]))
    assert ovs == '{ "cniVersion":"1.0.0", "name":"o","type":"ovs","trunk":[{"id":0}],"ipam":{} }'


def test_ipam_loses_every_whitespace_character_even_inside_strings() -> None:
    net = network(SriovIBNetwork, "w", "ns", ipam='{\n\t"type": "host local",\u00a0"x":\u3000 1 }')
    assert render_cni_config(net).endswith('"ipam":{"type":"hostlocal","x":1} }')


# --- the YAML stage -------------------------------------------------------------------------------------------


def test_yaml_folding_turns_breaks_into_spaces_and_blank_lines_into_newlines() -> None:
    net = network(SriovIBNetwork, "f", "ns", capabilities='{"a":\r\n   1,\n\n\n"b": 2}  ')
    assert '"capabilities":{"a": 1,\n\n"b": 2}  ,' in render_cni_config(net)


def test_two_single_quotes_are_one_literal_quote() -> None:
    net = network(SriovIBNetwork, "q", "ns", capabilities='{"name": "it\'\'s"}')
    assert '"capabilities":{"name": "it\'s"},' in render_cni_config(net)
    assert '"name": "it\'s"' in render_network_attachment(net, PREFIX).spec.config


@pytest.mark.parametrize(("spec", "where", "words"), [
    ({"capabilities": "{\"name\": \"it's\"}"}, "spec.capabilities", "single quote"),
    ({"metaPlugins": '{"type":"tuning"}\n---\n{"type":"vrf"}'}, "spec.metaPlugins", "document marker"),
    ({"metaPlugins": '{"type":"tuning",\n... "x": 1}'}, "spec.metaPlugins", "document marker"),
    ({"logFile": "/tmp/a\x01b"}, "spec.logFile", "control character U+0001"),
])
def test_text_the_yaml_stage_cannot_carry_names_the_field(spec: dict[str, Any], where: str, words: str) -> None:
    with pytest.raises(NetworkRenderError) as caught:
        render_cni_config(network(SriovNetwork, "bad", "ns", **spec))
    assert caught.value.field == where
    assert words in str(caught.value)


def test_indented_marker_like_lines_are_fine() -> None:
    net = network(SriovIBNetwork, "ok", "ns", metaPlugins='{"type":"tuning"}\n ---x\n...x')
    assert render_cni_config(net).endswith('"ipam":{} }, {"type":"tuning"} ---x ...x ] }')


# --- invalid JSON ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "spec", "where"), [
    (SriovIBNetwork, {"capabilities": "foo"}, "spec.capabilities"),
    (SriovNetwork, {"ipam": '{"type":"dhcp"'}, "spec.ipam"),
    (SriovNetwork, {"metaPlugins": '{"type":"tuning"},'}, "spec.metaPlugins"),
    (SriovNetwork, {"logFile": 'C:\\log'}, "spec.logFile"),
    (OVSNetwork, {"bridge": 'br"0'}, "spec.bridge"),
    (OVSNetwork, {"interfaceType": "a\\"}, "spec.interfaceType"),
    (SriovNetwork, {"capabilities": "NaN"}, "spec.capabilities"),
])
def test_config_that_is_not_json_is_an_error_naming_the_field(
    kind: type[Network], spec: dict[str, Any], where: str
) -> None:
    net = network(kind, "bad", "ns", **spec)
    render_cni_config(net)  # upstream's RenderNetAttDef itself accepts it (see the simpleib golden file)
    with pytest.raises(NetworkRenderError) as caught:
        render_network_attachment(net, PREFIX)
    assert caught.value.field == where
    assert "is not valid JSON" in str(caught.value)


def test_fields_judged_in_context_as_upstream_does() -> None:
    # Not JSON on its own, but the assembled configuration is: upstream writes it, so do we.
    net = network(SriovNetwork, "ctx", "ns", capabilities='{"mac": true}, "extra": 1')
    assert '"extra": 1,' in render_network_attachment(net, PREFIX).spec.config


# --- Go's json.Indent -----------------------------------------------------------------------------------------


def test_go_json_indent_keeps_tokens_verbatim() -> None:
    source = ' { "a" : [ ], "b":{ },"c":[1.50, -0.0, 1E3,"x y\\"z\\u00e9", true,null], "a": "dup" }\n '
    assert go_json_indent(source, "    ") == (
        '{\n    "a": [],\n    "b": {},\n    "c": [\n        1.50,\n        -0.0,\n        1E3,\n'
        '        "x y\\"z\\u00e9",\n        true,\n        null\n    ],\n    "a": "dup"\n}\n '
    )


# --- metadata -------------------------------------------------------------------------------------------------


def test_same_namespace_gets_an_owner_reference_and_cross_namespace_does_not() -> None:
    local = render_network_attachment(network(SriovNetwork, "blue", "ns-blue", resourceName="resource_x"), PREFIX)
    assert local.namespace == "ns-blue"
    assert [r.to_dict() for r in local.metadata.owner_references] == [{
        "apiVersion": "sriovnetwork.openshift.io/v1", "kind": "SriovNetwork", "name": "blue", "uid": "uid-blue",
    }]
    assert local.metadata.annotations == {
        RESOURCE_NAME_ANNOTATION: "openshift.io/resource_x",
        OWNER_REF_ANNOTATION: "SriovNetwork.sriovnetwork.openshift.io/ns-blue/blue",
    }
    remote = render_network_attachment(network(OVSNetwork, "o", OPERATOR_NS, networkNamespace="default"), PREFIX)
    assert remote.namespace == "default" and remote.metadata.owner_references == []
    assert remote.metadata.annotations[OWNER_REF_ANNOTATION] == f"OVSNetwork.sriovnetwork.openshift.io/{OPERATOR_NS}/o"


# --- the controller's plan ------------------------------------------------------------------------------------


def plan(net: Network, *, live: NetworkAttachmentDefinition | None = None, ns_exists: bool = True) -> list[Any]:
    return list(plan_network(
        net, operator_namespace=OPERATOR_NS, resource_prefix=PREFIX, namespace_exists=ns_exists, live=live,
    ).steps)


def ready(status: bool, reason: str, message: str) -> SetReadyCondition:
    return SetReadyCondition(ReadyCondition(status, reason, message, 3))


READY = ready(True, REASON_NETWORK_READY, "NetworkAttachmentDefinition is provisioned and ready")


def test_new_network_in_operator_namespace_gets_finalizer_nad_annotation_and_ready() -> None:
    net = network(SriovNetwork, "blue", OPERATOR_NS, networkNamespace="default")
    nad = render_network_attachment(net, PREFIX)
    assert plan(net) == [
        SetFinalizers((NETATTDEF_FINALIZER,)),
        CreateAttachment(nad),
        AnnotateNetwork(LAST_NETWORK_NAMESPACE, "default"),
        READY,
    ]


def test_missing_target_namespace_waits_with_namespace_not_found() -> None:
    net = network(OVSNetwork, "wait", OPERATOR_NS, networkNamespace="ns-xxx")
    net.metadata.finalizers = [NETATTDEF_FINALIZER]
    assert plan(net, ns_exists=False) == [
        ready(False, REASON_NAMESPACE_NOT_FOUND, 'target namespace "ns-xxx" does not exist'),
    ]


def test_network_namespace_outside_the_operator_namespace_is_invalid_and_nothing_is_written() -> None:
    net = network(SriovNetwork, "app", "app-ns", networkNamespace="default")
    assert plan(net) == [ready(
        False, REASON_NAD_INVALID,
        f"spec.networkNamespace cannot be set when the resource is not in the operator namespace ({OPERATOR_NS})",
    )]


def test_network_in_its_own_namespace_needs_no_finalizer() -> None:
    net = network(SriovNetwork, "app", "app-ns")
    steps = plan(net)
    assert [type(s) for s in steps] == [CreateAttachment, AnnotateNetwork, SetReadyCondition]
    assert steps[0].nad.metadata.owner_references[0].uid == "uid-app"


def test_moved_network_deletes_the_old_nad_and_clears_the_annotation_first() -> None:
    net = network(SriovNetwork, "stale-ns-net", OPERATOR_NS, networkNamespace="default")
    net.metadata.finalizers = [NETATTDEF_FINALIZER]
    net.metadata.annotations = {LAST_NETWORK_NAMESPACE: "non-existent-namespace", "foo": "bar"}
    steps = plan(net)
    assert steps[:2] == [
        DeleteAttachment("non-existent-namespace", "stale-ns-net"), AnnotateNetwork(LAST_NETWORK_NAMESPACE, ""),
    ]
    assert [type(s) for s in steps[2:]] == [CreateAttachment, AnnotateNetwork, SetReadyCondition]


def test_an_empty_last_namespace_annotation_triggers_nothing() -> None:
    net = network(SriovNetwork, "n", OPERATOR_NS, networkNamespace="default")
    net.metadata.finalizers = [NETATTDEF_FINALIZER]
    net.metadata.annotations = {LAST_NETWORK_NAMESPACE: ""}
    live = render_network_attachment(net, PREFIX)
    assert plan(net, live=live) == [READY]


def test_unchanged_nad_is_left_alone_even_without_owner_reference() -> None:
    net = network(SriovNetwork, "same", "app-ns")
    live = render_network_attachment(net, PREFIX)
    live.metadata.owner_references = []
    live.metadata.labels = {"kept": "because nothing is written"}
    assert plan(net, live=live) == [READY]


def test_hand_made_nad_without_owner_annotation_is_taken_over_with_a_replace() -> None:
    net = network(SriovNetwork, "netuser", OPERATOR_NS, networkNamespace="default")
    net.metadata.finalizers = [NETATTDEF_FINALIZER]
    live = NetworkAttachmentDefinition.model_validate({
        "metadata": {"name": "netuser", "namespace": "default", "resourceVersion": "42"},
        "spec": {"config": "user created configuration, to be overridden"},
    })
    steps = plan(net, live=live)
    assert [type(s) for s in steps] == [ReplaceAttachment, SetReadyCondition]
    assert steps[0].nad.metadata.resource_version == "42"
    assert steps[0].nad.spec.config == render_network_attachment(net, PREFIX).spec.config


def test_extra_annotation_on_the_nad_is_a_difference() -> None:
    net = network(SriovNetwork, "x", "app-ns")
    live = render_network_attachment(net, PREFIX)
    live.metadata.annotations["someone"] = "else"
    assert [type(s) for s in plan(net, live=live)] == [ReplaceAttachment, SetReadyCondition]


def test_nad_owned_by_another_network_is_not_touched() -> None:
    first = network(SriovNetwork, "net1", OPERATOR_NS, networkNamespace="default")
    second = network(SriovIBNetwork, "net1", OPERATOR_NS, networkNamespace="default")
    second.metadata.finalizers = [NETATTDEF_FINALIZER]
    live = render_network_attachment(first, PREFIX)
    assert plan(second, live=live) == [ready(
        False, REASON_NAD_INVALID,
        "NetworkAttachmentDefinition 'default/net1' already exists and is owned by "
        f"SriovNetwork.sriovnetwork.openshift.io/{OPERATOR_NS}/net1",
    )]


def test_deleted_network_deletes_its_nad_then_drops_only_our_finalizer() -> None:
    net = network(SriovNetwork, "gone", OPERATOR_NS, networkNamespace="default")
    net.metadata.finalizers = ["other", NETATTDEF_FINALIZER]
    net.metadata.deletion_timestamp = "2026-01-01T00:00:00Z"
    assert plan(net) == [DeleteAttachment("default", "gone"), SetFinalizers(("other",))]
    net.metadata.finalizers = ["other"]
    assert plan(net) == []


def test_unrenderable_network_is_invalid_with_the_field_in_the_message() -> None:
    net = network(SriovIBNetwork, "bad", OPERATOR_NS, capabilities="foo")
    steps = plan(net)
    assert steps[0] == SetFinalizers((NETATTDEF_FINALIZER,))
    assert isinstance(steps[1], SetReadyCondition) and len(steps) == 2
    assert steps[1].ready.reason == REASON_NAD_INVALID and steps[1].ready.message.startswith("spec.capabilities: ")


def test_ready_condition_keeps_transition_time_unless_status_flips() -> None:
    net = network(SriovNetwork, "c", "ns")
    up = ReadyCondition(True, REASON_NETWORK_READY, "NetworkAttachmentDefinition is provisioned and ready", 3)
    first = apply_ready_condition([], up, "2026-01-01T00:00:00Z")
    assert first is not None and first[0].last_transition_time == "2026-01-01T00:00:00Z"
    assert first[0].observed_generation == 3 and first[0].status == "True"
    assert apply_ready_condition(first, up, "2026-01-02T00:00:00Z") is None
    newer = apply_ready_condition(first, ReadyCondition(True, up.reason, up.message, 4), "2026-01-03T00:00:00Z")
    assert newer is not None and newer[0].last_transition_time == "2026-01-01T00:00:00Z"
    other = Condition(type="Other", status="True", reason="R", message="", last_transition_time="2025-01-01T00:00:00Z")
    down = apply_ready_condition([other, *first], write_failed_condition(net, "boom"), "2026-01-04T00:00:00Z")
    assert down is not None and [c.type for c in down] == ["Other", "Ready"]
    assert (down[1].status, down[1].reason, down[1].message) == ("False", REASON_NAD_INVALID, "boom")
    assert down[1].last_transition_time == "2026-01-04T00:00:00Z"
