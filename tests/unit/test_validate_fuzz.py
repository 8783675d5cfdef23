"""Generated policies, valid and invalid, never crash admission or rendering: they are admitted, rejected with
reasons, or refused as unreadable input — nothing else; and every NodeState spec rendered from what was
admitted is one the node daemon takes (`api.nodestate_checks`)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import scenario
from vdpa_operator.api import admission
from vdpa_operator.api.decoding import DecodeError, decode
from vdpa_operator.api.models import SriovNetworkNodePolicy
from vdpa_operator.api.nics import DEFAULT_SUPPORTED_NICS
from vdpa_operator.api.nodestate_checks import spec_problems
from vdpa_operator.api.review import review_all
from vdpa_operator.render import policy_sync

NS = admission.DEFAULT_NAMESPACE
STATES = scenario.example_node_states()
NODES = scenario.example_nodes()

junk = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 300), st.text(max_size=8), st.lists(st.integers(), max_size=2)
)
pf_names = st.sampled_from(
    ["ens1f0", "ens1f1", "ens1f0#0-1", "ens1f0#2-3", "ens1f1#0-7", "ens1f0#3", "ens1f0#a-b", "x#1#2", "ens1f0#5-2",
     "ens1f0#-1-2", "ens1f0#0-200", "altname0", "#0-1", ""]
)
nic_selector = st.fixed_dictionaries(
    {},
    optional={
        "vendor": st.one_of(st.sampled_from(["15b3", "8086", "abcd", "", "1af4"]), junk),
        "deviceID": st.one_of(st.sampled_from(["101d", "1017", "158b", "ffff", ""]), junk),
        "rootDevices": st.lists(st.sampled_from(["0000:65:00.0", "0000:65:00.1", "0000:00:00.0"]), max_size=3),
        "pfNames": st.one_of(st.lists(pf_names, max_size=3), junk),
        "netFilter": st.sampled_from(["openstack/NetworkID:abc", "aws/NetworkID:x", "bogus", ""]),
    },
)
spec = st.fixed_dictionaries(
    {},
    optional={
        "resourceName": st.one_of(st.sampled_from(["mlxnics", "", "a" * 64, "bad name", "x_y", "-x"]), junk),
        "nodeSelector": st.one_of(
            st.just({"feature.node.kubernetes.io/network-sriov.capable": "true"}), st.just({}),
            st.just({"missing": "label"}), junk),
        "numVfs": st.one_of(st.integers(-2, 200), junk),
        "priority": st.one_of(st.integers(-1, 120), junk),
        "mtu": st.one_of(st.integers(0, 9500), junk),
        "nicSelector": st.one_of(nic_selector, junk),
        "deviceType": st.one_of(st.sampled_from(["netdevice", "vfio-pci", "NETDEVICE"]), junk),
        "eSwitchMode": st.one_of(st.sampled_from(["legacy", "switchdev"]), junk),
        "vdpaType": st.one_of(st.sampled_from(["virtio", "vhost"]), junk),
        "linkType": st.one_of(st.sampled_from(["eth", "ETH", "ib", "IB"]), junk),
        "isRdma": st.one_of(st.booleans(), junk),
        "externallyManaged": st.booleans(),
        "excludeTopology": st.booleans(),
        "bridge": st.sampled_from([{}, {"ovs": {}}, {"ovs": {"bridge": {"failMode": "secure"}}}]),
        "unknownField": junk,
    },
)
policy = st.builds(
    lambda name, namespace, body: {
        "apiVersion": "sriovnetwork.openshift.io/v1",
        "kind": "SriovNetworkNodePolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": body,
    },
    st.sampled_from(["a", "b", "default", "vdpa-policy"]),
    st.sampled_from([NS, "default", ""]),
    spec,
)


@settings(max_examples=1200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(policy, min_size=1, max_size=3), st.booleans())
def test_generated_policies_never_crash(raws: list[dict[str, Any]], with_cluster: bool) -> None:
    decoded = []
    for raw in raws:
        try:
            decoded.append(decode(raw))
        except DecodeError as err:
            assert err.issues, "a decode error always says what is wrong"
    cluster = admission.ClusterView(nodes=NODES, node_states=STATES) if with_cluster else None
    reviews = review_all(decoded, cluster, admission.Settings())
    assert len(reviews) == len(decoded)
    for r in reviews:
        assert r.allowed == (not r.verdict.errors)
        assert all(str(e) for e in r.verdict.errors)
    # Rejected ones too: the operator renders what is stored, and admission may have run on another cluster.
    stored = [r.stored for r in reviews if isinstance(r.stored, SriovNetworkNodePolicy)]
    try:
        result = policy_sync.render_cluster(stored, NODES, STATES, namespace=NS, nics=DEFAULT_SUPPORTED_NICS)
    except policy_sync.RenderError as err:
        assert str(err)
    else:
        assert len(result.node_states) == len(NODES)
        for state in result.node_states:  # what the operator writes, the node daemon takes
            totals = {i.pci_address: i.total_vfs for i in state.status.interfaces}
            assert spec_problems(state.spec, totals) == [], state.spec
