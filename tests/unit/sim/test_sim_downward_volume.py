"""A downwardAPI volume as kubelet writes it: the network-resources-injector adds one (`podnetinfo`, the pod's
labels and annotations) to every pod it gives a device, the seed's included."""

from __future__ import annotations

import pytest

from vdpa_operator.sim.kubelet.errors import KubeletError
from vdpa_operator.sim.kubelet.volumes import downward_files

POD = {"metadata": {"name": "vdpa-pod1", "namespace": "vdpa", "uid": "u-1",
                    "labels": {"zone": "b", "app": "iperf"},
                    "annotations": {"v1.multus-cni.io/default-network": "kube-system/ovn-kubernetes-a",
                                    "quoted": 'say "hi"\nbye'}},
       "spec": {"nodeName": "worker-0"}}


def test_maps_are_sorted_key_quoted_value_lines_and_fields_their_value() -> None:
    injector_volume = {"items": [
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
        {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
        {"path": "node", "fieldRef": {"fieldPath": "spec.nodeName"}}]}
    files = downward_files(POD, injector_volume)
    assert files["labels"].decode().splitlines() == ['app="iperf"', 'zone="b"']
    assert files["annotations"].decode().splitlines() == [
        'quoted="say \\"hi\\"\\nbye"', 'v1.multus-cni.io/default-network="kube-system/ovn-kubernetes-a"']
    assert not files["labels"].endswith(b"\n")  # kubelet trims the last newline
    assert files["node"] == b"worker-0"


def test_a_field_kubelet_does_not_offer_is_a_clear_error() -> None:
    with pytest.raises(KubeletError, match=r"spec\.bogus"):
        downward_files(POD, {"items": [{"path": "x", "fieldRef": {"fieldPath": "spec.bogus"}}]})
