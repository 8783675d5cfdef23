"""The injector's MutatingWebhookConfiguration as upstream's `bindata/manifests/webhook/003-webhook.yaml` renders it,
or none, from `SriovOperatorConfig` `default`."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from vdpa_operator.api.models import SriovOperatorConfig
from vdpa_operator.controller.injector_webhook import CONFIGURATION_NAME, PATH, WEBHOOK_NAME, wanted_configuration
from vdpa_operator.controller.webhook import SERVICE_NAME, SERVICE_PORT, Endpoint

NS = "openshift-sriov-network-operator"
CA = b"-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n"
BY_SERVICE = Endpoint(CA, service=(NS, SERVICE_NAME, SERVICE_PORT))


def config(**spec: Any) -> SriovOperatorConfig:
    return SriovOperatorConfig.model_validate({"metadata": {"name": "default", "namespace": NS}, "spec": spec})


@pytest.mark.parametrize("operator_config", [None, config(), config(enableInjector=False, enableOperatorWebhook=True)],
                         ids=["no default config", "default spec", "enableInjector false"])
def test_no_configuration_unless_enabled(operator_config: SriovOperatorConfig | None) -> None:
    assert wanted_configuration(operator_config, BY_SERVICE) is None


def test_enabled_is_upstreams_webhook_served_by_the_operator() -> None:
    wanted = wanted_configuration(config(enableInjector=True), BY_SERVICE)
    assert wanted is not None
    assert (wanted["kind"], wanted["metadata"]["name"]) == ("MutatingWebhookConfiguration", CONFIGURATION_NAME)
    [hook] = wanted["webhooks"]
    assert hook["name"] == WEBHOOK_NAME
    assert (hook["failurePolicy"], hook["sideEffects"], hook["admissionReviewVersions"]) == ("Ignore", "None", ["v1"])
    assert "matchConditions" not in hook
    assert "namespaceSelector" not in hook and "objectSelector" not in hook
    assert hook["rules"] == [{"operations": ["CREATE"], "apiGroups": ["apps", ""], "apiVersions": ["v1"],
                              "resources": ["pods"]}]
    assert hook["clientConfig"]["service"] == {"namespace": NS, "name": SERVICE_NAME, "path": PATH, "port": 443}
    assert base64.b64decode(hook["clientConfig"]["caBundle"]) == CA


def test_match_condition_feature_gate_fails_closed_for_pods_with_networks() -> None:
    wanted = wanted_configuration(config(enableInjector=True, featureGates={"resourceInjectorMatchCondition": True}),
                                  Endpoint(CA, url_base="https://127.0.0.1:9443"))
    assert wanted is not None
    [hook] = wanted["webhooks"]
    assert hook["failurePolicy"] == "Fail"
    assert hook["matchConditions"] == [{
        "name": "include-networks-annotation",
        "expression": 'has(object.metadata.annotations) && '
                      '"k8s.v1.cni.cncf.io/networks" in object.metadata.annotations',
    }]
    assert hook["clientConfig"]["url"] == "https://127.0.0.1:9443/mutate"
