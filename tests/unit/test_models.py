"""Models keep upstream's JSON exactly: every field survives a round trip, odd names stay odd, unknown fields
and wrong types are reported with their path."""

from __future__ import annotations

import copy
from typing import Any

import pytest

import scenario
from vdpa_operator import yamlio
from vdpa_operator.api import kinds
from vdpa_operator.api.decoding import DecodeError, decode
from vdpa_operator.api.models import SriovNetworkNodeState, VirtualFunction

EXAMPLES = scenario.EXAMPLES

FULL_NODE_STATE: dict[str, Any] = {
    "apiVersion": "sriovnetwork.openshift.io/v1",
    "kind": "SriovNetworkNodeState",
    "metadata": {
        "name": "worker-0", "namespace": "openshift-sriov-network-operator", "uid": "1234", "generation": 3,
        "resourceVersion": "77", "creationTimestamp": "2026-11-25T10:00:00Z",
        "annotations": {"sriovnetwork.openshift.io/desired-state": "Idle",
                        "sriovnetwork.openshift.io/current-state": "Idle"},
        "ownerReferences": [{"apiVersion": "sriovnetwork.openshift.io/v1", "kind": "SriovOperatorConfig",
                             "name": "default", "uid": "abcd", "controller": True, "blockOwnerDeletion": True}],
    },
    "spec": {
        "interfaces": [{
            "pciAddress": "0000:65:00.0", "numVfs": 2, "mtu": 9000, "name": "ens1f0", "linkType": "ETH",
            "eSwitchMode": "switchdev", "externallyManaged": False,
            "vfGroups": [{"resourceName": "mlxnics", "deviceType": "netdevice", "vfRange": "0-1",
                          "policyName": "vdpa-policy", "mtu": 9000, "isRdma": False, "vdpaType": "virtio"}],
        }],
        "bridges": {"ovs": [{"name": "br-0000_65_00.0", "bridge": {"datapathType": "netdev", "failMode": "secure"},
                             "uplinks": [{"pciAddress": "0000:65:00.0", "name": "ens1f0",
                                          "interface": {"type": "dpdk", "mtuRequest": 9000}}]}]},
        "system": {"rdmaMode": "shared"},
    },
    "status": {
        "interfaces": [{
            "name": "ens1f0", "mac": "0c:42:a1:5a:10:e0", "driver": "mlx5_core", "pciAddress": "0000:65:00.0",
            "vendor": "15b3", "deviceID": "101d", "netFilter": "", "mtu": 9000, "numVfs": 2,
            "linkSpeed": "100000 Mb/s", "linkType": "ETH", "linkAdminState": "up", "eSwitchMode": "switchdev",
            "externallyManaged": False, "totalvfs": 8, "altNames": ["enp101s0f0np0"],
            "Vfs": [
                {"name": "eth0", "mac": "aa:bb:cc:00:00:01", "assigned": "", "driver": "mlx5_core",
                 "pciAddress": "0000:65:00.2", "vendor": "15b3", "deviceID": "101e", "Vlan": 0, "mtu": 9000,
                 "vfID": 0, "vdpaType": "virtio", "representorName": "ens1f0_0", "guid": ""},
                {"pciAddress": "0000:65:00.3", "vfID": 1, "vdpaType": "virtio", "representorName": "ens1f0_1"},
            ],
        }],
        "syncStatus": "Succeeded",
        "lastSyncError": "",
    },
}


def test_node_state_round_trip_keeps_every_field_including_zero_values() -> None:
    state = decode(copy.deepcopy(FULL_NODE_STATE)).obj
    assert isinstance(state, SriovNetworkNodeState)
    assert state.to_dict() == FULL_NODE_STATE
    vf = state.status.interfaces[0].vfs[0]
    assert (vf.vf_id, vf.vdpa_type, vf.representor_name) == (0, "virtio", "ens1f0_0")
    assert state.status.interfaces[0].total_vfs == 8


def test_upstream_odd_json_names_on_output() -> None:
    state = decode(copy.deepcopy(FULL_NODE_STATE)).obj
    assert state is not None
    iface = state.to_go_dict()["status"]["interfaces"][0]
    assert "totalvfs" in iface and "Vfs" in iface and "totalVfs" not in iface
    # vfID is always written (no omitempty upstream), even when 0; Vlan 0 is omitted.
    assert VirtualFunction(pci_address="0:2", vf_id=0).to_go_dict() == {"pciAddress": "0:2", "vfID": 0}
    assert VirtualFunction(pci_address="x", vf_id=1, vlan=5).to_go_dict()["Vlan"] == 5


def _modelled(path: Any) -> bool:
    """Whether every document of an example is a kind the API models (the seed's Pod and Namespace are not)."""
    return all(kinds.lookup(d.value.get("apiVersion"), d.value.get("kind")) is not None
               for d in yamlio.parse_documents(path.read_text(), path.name))


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.yaml") if _modelled(p)))
def test_examples_round_trip_through_yaml(name: str) -> None:
    for doc in yamlio.parse_documents((EXAMPLES / name).read_text(), name):
        obj = decode(doc.value).obj
        assert obj is not None
        dumped = obj.to_dict()
        assert dumped == doc.value
        assert yamlio.parse_documents(yamlio.dump_yaml(dumped), "again")[0].value == doc.value


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("spec", "nicSelector", "vendr"), "15b3", "spec.nicSelector.vendr: unknown field"),
        (("spec", "bridge", "ovs", "bridge", "colour"), "red", "spec.bridge.ovs.bridge.colour: unknown field"),
        (("metadata", "labelz"), {}, "metadata.labelz: unknown field"),
        (("spec", "numVfs"), "2", 'spec.numVfs: expected integer, got string "2"'),
        (("spec", "isRdma"), "true", 'spec.isRdma: expected boolean, got string "true"'),
        (("spec", "nicSelector", "vendor"), 8086, "spec.nicSelector.vendor: expected string, got integer 8086"),
        (("spec", "nicSelector", "rootDevices"), "0000:65:00.0", "spec.nicSelector.rootDevices: expected array"),
        (("spec", "nodeSelector"), {"a": True}, "spec.nodeSelector.a: expected string, got boolean true"),
    ],
)
def test_decode_errors_name_the_field(path: tuple[str, ...], value: Any, expected: str) -> None:
    raw: dict[str, Any] = {
        "apiVersion": "sriovnetwork.openshift.io/v1", "kind": "SriovNetworkNodePolicy",
        "metadata": {"name": "p"},
        "spec": {"resourceName": "r", "nodeSelector": {}, "numVfs": 2, "nicSelector": {"vendor": "15b3"}},
    }
    target = raw
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value
    with pytest.raises(DecodeError) as caught:
        decode(raw)
    assert any(str(issue).startswith(expected) for issue in caught.value.issues), caught.value.issues


def test_schema_violations_are_kept_apart_from_decode_errors() -> None:
    raw = {
        "apiVersion": "sriovnetwork.openshift.io/v1", "kind": "SriovNetworkNodePolicy", "metadata": {"name": "p"},
        "spec": {"nodeSelector": {}, "numVfs": -1, "nicSelector": {}, "deviceType": "virtio", "priority": 100},
    }
    decoded = decode(raw)
    assert decoded.obj is None
    assert sorted(str(i) for i in decoded.schema_issues) == [
        'spec.deviceType: Unsupported value: "virtio": supported values: "netdevice", "vfio-pci"',
        "spec.numVfs: Invalid value: -1: must be greater than or equal to 0",
        "spec.priority: Invalid value: 100: must be less than or equal to 99",
        "spec.resourceName: Required value",
    ]
