"""Admission webhooks over real HTTPS: a small webhook server in a thread, configured through the API like in a
cluster, called by the embedded API server on writes (mutation, denial, warnings, failurePolicy, TLS trust,
rule matching, DELETE's oldObject)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest

from integration.apiserver.webhook_server import MUTATING, VALIDATING, WebhookServer, configure, hook
from vdpa_operator.sim.apiserver import ServerHandle, default_store
from vdpa_operator.sim.apiserver.resources import ResourceType
from vdpa_operator.sim.apiserver.store import AdmissionAttributes as Attributes
from vdpa_operator.sim.apiserver.webhooks import Webhooks, _Hook, rule_matches, selector_matches
from vdpa_operator.tls import CertificateAuthority

CONFIGMAPS = "/api/v1/namespaces/default/configmaps"
NS = "openshift-sriov-network-operator"
POLICIES = f"/apis/sriovnetwork.openshift.io/v1/namespaces/{NS}/sriovnetworknodepolicies"


@pytest.fixture
def http(api: ServerHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.url, headers=api.headers, verify=api.verify, timeout=10) as client:
        yield client


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_mutating_webhook_patches_the_object_and_its_warning_reaches_the_client(
    http: httpx.Client, webhook: WebhookServer
) -> None:
    configure(http, MUTATING, "label", hook("label.example.com", f"{webhook.url}/mutate", webhook.ca_bundle))
    created = http.post(CONFIGMAPS, json={"metadata": {"name": "a"}, "data": {"k": "v"}})
    assert created.status_code == 201, created.text
    assert created.json()["metadata"]["labels"] == {"mutated": "yes"}
    assert http.get(f"{CONFIGMAPS}/a").json()["metadata"]["labels"] == {"mutated": "yes"}  # stored so
    assert created.headers.get_list("warning") == ['299 - "labelled by the test webhook"']

    [review] = webhook.reviews
    assert (review["operation"], review["name"], review["namespace"]) == ("CREATE", "a", "default")
    assert review["kind"] == {"group": "", "version": "v1", "kind": "ConfigMap"}
    assert review["resource"] == {"group": "", "version": "v1", "resource": "configmaps"}
    assert review["object"]["data"] == {"k": "v"} and review["oldObject"] is None
    assert review["options"]["kind"] == "CreateOptions" and review["dryRun"] is False
    assert review["userInfo"]["username"]

    updated = http.patch(f"{CONFIGMAPS}/a", json={"metadata": {"labels": {"mutated": None}}},
                         headers={"Content-Type": "application/merge-patch+json"})
    assert updated.status_code == 200 and updated.json()["metadata"]["labels"] == {"mutated": "yes"}
    assert webhook.reviews[-1]["operation"] == "UPDATE"
    assert webhook.reviews[-1]["oldObject"]["metadata"]["labels"] == {"mutated": "yes"}


def test_validating_webhook_denial_is_kube_apiservers_message_and_code(
    http: httpx.Client, webhook: WebhookServer
) -> None:
    configure(http, VALIDATING, "deny", hook("deny.example.com", f"{webhook.url}/deny", webhook.ca_bundle))
    denied = http.post(CONFIGMAPS, json={"metadata": {"name": "a", "labels": {"deny": "yes"}}})
    assert denied.status_code == 403
    assert denied.json()["reason"] == "Forbidden"
    assert denied.json()["message"] == 'admission webhook "deny.example.com" denied the request: no thanks'
    assert http.get(f"{CONFIGMAPS}/a").status_code == 404

    assert http.post(CONFIGMAPS, json={"metadata": {"name": "b"}}).status_code == 201
    refused_update = http.patch(f"{CONFIGMAPS}/b", json={"metadata": {"labels": {"deny": "yes"}}},
                                headers={"Content-Type": "application/merge-patch+json"})
    assert refused_update.status_code == 403
    assert "labels" not in http.get(f"{CONFIGMAPS}/b").json()["metadata"]


def test_validating_webhooks_see_what_mutating_ones_made(http: httpx.Client, webhook: WebhookServer) -> None:
    configure(http, MUTATING, "label", hook("label.example.com", f"{webhook.url}/mutate", webhook.ca_bundle))
    configure(http, VALIDATING, "deny", hook("deny.example.com", f"{webhook.url}/deny", webhook.ca_bundle))
    assert http.post(CONFIGMAPS, json={"metadata": {"name": "a"}}).status_code == 201
    assert [r["path"] for r in webhook.reviews] == ["/mutate", "/deny"]
    assert webhook.reviews[1]["object"]["metadata"]["labels"] == {"mutated": "yes"}


def test_delete_sends_the_old_object(http: httpx.Client, webhook: WebhookServer) -> None:
    http.post(CONFIGMAPS, json={"metadata": {"name": "a"}, "data": {"k": "v"}})
    configure(http, VALIDATING, "watch-deletes",
              hook("deletes.example.com", f"{webhook.url}/deny", webhook.ca_bundle, operations=("DELETE",)))
    assert http.delete(f"{CONFIGMAPS}/a").status_code == 200
    [review] = webhook.reviews
    assert review["operation"] == "DELETE" and review["object"] is None
    assert review["oldObject"]["data"] == {"k": "v"} and review["options"]["kind"] == "DeleteOptions"


def test_dry_run_calls_only_webhooks_without_side_effects(http: httpx.Client, webhook: WebhookServer) -> None:
    configure(http, VALIDATING, "effects", hook("effects.example.com", f"{webhook.url}/deny", webhook.ca_bundle,
                                                 sideEffects="Some"))
    refused = http.post(CONFIGMAPS, params={"dryRun": "All"}, json={"metadata": {"name": "a"}})
    assert refused.status_code == 400
    assert refused.json()["message"] == 'admission webhook "effects.example.com" does not support dry run'
    assert webhook.reviews == []

    http.delete(f"{VALIDATING}/effects")
    configure(http, VALIDATING, "effects", hook("effects.example.com", f"{webhook.url}/deny", webhook.ca_bundle,
                                                 sideEffects="NoneOnDryRun"))
    assert http.post(CONFIGMAPS, params={"dryRun": "All"}, json={"metadata": {"name": "a"}}).status_code == 201
    assert webhook.reviews[0]["dryRun"] is True
    assert http.get(f"{CONFIGMAPS}/a").status_code == 404  # a dry run stores nothing


def test_failure_policy_decides_when_the_webhook_cannot_be_called(http: httpx.Client) -> None:
    down = f"https://127.0.0.1:{closed_port()}/validate"
    ca_bundle = CertificateAuthority().bundle
    configure(http, VALIDATING, "down", hook("down.example.com", down, ca_bundle))
    failed = http.post(CONFIGMAPS, json={"metadata": {"name": "a"}})
    assert failed.status_code == 500 and failed.json()["reason"] == "InternalError"
    assert failed.json()["message"].startswith(
        f'Internal error occurred: failed calling webhook "down.example.com": failed to call webhook: '
        f'Post "{down}?timeout=10s": ')

    http.delete(f"{VALIDATING}/down")
    configure(http, VALIDATING, "down", hook("down.example.com", down, ca_bundle, failurePolicy="Ignore"))
    assert http.post(CONFIGMAPS, json={"metadata": {"name": "a"}}).status_code == 201


def test_a_certificate_from_another_ca_is_refused(http: httpx.Client, webhook: WebhookServer) -> None:
    stranger = CertificateAuthority("someone-else").bundle
    configure(http, MUTATING, "label", hook("label.example.com", f"{webhook.url}/mutate", stranger))
    refused = http.post(CONFIGMAPS, json={"metadata": {"name": "a"}})
    assert refused.status_code == 500
    assert 'failed calling webhook "label.example.com"' in refused.json()["message"]
    assert "certificate" in refused.json()["message"]
    assert webhook.reviews == []  # the TLS handshake failed before any request


def test_a_service_is_reached_at_its_resolved_address_under_its_cluster_name(
    http: httpx.Client, webhook: WebhookServer
) -> None:
    """Without an address for the service, 127.0.0.1 and the service port; TLS checks hook.webhooks.svc."""
    port = int(webhook.url.rsplit(":", 1)[1])
    service = {"namespace": "webhooks", "name": "hook", "port": port, "path": "/mutate"}
    configure(http, MUTATING, "by-service", {**hook("svc.example.com", "", webhook.ca_bundle),
                                             "clientConfig": {"service": service, "caBundle": webhook.ca_bundle}})
    created = http.post(CONFIGMAPS, json={"metadata": {"name": "a"}})
    assert created.status_code == 201, created.text
    assert created.json()["metadata"]["labels"] == {"mutated": "yes"}


def test_a_service_given_an_address_is_dialled_there() -> None:
    hooks = Webhooks(default_store(), {("webhooks", "hook"): "127.0.0.1:9443"})
    service = {"namespace": "webhooks", "name": "hook", "path": "/validate"}
    target = hooks._target(_Hook("c", {"name": "h", "clientConfig": {"service": service}}), 5)
    assert (target.dial_url, target.host) == ("https://127.0.0.1:9443/validate?timeout=5s", "hook.webhooks.svc")
    assert target.url == "https://hook.webhooks.svc:443/validate?timeout=5s"


def test_timeout_seconds_is_honoured(http: httpx.Client, webhook: WebhookServer) -> None:
    configure(http, VALIDATING, "slow",
              hook("slow.example.com", f"{webhook.url}/slow", webhook.ca_bundle, timeoutSeconds=1))
    began = time.monotonic()
    failed = http.post(CONFIGMAPS, json={"metadata": {"name": "a"}})
    assert time.monotonic() - began < 1.9
    assert failed.status_code == 500 and "context deadline exceeded" in failed.json()["message"]


def test_webhooks_whose_rules_or_selectors_do_not_match_are_not_called(
    http: httpx.Client, webhook: WebhookServer
) -> None:
    url = f"{webhook.url}/deny"
    configure(
        http, VALIDATING, "unmatched",
        hook("secrets.example.com", url, webhook.ca_bundle, resources=("secrets",)),
        hook("updates.example.com", url, webhook.ca_bundle, operations=("UPDATE",)),
        hook("apps.example.com", url, webhook.ca_bundle, groups=("apps",)),
        hook("status.example.com", url, webhook.ca_bundle, resources=("configmaps/status",)),
        hook("labelled-ns.example.com", url, webhook.ca_bundle,
             namespaceSelector={"matchLabels": {"webhooks": "on"}}),
        hook("labelled-obj.example.com", url, webhook.ca_bundle,
             objectSelector={"matchExpressions": [{"key": "app", "operator": "Exists"}]}),
    )
    assert http.post(CONFIGMAPS, json={"metadata": {"name": "a"}}).status_code == 201
    assert webhook.reviews == []

    http.post("/api/v1/namespaces", json={"metadata": {"name": "hooked", "labels": {"webhooks": "on"}}})
    http.post("/api/v1/namespaces/hooked/configmaps", json={"metadata": {"name": "a"}})
    http.post(CONFIGMAPS, json={"metadata": {"name": "b", "labels": {"app": "x"}}})
    assert [(r["namespace"], r["name"]) for r in webhook.reviews] == [("hooked", "a"), ("default", "b")]


def test_custom_resources_are_admitted_too(http: httpx.Client, webhook: WebhookServer) -> None:
    configure(http, VALIDATING, "policies",
              hook("policies.example.com", f"{webhook.url}/deny", webhook.ca_bundle,
                   resources=("sriovnetworknodepolicies",), groups=("sriovnetwork.openshift.io",), scope="*"))
    policy = {"apiVersion": "sriovnetwork.openshift.io/v1", "kind": "SriovNetworkNodePolicy",
              "metadata": {"name": "p", "labels": {"deny": "yes"}},
              "spec": {"resourceName": "r", "numVfs": 1, "nicSelector": {"vendor": "15b3"}, "nodeSelector": {}}}
    http.post("/api/v1/namespaces", json={"metadata": {"name": NS}})
    denied = http.post(POLICIES, json=policy)
    assert denied.status_code == 403, denied.text
    assert webhook.reviews[0]["kind"]["kind"] == "SriovNetworkNodePolicy"


POLICY_TYPE = ResourceType("sriovnetwork.openshift.io", "v1", "SriovNetworkNodePolicy", "sriovnetworknodepolicies",
                           namespaced=True)
NODE_TYPE = ResourceType("", "v1", "Node", "nodes", namespaced=False)


@pytest.mark.parametrize(("rule", "attrs", "matches"), [
    ({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]},
     Attributes("CREATE", POLICY_TYPE, "ns", "p", {}), True),
    ({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]},
     Attributes("UPDATE", POLICY_TYPE, "ns", "p", {}, subresource="status"), False),
    ({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*/*"]},
     Attributes("UPDATE", POLICY_TYPE, "ns", "p", {}, subresource="status"), True),
    ({"operations": ["UPDATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["nodes/status"]},
     Attributes("UPDATE", NODE_TYPE, "", "n", {}, subresource="status"), True),
    ({"operations": ["UPDATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["nodes/status"]},
     Attributes("UPDATE", NODE_TYPE, "", "n", {}), False),
    ({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"], "scope": "Namespaced"},
     Attributes("CREATE", NODE_TYPE, "", "n", {}), False),
    ({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"], "scope": "Cluster"},
     Attributes("CREATE", NODE_TYPE, "", "n", {}), True),
    ({"operations": ["CREATE"], "apiGroups": ["*"], "apiVersions": ["v2"], "resources": ["*"]},
     Attributes("CREATE", POLICY_TYPE, "ns", "p", {}), False),
])
def test_rule_matching_follows_kube_apiserver(rule: dict[str, Any], attrs: Attributes, matches: bool) -> None:
    assert rule_matches(rule, attrs) is matches


def test_label_selectors() -> None:
    labels = {"a": "1", "b": "2"}
    assert selector_matches({}, labels)
    assert selector_matches({"matchLabels": {"a": "1"}, "matchExpressions": [
        {"key": "b", "operator": "In", "values": ["2", "3"]}, {"key": "c", "operator": "DoesNotExist"}]}, labels)
    assert not selector_matches({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, labels)
    assert not selector_matches({"matchExpressions": [{"key": "z", "operator": "Exists"}]}, labels)
