"""The admission webhook server: upstream's `/mutating-custom-resource` and `/validating-custom-resource`
(`cmd/webhook/start.go`, `pkg/webhook/webhook.go`) over HTTPS, answering with `api.admission`.

Wire behaviour, as upstream's unless noted:
- POST an `admission.k8s.io/v1` AdmissionReview with Content-Type application/json; the answer echoes
  `request.uid`. A body that is not such a review is HTTP 400 with the reason in plain text (upstream answers 400
  too, but an empty 200 for a wrong Content-Type and a crash for a review without `request`).
- Mutating: policies on CREATE/UPDATE get upstream's JSON patch (priority 99 and isRdma false when absent,
  isRdma true for InfiniBand unless vfio-pci) as `patchType: JSONPatch` with the patch base64-encoded. An empty
  patch is left out (upstream sends `[]`, which the API server applies as nothing). Everything else: allowed.
- Validating: the object (`oldObject` on DELETE) is read as upstream's `json.Unmarshal` reads it (unknown fields
  ignored) and judged by `admission.validate`; a kind this project does not validate is allowed. Policies and the
  operator config get the live cluster from the `ClusterViewSource` the server was given.
- A denial carries the rule texts in `status.reason` (Go field `Result.Reason`), so kubectl prints
  `admission webhook "operator-webhook.sriovnetwork.openshift.io" denied the request: <text>`. Upstream stops at
  the first failing rule; here every failing rule is reported, one per line (Go `errors.Join` style), so with a
  single failure the text is upstream's exactly. `status.details.causes` adds each rule's field and fix.
  An object that cannot be read is denied with the reason in `status.message`, as upstream's
  `toV1AdmissionResponse`. Warnings go in `warnings`.

`webhook_configurations` renders the two admissionregistration objects the operator keeps up to date
(`bindata/manifests/operator-webhook/003-webhook.yaml`, with `admissionReviewVersions: [v1]` only: upstream also
lists v1beta1 but can decode only v1). `start` is the operator's hook: certificate, listener, registration; the
same server also answers the routes it is given (the pod resource injector's `/mutate`, `injector_webhook`), and
`Endpoint` is how any configuration served here names it.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web
from lightkube.generic_resource import create_global_resource
from lightkube.types import PatchType

from vdpa_operator.api import crd
from vdpa_operator.api.admission import ClusterView, Operation, Settings, Verdict, mutate_policy, validate
from vdpa_operator.api.decoding import DecodeError, decode
from vdpa_operator.api.golang import marshal
from vdpa_operator.api.models import (
    GROUP,
    OVSNetwork,
    SriovIBNetwork,
    SriovNetwork,
    SriovNetworkNodePolicy,
    SriovNetworkPoolConfig,
    SriovOperatorConfig,
)
from vdpa_operator.bounded import loads_json
from vdpa_operator.controller.certs import (
    CA_FILE,
    CERT_FILE,
    KEY_FILE,
    ServingCertificate,
    ensure_serving_certificate,
)
from vdpa_operator.errors import VdpaOperatorError
from vdpa_operator.fileio import SECRET_MODE, write_atomically
from vdpa_operator.kubeclient import (
    ClusterError,
    SecretResource,
    api_errors,
    delete_if_present,
    get_or_none,
    http_code,
)

log = logging.getLogger(__name__)

MUTATING_PATH = "/mutating-custom-resource"
VALIDATING_PATH = "/validating-custom-resource"
READY_PATH = "/readyz"
WEBHOOK_NAME = "operator-webhook.sriovnetwork.openshift.io"
CONFIGURATION_NAME = "sriov-operator-webhook-config"
"""Upstream `consts.OperatorWebHookName`: the name of both the mutating and the validating configuration."""
SERVICE_NAME = "operator-webhook-service"
SERVICE_PORT = 443
LISTEN_PORT = 6443
"""Upstream's service maps port 443 to this container port."""
REVIEW_API_VERSION = "admission.k8s.io/v1"
MAX_REVIEW_BYTES = 8 * 1024 * 1024
"""A review carries the object and its old version, each up to etcd's 1.5 MiB."""

ClusterViewSource = Callable[[], Awaitable[ClusterView]]
"""What the dynamic rules read, fetched per review: nodes, node states, policies, the stored operator config."""

