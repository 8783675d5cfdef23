"""JSON that reaches us inside other messages goes through the bounded loader too: an AdmissionReview the API
server sends the operator's webhooks, and OVN-Kubernetes' pod and node annotations the CNI reads. Nested past the
limit, each is the component's own clear refusal (the webhook's 400 reason, the CNI's error 7), never a
RecursionError."""

from __future__ import annotations

import json

import pytest

from vdpa_operator.bounded import DEFAULT_LIMITS
from vdpa_operator.cni import ipam_ovn
from vdpa_operator.cni.errors import INVALID_CONFIG, CniError
from vdpa_operator.controller.webhook import ReviewError, parse_review

DEEP = "[" * 20_000 + "]" * 20_000


def review(obj: object) -> bytes:
    return json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                       "request": {"uid": "1", "kind": {"group": "sriovnetwork.openshift.io", "version": "v1",
                                                        "kind": "SriovNetworkNodePolicy"},
                                   "operation": "CREATE", "object": obj}}).encode()


def test_a_deep_admission_review_is_a_review_error() -> None:
    body = review({}).replace(b'"object": {}', b'"object": ' + DEEP.encode())
    with pytest.raises(ReviewError, match="nested more than"):
        parse_review(body)


def test_nesting_a_real_object_needs_is_taken() -> None:
    nested: object = {}
    for _ in range(DEFAULT_LIMITS.max_depth - 5):
        nested = {"a": nested}
    assert parse_review(review(nested)).obj is not None


@pytest.mark.parametrize("read", [ipam_ovn.from_pod_networks, ipam_ovn.node_subnet])
def test_a_deep_ovn_annotation_is_cni_error_7(read: object) -> None:
    with pytest.raises(CniError) as raised:
        read(DEEP)  # type: ignore[operator]
    assert raised.value.code == INVALID_CONFIG
    assert "nested more than" in str(raised.value.details) + raised.value.msg
