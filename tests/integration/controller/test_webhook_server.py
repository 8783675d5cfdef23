"""The admission webhook over real HTTPS: AdmissionReviews POSTed as kube-apiserver sends them, the TLS checked
against the CA the server made, the answers judged by upstream's texts; and the certificate directory's reuse.

The last test goes through the embedded API server: configurations registered by `webhook.start`, a policy
created with lightkube, the webhook called by the server and its verdict reported as kube-apiserver reports it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import json
import ssl
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
import yaml
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from lightkube import AsyncClient
from lightkube.config.kubeconfig import KubeConfig
from lightkube.core.exceptions import ApiError

from vdpa_operator.api.admission import ClusterView, Settings
from vdpa_operator.api.jsonpatch import apply_json_patch
from vdpa_operator.api.kube import Node
from vdpa_operator.api.models import SriovNetworkNodeState, SriovOperatorConfig
from vdpa_operator.api.nics import DEFAULT_SUPPORTED_NICS
from vdpa_operator.controller import certs
from vdpa_operator.controller.webhook import (
    CONFIGURATION_NAME,
    MUTATING_PATH,
    VALIDATING_PATH,
    WEBHOOK_NAME,
    WebhookOptions,
    start,
    webhook_app,
    webhook_configurations,
)
from vdpa_operator.kubeclient import PolicyResource
from vdpa_operator.sim.apiserver import serve_in_thread
from vdpa_operator.sim.apiserver.inthread import default_store
from vdpa_operator.sim.apiserver.resources import BUILTIN_NAMESPACES

NS = "openshift-sriov-network-operator"
REPO = Path(__file__).parents[3]
SEED = yaml.safe_load((REPO / "examples" / "vdpa-policy.yaml").read_text())
CAPABLE = {"feature.node.kubernetes.io/network-sriov.capable": "true"}
EMPTY = ClusterView()
T = TypeVar("T")


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(asyncio.wait_for(scenario(), 30))


def review(obj: dict[str, Any] | None, operation: str = "CREATE", *, old: dict[str, Any] | None = None,
           kind: str | None = None) -> dict[str, Any]:
    """An admission.k8s.io/v1 AdmissionReview as kube-apiserver sends it."""
    subject = obj if obj is not None else old
    assert subject is not None
    kind = kind or subject["kind"]
    return {
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": "sriovnetwork.openshift.io", "version": "v1", "kind": kind},
            "resource": {"group": "sriovnetwork.openshift.io", "version": "v1", "resource": kind.lower() + "s"},
            "name": subject["metadata"]["name"], "namespace": subject["metadata"].get("namespace", ""),
            "operation": operation, "userInfo": {"username": "admin"},
            "object": obj, "oldObject": old, "dryRun": False,
        },
    }


def worker(labels: dict[str, str]) -> Node:
    return Node.model_validate({"metadata": {"name": "worker-0", "labels": labels}})


def cx6_state() -> SriovNetworkNodeState:
    """worker-0's daemon reported the seed's ConnectX-6 Dx PF."""
    return SriovNetworkNodeState.model_validate({
        "metadata": {"name": "worker-0", "namespace": NS},
        "status": {"interfaces": [{
            "name": "ens1f0np0", "pciAddress": "0000:65:00.0", "vendor": "15b3", "deviceID": "101d",
            "driver": "mlx5_core", "mtu": 1500, "totalvfs": 8, "linkType": "ETH", "eSwitchMode": "legacy",
        }]},
    })


@dataclass
class Served:
    base: str
    client_ssl: ssl.SSLContext
    session: aiohttp.ClientSession
    views: list[int] = field(default_factory=list)

    async def post(self, path: str, body: Any, *, content_type: str = "application/json") -> tuple[int, bytes]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        async with self.session.post(self.base + path, data=data, ssl=self.client_ssl,
                                     headers={"Content-Type": content_type}) as resp:
            return resp.status, await resp.read()

    async def answer(self, path: str, sent: dict[str, Any]) -> dict[str, Any]:
        status, raw = await self.post(path, sent)
        assert status == 200, raw
        body = json.loads(raw)
        assert body["apiVersion"] == "admission.k8s.io/v1" and body["kind"] == "AdmissionReview"
        response: dict[str, Any] = body["response"]
        assert response["uid"] == sent["request"]["uid"]
        return response


@contextlib.asynccontextmanager
async def served(cert_dir: Path, cluster: ClusterView | Exception = EMPTY) -> AsyncIterator[Served]:
    certificate = certs.ensure_serving_certificate(cert_dir, ["localhost", "127.0.0.1"])
    views: list[int] = []

    async def cluster_view() -> ClusterView:
        views.append(1)
        if isinstance(cluster, Exception):
            raise cluster
        return cluster

    runner = web.AppRunner(webhook_app(cluster_view, Settings(namespace=NS)), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=certificate.server_context())
        await site.start()
        port = runner.addresses[0][1]
        async with aiohttp.ClientSession() as session:
            yield Served(f"https://127.0.0.1:{port}", certificate.client_context(), session, views)
    finally:
        await runner.cleanup()


# --- mutation -------------------------------------------------------------------------------------------------


def test_seed_policy_gets_upstream_defaults_patch(tmp_path: Path) -> None:
    without_priority = {**SEED, "spec": {k: v for k, v in SEED["spec"].items() if k != "priority"}}

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        async with served(tmp_path) as web_:
            return (await web_.answer(MUTATING_PATH, review(SEED)),
                    await web_.answer(MUTATING_PATH, review(without_priority, "UPDATE", old=SEED)))

    seed, bare = run(scenario)
    assert seed["allowed"] is True and seed["patchType"] == "JSONPatch"
    assert json.loads(base64.b64decode(seed["patch"])) == [{"op": "add", "path": "/spec/isRdma", "value": False}]
    patch = json.loads(base64.b64decode(bare["patch"]))
    assert patch == [
        {"op": "add", "path": "/spec/priority", "value": 99}, {"op": "add", "path": "/spec/isRdma", "value": False},
    ]
    # Go's json.Marshal of a map: keys sorted, no spaces.
    assert base64.b64decode(bare["patch"]).startswith(b'[{"op":"add","path":"/spec/priority","value":99}')
    assert apply_json_patch(without_priority, patch)["spec"] | {"priority": 10} == {**SEED["spec"], "isRdma": False}


def test_mutation_leaves_other_kinds_and_complete_policies_alone(tmp_path: Path) -> None:
    complete = {**SEED, "spec": {**SEED["spec"], "isRdma": False}}
    config = {"apiVersion": "sriovnetwork.openshift.io/v1", "kind": "SriovOperatorConfig",
              "metadata": {"name": "default", "namespace": NS}, "spec": {}}

    async def scenario() -> list[dict[str, Any]]:
        async with served(tmp_path) as web_:
            return [await web_.answer(MUTATING_PATH, review(complete)),
                    await web_.answer(MUTATING_PATH, review(config))]

    for response in run(scenario):
        assert response["allowed"] is True and "patch" not in response and "patchType" not in response


# --- validation -----------------------------------------------------------------------------------------------


def test_virtio_vdpa_with_vfio_pci_is_denied_with_upstream_text(tmp_path: Path) -> None:
    policy = {**SEED, "spec": {**SEED["spec"], "deviceType": "vfio-pci", "isRdma": False}}

    async def scenario() -> dict[str, Any]:
        async with served(tmp_path, ClusterView(nodes=(worker(CAPABLE),), node_states=(cx6_state(),))) as web_:
            return await web_.answer(VALIDATING_PATH, review(policy))

    response = run(scenario)
    assert response["allowed"] is False
    # upstream validate.go: fmt.Errorf("'deviceType: %s' conflicts with '%s'; Set 'deviceType' to (string)'netdevice'
    # Or Remove 'vdpaType'", cr.Spec.DeviceType, cr.Spec.VdpaType), put in Result.Reason.
    assert response["status"]["reason"] == (
        "'deviceType: vfio-pci' conflicts with 'virtio'; Set 'deviceType' to (string)'netdevice' Or Remove 'vdpaType'"
    )
    assert response["status"]["details"]["causes"][0]["field"] == "spec.deviceType"


def test_dynamic_rules_read_the_cluster_view(tmp_path: Path) -> None:
    policy = {**SEED, "spec": {**SEED["spec"], "isRdma": False}}

    async def scenario(labels: dict[str, str]) -> tuple[dict[str, Any], int]:
        view = ClusterView(nodes=(worker(labels),), node_states=(cx6_state(),))
        async with served(tmp_path, view) as web_:
            return await web_.answer(VALIDATING_PATH, review(policy)), len(web_.views)

    denied, calls = run(lambda: scenario({"kubernetes.io/os": "linux"}))
    assert calls == 1
    assert denied["allowed"] is False
    assert denied["status"]["reason"] == "no matched node is selected by the nodeSelector in CR vdpa-policy"
    allowed, _ = run(lambda: scenario(CAPABLE))
    assert allowed == {"uid": allowed["uid"], "allowed": True}


def test_operator_config_rules_and_warnings(tmp_path: Path) -> None:
    def config(name: str, **spec: Any) -> dict[str, Any]:
        return {"apiVersion": "sriovnetwork.openshift.io/v1", "kind": "SriovOperatorConfig",
                "metadata": {"name": name, "namespace": NS}, "spec": spec}

    stored = SriovOperatorConfig.model_validate(config("default"), by_name=False)
    busy = cx6_state()
    busy.status.sync_status = "InProgress"

    async def scenario() -> list[dict[str, Any]]:
        async with served(tmp_path, ClusterView(node_states=(busy,), operator_config=stored)) as web_:
            return [await web_.answer(VALIDATING_PATH, review(config("other"))),
                    await web_.answer(VALIDATING_PATH, review(config("default", disableDrain=True), "UPDATE",
                                                              old=config("default")))]

    other, drain = run(scenario)
    assert other["allowed"] is False
    assert other["status"]["reason"] == f"only default SriovOperatorConfig in {NS} namespace is used"
    assert drain["allowed"] is False
    assert drain["status"]["reason"] == "can't set Spec.DisableDrain = true while node[worker-0] is updating"
    assert drain["warnings"] == [
        "Node draining is disabled for applying SriovNetworkNodePolicy, it may result in workload interruption."
    ]


def test_network_outside_operator_namespace_cannot_target_another(tmp_path: Path) -> None:
    net = {"apiVersion": "sriovnetwork.openshift.io/v1", "kind": "SriovNetwork",
           "metadata": {"name": "n", "namespace": "app"}, "spec": {"resourceName": "mlxnics", "networkNamespace": "x"}}

    async def scenario() -> tuple[dict[str, Any], int]:
        async with served(tmp_path) as web_:
            return await web_.answer(VALIDATING_PATH, review(net)), len(web_.views)

    response, calls = run(scenario)
    assert calls == 0, "network rules need no cluster data"
    assert response["status"]["reason"] == (
        f".Spec.NetworkNamespace field can't be specified if the resource is not in the {NS} namespace"
    )


def test_delete_is_judged_on_the_old_object(tmp_path: Path) -> None:
    elsewhere = {**SEED, "metadata": {"name": "stray", "namespace": "default"}}
    pool = {"apiVersion": "sriovnetwork.openshift.io/v1", "kind": "SriovNetworkPoolConfig",
            "metadata": {"name": "pool", "namespace": NS}, "spec": {"maxUnavailable": "150%"}}

    async def scenario() -> tuple[dict[str, Any], dict[str, Any], int]:
        async with served(tmp_path) as web_:
            return (await web_.answer(VALIDATING_PATH, review(None, "DELETE", old=elsewhere)),
                    await web_.answer(VALIDATING_PATH, review(None, "DELETE", old=pool)), len(web_.views))

    policy, pool_answer, calls = run(scenario)
    assert calls == 0, "a deleted policy is not checked against the cluster"
    assert policy["allowed"] is True
    assert policy["warnings"] == [
        f"stray is created or updated but not used. Only policy in {NS} namespace is respected."
    ]
    assert pool_answer["allowed"] is False
    assert pool_answer["status"]["reason"] == (
        "SriovOperatorConfig invalid maxUnavailable: invalid value: percentage needs to be between 1 and 100"
    )


def test_unknown_kinds_are_allowed_and_unreadable_objects_denied(tmp_path: Path) -> None:
    state = {"apiVersion": "sriovnetwork.openshift.io/v1", "kind": "SriovNetworkNodeState",
             "metadata": {"name": "worker-0", "namespace": NS}, "spec": {"anything": True}}
    wrong_type = {**SEED, "spec": {**SEED["spec"], "numVfs": "two"}}
    unknown_field = {**SEED, "spec": {**SEED["spec"], "isRdma": False, "futureField": 1}}

    async def scenario() -> list[dict[str, Any]]:
        view = ClusterView(nodes=(worker(CAPABLE),), node_states=(cx6_state(),))
        async with served(tmp_path, view) as web_:
            return [await web_.answer(VALIDATING_PATH, review(state)),
                    await web_.answer(VALIDATING_PATH, review(wrong_type)),
                    await web_.answer(VALIDATING_PATH, review(unknown_field))]

    state_answer, wrong, unknown = run(scenario)
    assert state_answer["allowed"] is True
    assert wrong["allowed"] is False and "spec.numVfs" in wrong["status"]["message"]
    assert unknown["allowed"] is True, "upstream's json.Unmarshal ignores unknown fields"


def test_cluster_read_failure_denies(tmp_path: Path) -> None:
    async def scenario() -> dict[str, Any]:
        async with served(tmp_path, ConnectionError("apiserver unreachable")) as web_:
            return await web_.answer(VALIDATING_PATH, review(SEED))

    response = run(scenario)
    assert response["allowed"] is False
    assert "apiserver unreachable" in response["status"]["reason"]


def test_malformed_reviews_are_http_400_with_the_reason(tmp_path: Path) -> None:
    v1beta1 = {**review(SEED), "apiVersion": "admission.k8s.io/v1beta1"}
    no_request = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}
    no_uid = review(SEED)
    del no_uid["request"]["uid"]
    no_old = review(SEED, "DELETE")
    no_old["request"]["object"] = None

    async def scenario() -> list[tuple[int, str]]:
        async with served(tmp_path) as web_:
            answers = []
            for path, body, content_type in [
                (VALIDATING_PATH, b"{not json", "application/json"),
                (VALIDATING_PATH, v1beta1, "application/json"),
                (MUTATING_PATH, no_request, "application/json"),
                (MUTATING_PATH, no_uid, "application/json"),
                (VALIDATING_PATH, no_old, "application/json"),
                (VALIDATING_PATH, review(SEED), "text/plain"),
            ]:
                status, raw = await web_.post(path, body, content_type=content_type)
                answers.append((status, raw.decode()))
            async with web_.session.get(web_.base + VALIDATING_PATH, ssl=web_.client_ssl) as resp:
                answers.append((resp.status, ""))
            return answers

    answers = run(scenario)
    assert [status for status, _ in answers] == [400, 400, 400, 400, 400, 400, 405]
    texts = [text for _, text in answers]
    assert "not JSON" in texts[0]
    assert "Unsupported group version kind: admission.k8s.io/v1beta1/AdmissionReview" in texts[1]
    assert "no request" in texts[2] and "request.uid" in texts[3]
    assert "request.oldObject is missing for DELETE" in texts[4]
    assert "Content-Type application/json" in texts[5]


def test_tls_is_verified_against_the_generated_ca_only(tmp_path: Path) -> None:
    stranger = certs.ensure_serving_certificate(tmp_path / "other", ["localhost"])

    async def scenario() -> str:
        async with served(tmp_path / "mine") as web_:
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await web_.session.get(web_.base + "/readyz", ssl=stranger.client_context())
            async with web_.session.get(web_.base + "/readyz", ssl=web_.client_ssl) as resp:
                return await resp.text()

    assert run(scenario) == "ok"


# --- certificates ---------------------------------------------------------------------------------------------


def test_certificate_is_reused_while_good_and_renewed_when_not(tmp_path: Path) -> None:
    names = ["operator-webhook-service.openshift-sriov-network-operator.svc", "localhost", "127.0.0.1"]
    first = certs.ensure_serving_certificate(tmp_path, names)
    assert first.renewed and first.ca_pem == (tmp_path / "ca.crt").read_bytes()
    assert (tmp_path / "tls.key").stat().st_mode & 0o777 == 0o600
    files = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    again = certs.ensure_serving_certificate(tmp_path, ["LOCALHOST", "127.0.0.1"])
    assert not again.renewed and again.ca_pem == first.ca_pem
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == files

    more = certs.ensure_serving_certificate(tmp_path, [*names, "::1"])
    assert more.renewed and more.ca_pem != first.ca_pem
    cert = x509.load_pem_x509_certificate((tmp_path / "tls.crt").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {names[0], "localhost"}
    assert {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}

    expiry = cert.not_valid_after_utc
    soon = expiry - certs.RENEW_BEFORE + datetime.timedelta(hours=1)
    assert not certs.ensure_serving_certificate(tmp_path, names, now=soon - datetime.timedelta(days=2)).renewed
    assert certs.ensure_serving_certificate(tmp_path, names, now=soon).renewed


@pytest.mark.parametrize("damage", ["foreign key", "missing ca", "garbage cert"])
def test_damaged_certificate_directory_is_regenerated(tmp_path: Path, damage: str) -> None:
    first = certs.ensure_serving_certificate(tmp_path, ["localhost"])
    if damage == "foreign key":
        other = ec.generate_private_key(ec.SECP256R1())
        (tmp_path / "tls.key").write_bytes(other.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    elif damage == "missing ca":
        (tmp_path / "ca.crt").unlink()
    else:
        (tmp_path / "tls.crt").write_text("not a certificate")
    renewed = certs.ensure_serving_certificate(tmp_path, ["localhost"])
    assert renewed.renewed and renewed.ca_pem != first.ca_pem
    renewed.server_context()  # key and certificate belong together again


def test_certificate_signed_by_another_ca_is_regenerated(tmp_path: Path) -> None:
    certs.ensure_serving_certificate(tmp_path / "a", ["localhost"])
    certs.ensure_serving_certificate(tmp_path / "b", ["localhost"])
    (tmp_path / "a" / "ca.crt").write_bytes((tmp_path / "b" / "ca.crt").read_bytes())
    assert certs.ensure_serving_certificate(tmp_path / "a", ["localhost"]).renewed


def test_certificate_needs_names(tmp_path: Path) -> None:
    with pytest.raises(certs.CertificateError, match="at least one"):
        certs.ensure_serving_certificate(tmp_path, [])


# --- webhook configurations -----------------------------------------------------------------------------------

UPSTREAM_RULES = {
    # bindata/manifests/operator-webhook/003-webhook.yaml
    "MutatingWebhookConfiguration": [(["CREATE", "UPDATE"], ["sriovnetworknodepolicies"])],
    "ValidatingWebhookConfiguration": [
        (["CREATE", "UPDATE", "DELETE"], ["sriovnetworknodepolicies"]),
        (["CREATE", "UPDATE", "DELETE"], ["sriovoperatorconfigs"]),
        (["CREATE", "UPDATE", "DELETE"], ["sriovnetworkpoolconfigs"]),
        (["CREATE", "UPDATE"], ["sriovnetworks"]),
        (["CREATE", "UPDATE"], ["sriovibnetworks"]),
        (["CREATE", "UPDATE"], ["ovsnetworks"]),
    ],
}


def test_webhook_configurations_follow_upstream_and_the_deploy_manifest() -> None:
    pem = b"-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n"
    by_service = webhook_configurations(pem, service=(NS, "operator-webhook-service", 443))
    for configuration in by_service:
        assert configuration["metadata"]["name"] == CONFIGURATION_NAME
        [hook] = configuration["webhooks"]
        assert (hook["name"], hook["failurePolicy"], hook["sideEffects"], hook["admissionReviewVersions"]) == (
            WEBHOOK_NAME, "Fail", "None", ["v1"])
        assert base64.b64decode(hook["clientConfig"]["caBundle"]) == pem
        rules = [(r["operations"], r["resources"]) for r in hook["rules"]]
        assert rules == UPSTREAM_RULES[configuration["kind"]]
        assert all(r["apiGroups"] == ["sriovnetwork.openshift.io"] and r["apiVersions"] == ["v1"]
                   for r in hook["rules"])
    mutating = by_service[0]
    assert mutating["webhooks"][0]["clientConfig"]["service"] == {
        "namespace": NS, "name": "operator-webhook-service", "path": "/mutating-custom-resource", "port": 443}

    deployed = {doc["kind"]: doc for doc in yaml.safe_load_all((REPO / "deploy" / "webhook.yaml").read_text())}
    for ours in by_service:
        theirs = deployed[ours["kind"]]["webhooks"][0]
        mine = ours["webhooks"][0]
        assert {k: v for k, v in mine["clientConfig"].items() if k != "caBundle"} == theirs["clientConfig"]
        assert _rule_set(mine["rules"]) == _rule_set(theirs["rules"])

    by_url = webhook_configurations(pem, url_base="https://127.0.0.1:9443/")
    assert by_url[1]["webhooks"][0]["clientConfig"]["url"] == "https://127.0.0.1:9443/validating-custom-resource"
    with pytest.raises(ValueError, match="exactly one"):
        webhook_configurations(pem)
    with pytest.raises(ValueError, match="https://"):
        webhook_configurations(pem, url_base="http://127.0.0.1:9443")


def _rule_set(rules: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(op, res) for rule in rules for op in rule["operations"] for res in rule["resources"]}


# --- through the embedded API server --------------------------------------------------------------------------


@dataclass
class FakeOperator:
    """The part of `controller.service.Operator` that `webhook.start` uses."""

    client: AsyncClient
    view: ClusterView
    settings: Any = None
    ports: dict[str, int] = field(default_factory=dict)
    runners: list[web.AppRunner] = field(default_factory=list)

    def __post_init__(self) -> None:
        from vdpa_operator.controller.settings import OperatorSettings

        self.settings = OperatorSettings(namespace=NS, nics=DEFAULT_SUPPORTED_NICS)

    @property
    def cache(self) -> FakeOperator:
        return self

    def admission_view(self) -> ClusterView:
        return self.view

    async def serve(self, name: str, app: web.Application, host: str, port: int, ssl: Any = None) -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, port, ssl_context=ssl).start()
        self.runners.append(runner)
        self.ports[name] = runner.addresses[0][1]


def test_api_server_calls_the_registered_webhook_and_reports_its_verdict(tmp_path: Path) -> None:
    server = serve_in_thread(tmp_path / "kubeconfig", store=default_store(namespaces=(*BUILTIN_NAMESPACES, NS)))
    bad = {**SEED, "metadata": {"name": "bad", "namespace": NS},
           "spec": {**SEED["spec"], "deviceType": "vfio-pci"}}

    async def scenario() -> tuple[dict[str, Any], str]:
        client = AsyncClient(KubeConfig.from_file(server.kubeconfig_path), namespace=NS)
        operator = FakeOperator(client, ClusterView(nodes=(worker(CAPABLE),), node_states=(cx6_state(),)))
        try:
            options = WebhookOptions(cert_dir=tmp_path / "certs", host="127.0.0.1", port=0,
                                     local_url_host="127.0.0.1")
            await start(operator, options)
            await start(operator, options)  # a restart: same certificate, configurations patched in place
            created = await client.create(PolicyResource.from_dict(SEED))
            with pytest.raises(ApiError) as denied:
                await client.create(PolicyResource.from_dict(bad))
            return dict(created["spec"]), denied.value.status.message or ""
        finally:
            for runner in operator.runners:
                await runner.cleanup()
            await client.close()

    try:
        spec, message = run(scenario)
    finally:
        server.stop()
    assert spec["isRdma"] is False and spec["priority"] == 10
    assert message == (
        f'admission webhook "{WEBHOOK_NAME}" denied the request: '
        "'deviceType: vfio-pci' conflicts with 'virtio'; Set 'deviceType' to (string)'netdevice' Or Remove 'vdpaType'"
    )