VALIDATED_KINDS = {
    model.KIND: model
    for model in (
        SriovNetworkNodePolicy, SriovOperatorConfig, SriovNetworkPoolConfig, SriovNetwork, SriovIBNetwork, OVSNetwork
    )
}
"""Upstream switches on `request.kind.kind` alone."""
_NEEDS_CLUSTER = (SriovNetworkNodePolicy.KIND, SriovOperatorConfig.KIND)
_CONFIGURATION_RESOURCES: dict[str, Any] = {
    kind: create_global_resource("admissionregistration.k8s.io", "v1", kind, kind.lower() + "s")
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
}


class ReviewError(VdpaOperatorError, ValueError):
    """The body is not an admission.k8s.io/v1 AdmissionReview request (answered with HTTP 400)."""


@dataclass(frozen=True)
class AdmissionRequest:
    uid: str
    kind: str
    """`request.kind.kind`."""
    operation: Operation
    obj: dict[str, Any] | None
    old: dict[str, Any] | None
    namespace: str = ""
    """`request.namespace`: where a namespaced object is written (its metadata may leave it out)."""

    @property
    def subject(self) -> dict[str, Any] | None:
        """The object judged: the old one for DELETE (upstream reads `OldObject` then)."""
        return self.old if self.operation == Operation.DELETE else self.obj


def parse_review(body: bytes) -> AdmissionRequest:
    """The request of an AdmissionReview body; ReviewError says what is wrong with it."""
    try:
        review = loads_json(body, "the AdmissionReview")
    except ValueError as err:  # not UTF-8, not JSON, or past the loader's limits (ParseError)
        raise ReviewError(f"Request could not be decoded: the body is not JSON ({err})") from None
    if not isinstance(review, dict):
        raise ReviewError("Request could not be decoded: expected an AdmissionReview object")
    api_version, kind = review.get("apiVersion"), review.get("kind")
    if (api_version, kind) != (REVIEW_API_VERSION, "AdmissionReview"):
        raise ReviewError(
            f"Unsupported group version kind: {api_version}/{kind}; send an {REVIEW_API_VERSION} AdmissionReview"
        )
    request = review.get("request")
    if not isinstance(request, dict):
        raise ReviewError("AdmissionReview has no request object")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise ReviewError("AdmissionReview request.uid is missing; the API server needs it echoed")
    kind_ref = request.get("kind")
    request_kind = kind_ref.get("kind") if isinstance(kind_ref, dict) else None
    if not isinstance(request_kind, str):
        raise ReviewError("AdmissionReview request.kind.kind is missing")
    try:
        operation = Operation(str(request.get("operation")))
    except ValueError:
        raise ReviewError(
            f"AdmissionReview request.operation {request.get('operation')!r} is not one of CREATE, UPDATE, DELETE"
        ) from None
    obj, old = request.get("object"), request.get("oldObject")
    for where, value in (("object", obj), ("oldObject", old)):
        if value is not None and not isinstance(value, dict):
            raise ReviewError(f"AdmissionReview request.{where} is not an object")
    namespace = request.get("namespace")
    parsed = AdmissionRequest(uid, request_kind, operation, obj, old, namespace if isinstance(namespace, str) else "")
    if parsed.subject is None:
        where = "oldObject" if operation == Operation.DELETE else "object"
        raise ReviewError(f"AdmissionReview request.{where} is missing for {operation.value}")
    return parsed


def review_response(uid: str, response: Mapping[str, Any]) -> dict[str, Any]:
    return {"apiVersion": REVIEW_API_VERSION, "kind": "AdmissionReview", "response": {"uid": uid, **response}}


def _denial_status(verdict: Verdict) -> dict[str, Any]:
    return {
        "metadata": {},
        "reason": "\n".join(problem.message for problem in verdict.errors),
        "details": {"causes": [
            {"reason": "FieldValueInvalid", "field": problem.field, "message": f"{problem.message} ({problem.fix})"}
            for problem in verdict.errors
        ]},
    }


def mutation_response(request: AdmissionRequest) -> dict[str, Any]:
    """Upstream's mutating webhook, which only policies reach (CREATE and UPDATE)."""
    response: dict[str, Any] = {"allowed": True}
    if request.kind != SriovNetworkNodePolicy.KIND or request.operation == Operation.DELETE or request.obj is None:
        return response
    patch = mutate_policy(request.obj)
    if patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(marshal(patch, sort_keys=True).encode()).decode()
    return response


async def validation_response(
    request: AdmissionRequest, cluster_view: ClusterViewSource, settings: Settings
) -> dict[str, Any]:
    """Upstream's validating webhook for one request."""
    model = VALIDATED_KINDS.get(request.kind)
    raw = request.subject
    if model is None or raw is None:
        return {"allowed": True}
    try:
        decoded = decode(raw, lenient=True)
    except DecodeError as err:
        return {"allowed": False, "status": {"metadata": {}, "message": str(err)}}
    if decoded.obj is None:
        issues = "; ".join(str(issue) for issue in decoded.schema_issues)
        return {"allowed": False, "status": {"metadata": {}, "message": f"{decoded.kind} {decoded.name}: {issues}"}}
    obj = decoded.model.model_validate(crd.crd_defaults(decoded.model, decoded.raw), by_name=False)
    cluster: ClusterView | None = None
    if request.kind in _NEEDS_CLUSTER and request.operation != Operation.DELETE:
        try:
            cluster = await cluster_view()
        except Exception as err:  # any failure to read the cluster denies, as upstream's list errors do
            log.warning("cannot read the cluster to validate %s %s: %s", request.kind, decoded.name, err)
            return {"allowed": False, "status": {
                "metadata": {}, "reason": f"cannot read the cluster to validate {request.kind}: {err}",
            }}
    verdict = validate(obj, request.operation, cluster, settings)
    response: dict[str, Any] = {"allowed": verdict.allowed}
    if not verdict.allowed:
        log.info("denied %s %s %s: %s", request.operation.value, request.kind, decoded.name,
                 "; ".join(str(p) for p in verdict.errors))
        response["status"] = _denial_status(verdict)
    if verdict.warnings:
        response["warnings"] = list(verdict.warnings)
    return response


async def read_request(http: web.Request) -> AdmissionRequest:
    content_type = http.headers.get("Content-Type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise ReviewError(f"expect Content-Type application/json, got {content_type or 'none'}")
    return parse_review(await http.read())


def bad_request(err: ReviewError) -> web.Response:
    log.warning("rejected a malformed admission review: %s", err)
    return web.Response(status=400, text=str(err) + "\n")


Handler = Callable[[web.Request], Awaitable[web.Response]]


def webhook_app(cluster_view: ClusterViewSource, settings: Settings,
                routes: Mapping[str, Handler] | None = None) -> web.Application:
    """The webhook's routes, plus `routes` (path → POST handler: the pod injector's); serve it over TLS
    (`certs.ServingCertificate.server_context`)."""

    async def mutate(http: web.Request) -> web.Response:
        try:
            request = await read_request(http)
        except ReviewError as err:
            return bad_request(err)
        return web.json_response(review_response(request.uid, mutation_response(request)))

    async def validate_(http: web.Request) -> web.Response:
        try:
            request = await read_request(http)
        except ReviewError as err:
            return bad_request(err)
        response = await validation_response(request, cluster_view, settings)
        return web.json_response(review_response(request.uid, response))

    async def ready(_http: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application(client_max_size=MAX_REVIEW_BYTES)
    app.router.add_post(MUTATING_PATH, mutate)
    app.router.add_post(VALIDATING_PATH, validate_)
    app.router.add_get(READY_PATH, ready)
    for path, handler in (routes or {}).items():
        app.router.add_post(path, handler)
    return app


# --- Webhook configurations ---------------------------------------------------------------------------------


def _rule(operations: list[str], resources: list[str]) -> dict[str, Any]:
    return {"operations": operations, "apiGroups": [GROUP], "apiVersions": ["v1"], "resources": resources}


@dataclass(frozen=True)
class Endpoint:
    """Where the API server reaches this server and how it checks it: the `clientConfig` of every webhook it
    serves."""

    ca_bundle: bytes
    """The CA (PEM) the serving certificate is signed by."""
    url_base: str | None = None
    """e.g. "https://127.0.0.1:6443" (runs outside the cluster); else `service`."""
    service: tuple[str, str, int] | None = None
    """(namespace, name, port) of the Service in front of the server."""

    def __post_init__(self) -> None:
        if (self.url_base is None) == (self.service is None):
            raise ValueError("give exactly one of url_base (https://host:port) or service (namespace, name, port)")
        if self.url_base is not None and not self.url_base.startswith("https://"):
            raise ValueError(f"url_base {self.url_base!r} must start with https:// (the API server calls webhooks "
                             "over TLS)")

    def client_config(self, path: str) -> dict[str, Any]:
        if self.url_base is not None:
            config: dict[str, Any] = {"url": self.url_base.rstrip("/") + path}
        else:
            assert self.service is not None
            namespace, name, port = self.service
            config = {"service": {"namespace": namespace, "name": name, "path": path, "port": port}}
        config["caBundle"] = base64.b64encode(self.ca_bundle).decode()
        return config


def webhook_configurations(
    ca_bundle: bytes, *, url_base: str | None = None, service: tuple[str, str, int] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Mutating- and ValidatingWebhookConfiguration pointing at this server: by `url_base`
    (e.g. "https://127.0.0.1:6443", local runs) or by `service` (namespace, name, port), with `ca_bundle` (PEM)."""
    endpoint = Endpoint(ca_bundle, url_base, service)

    def webhook(path: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "name": WEBHOOK_NAME,
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "failurePolicy": "Fail",
            "clientConfig": endpoint.client_config(path),
            "rules": rules,
        }

    write, write_delete = ["CREATE", "UPDATE"], ["CREATE", "UPDATE", "DELETE"]
    mutating = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": CONFIGURATION_NAME},
        "webhooks": [webhook(MUTATING_PATH, [_rule(write, [SriovNetworkNodePolicy.PLURAL])])],
    }
    validating = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": CONFIGURATION_NAME},
        "webhooks": [webhook(VALIDATING_PATH, [
            _rule(write_delete, [SriovNetworkNodePolicy.PLURAL]),
            _rule(write_delete, [SriovOperatorConfig.PLURAL]),
            _rule(write_delete, [SriovNetworkPoolConfig.PLURAL]),
            _rule(write, [SriovNetwork.PLURAL]),
            _rule(write, [SriovIBNetwork.PLURAL]),
            _rule(write, [OVSNetwork.PLURAL]),
        ])],
    }
    return mutating, validating


# --- The operator's hook ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookOptions:
    cert_dir: Path
    """Where the CA and serving certificate are kept (see `certs`)."""
    host: str = "127.0.0.1"
    """Where to listen: this machine only unless told ("": every interface, as the Deployment says)."""
    port: int = LISTEN_PORT
    """0: any free port (see `Operator.ports["webhook"]`)."""
    local_url_host: str | None = None
    """Register `https://<this>:<bound port>` instead of the in-cluster service (runs outside the cluster)."""
    extra_names: tuple[str, ...] = ()
    """More DNS names or IPs for the certificate, besides the service's and `local_url_host`."""
    register: bool = True
    """Write the two webhook configurations (with the caBundle) at start."""
    secret: str | None = None
    """A Secret in the operator namespace holding the certificate, so every replica (and every restart) serves
    the same one and the caBundle stays put; None: the certificate lives in `cert_dir` only."""


class _Cache(Protocol):
    def admission_view(self) -> ClusterView: ...


class _OperatorSettings(Protocol):
    @property
    def namespace(self) -> str: ...
    @property
    def admission(self) -> Settings: ...


class WebhookHost(Protocol):
    """What `start` needs from the operator."""

    @property
    def settings(self) -> _OperatorSettings: ...
    @property
    def cache(self) -> _Cache: ...
    @property
    def client(self) -> Any: ...
    @property
    def ports(self) -> dict[str, int]: ...

    async def serve(self, name: str, app: web.Application, host: str, port: int, ssl: Any = None) -> None: ...


def certificate_names(namespace: str, options: WebhookOptions) -> list[str]:
    service = f"{SERVICE_NAME}.{namespace}.svc"
    names = [service, f"{service}.cluster.local", *options.extra_names]
    if options.local_url_host:
        names.append(options.local_url_host)
    return list(dict.fromkeys(names))


async def start(operator: WebhookHost, options: WebhookOptions,
                routes: Mapping[str, Handler] | None = None) -> Endpoint | None:
    """Make or reuse the certificate, serve the webhook (as "webhook" in `operator.ports`, with `routes` besides
    the policy webhooks) and, if asked, point the API server at it: then the endpoint other webhook configurations
    served here name (None when not registering)."""
    namespace = operator.settings.namespace
    names = certificate_names(namespace, options)
    if options.secret:
        certificate = await shared_certificate(operator.client, namespace, options.secret, options.cert_dir, names)
    else:
        certificate = ensure_serving_certificate(options.cert_dir, names)
    settings = operator.settings.admission

    async def cluster_view() -> ClusterView:
        return operator.cache.admission_view()

    app = webhook_app(cluster_view, settings, routes)
    await operator.serve("webhook", app, options.host, options.port, certificate.server_context())
    if not options.register:
        return None
    if options.local_url_host:
        url_base = f"https://{_url_host(options.local_url_host)}:{operator.ports['webhook']}"
        endpoint = Endpoint(certificate.ca_pem, url_base=url_base)
    else:
        endpoint = Endpoint(certificate.ca_pem, service=(namespace, SERVICE_NAME, SERVICE_PORT))
    mutating, validating = webhook_configurations(endpoint.ca_bundle, url_base=endpoint.url_base,
                                                  service=endpoint.service)
    await register_webhooks(operator.client, mutating, validating)
    return endpoint


SECRET_KEYS = (CA_FILE, CERT_FILE, KEY_FILE)


async def shared_certificate(client: Any, namespace: str, name: str, directory: Path, names: Sequence[str],
                             *, attempts: int = 3) -> ServingCertificate:
    """The serving certificate kept in Secret `namespace/name`: the Secret's files are used when still good for
    `names`, else a new certificate is made and written back. Replicas starting together race on the create
    (or update): the loser reads the winner's Secret and uses that."""
    target = f"Secret {namespace}/{name}"
    for _ in range(attempts):
        secret = await get_or_none(client, SecretResource, name, namespace=namespace)
        stored = dict((secret or {}).get("data") or {})
        if all(key in stored for key in SECRET_KEYS):
            directory.mkdir(parents=True, exist_ok=True)
            for key in SECRET_KEYS:
                write_atomically(directory / key, base64.b64decode(stored[key]),
                                 mode=SECRET_MODE if key == KEY_FILE else 0o644)
        certificate = ensure_serving_certificate(directory, names)
        wanted = {key: base64.b64encode((directory / key).read_bytes()).decode() for key in SECRET_KEYS}
        if {k: stored.get(k) for k in SECRET_KEYS} == wanted:
            return certificate
        body = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                "metadata": {**((secret or {}).get("metadata") or {}), "name": name, "namespace": namespace},
                "data": {**stored, **wanted}}
        try:
            with api_errors("create" if secret is None else "update", target):
                if secret is None:
                    await client.create(SecretResource.from_dict(body))
                else:
                    await client.replace(SecretResource.from_dict(body))
            log.info("stored the webhook certificate in %s", target)
            return certificate
        except ClusterError as err:
            if http_code(err) != 409:
                raise
            log.info("another replica wrote %s first; using its certificate", target)
    raise ClusterError(f"{target}: kept changing while the webhook certificate was being stored; will retry")


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def register_webhooks(client: Any, *configurations: Mapping[str, Any]) -> None:
    """Create each configuration, or replace the `webhooks` of the stored one (a merge patch, so labels and
    annotations set by the deployment stay)."""
    for configuration in configurations:
        kind = configuration["kind"]
        resource = _CONFIGURATION_RESOURCES[kind]
        name = configuration["metadata"]["name"]
        try:
            with api_errors("patch", f"{kind} {name}"):
                await client.patch(resource, name, {"webhooks": configuration["webhooks"]},
                                   patch_type=PatchType.MERGE)
        except ClusterError as err:
            if http_code(err) != 404:
                raise
            with api_errors("create", f"{kind} {name}"):
                await client.create(resource.from_dict(dict(configuration)))
        log.info("registered %s %s", kind, name)


async def unregister_webhook(client: Any, kind: str, name: str) -> bool:
    """Delete one webhook configuration; False when it was not there."""
    deleted = await delete_if_present(client, _CONFIGURATION_RESOURCES[kind], name)
    if deleted:
        log.info("unregistered %s %s", kind, name)
    return deleted
