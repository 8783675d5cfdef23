"""Admission webhooks, called the way kube-apiserver calls them.

On every create, update, patch and delete the server reads the stored `admissionregistration.k8s.io/v1`
Mutating- and ValidatingWebhookConfigurations and, for each webhook whose rules, namespaceSelector and
objectSelector match, POSTs an `admission.k8s.io/v1` AdmissionReview over HTTPS, checking the server's
certificate against `clientConfig.caBundle`. Mutating webhooks run one after another (configurations sorted by
name, then webhooks in their listed order) and their JSONPatch responses are applied; validating webhooks then
run in parallel. Denials, call failures and warnings reach the client as kube-apiserver reports them
(`k8s.io/apiserver/pkg/admission/plugin/webhook`: `ToStatusErr`, `ErrCallingWebhook`, `failurePolicy`).

Where a service webhook is reached: a `clientConfig.service` is dialled at the address the server was given for
(namespace, name) (`services`, "host:port"), else at 127.0.0.1 on the service port (443 unless set). The TLS
server name is always `<name>.<namespace>.svc`, as in a cluster, so a webhook certificate made for the service
works unchanged.

The store's write pipeline (`Store.write`) calls `Webhooks.mutate` after decoding and defaulting and
`Webhooks.validate` after schema validation, outside its lock, so a webhook may read the API while it decides.

Not modelled: `reinvocationPolicy: IfNeeded` (each mutating webhook runs once), `matchPolicy: Equivalent` (each
resource is served at one version here), `matchConditions` (CEL; a webhook that has them is called as if it had
none), `admissionReviewVersions` without "v1" (a call error), audit annotations.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import functools
import json
import logging
import ssl
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from vdpa_operator.api.jsonpatch import JsonPatchError, apply_json_patch
from vdpa_operator.sim.apiserver.errors import StatusError
from vdpa_operator.sim.apiserver.store import AdmissionAttributes, Store

log = logging.getLogger(__name__)

GROUP = "admissionregistration.k8s.io"
MUTATING = "mutatingwebhookconfigurations"
VALIDATING = "validatingwebhookconfigurations"
_EXEMPT_KINDS = frozenset({
    "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding", "MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding",
})
"""kube-apiserver never sends its own admission configuration through webhooks (a webhook could lock itself in)."""
DEFAULT_TIMEOUT_SECONDS = 10
DEFAULT_SERVICE_PORT = 443

CREATE, UPDATE, DELETE = "CREATE", "UPDATE", "DELETE"


@dataclass(frozen=True)
class _Hook:
    configuration: str
    spec: Mapping[str, Any]

    @property
    def name(self) -> str:
        return str(self.spec.get("name", ""))


class _CallError(Exception):
    """The webhook could not be called or answered nonsense (`ErrCallingWebhook`): failurePolicy decides."""

    def __init__(self, webhook: str, reason: str) -> None:
        super().__init__(f'failed calling webhook "{webhook}": {reason}')


class _Denied(StatusError):
    """A webhook's refusal: its own Status, with the message kube-apiserver's `ToStatusErr` builds."""

    def __init__(self, webhook: str, result: Mapping[str, Any] | None) -> None:
        result = result if isinstance(result, Mapping) else {}
        denied_by = f'admission webhook "{webhook}" denied the request'
        raw_code = result.get("code")
        code = raw_code if isinstance(raw_code, int) else 0
        if result.get("message"):
            message = f"{denied_by}: {result['message']}"
        elif result.get("reason"):
            message = f"{denied_by}: {result['reason']}"
        else:
            message = f"{denied_by} without explanation"
        super().__init__(code if code >= 400 else 400, str(result.get("reason") or ""), message)
        self._details = result.get("details") if isinstance(result.get("details"), Mapping) else None

    def status(self) -> dict[str, Any]:
        out = super().status()
        if not out["reason"]:
            del out["reason"]  # omitempty, as the Go Status
        if self._details:
            out["details"] = dict(self._details)
        return out


def internal_error(message: str) -> StatusError:
    return StatusError(500, "InternalError", f"Internal error occurred: {message}")


class Webhooks:
    """Calls the webhooks the store's configurations name. One per server; safe to share between requests."""

    def __init__(self, store: Store, services: Mapping[tuple[str, str], str] | None = None) -> None:
        self.store = store
        self.services = dict(services or {})
        """(namespace, service name) → "host:port" where that service's webhook listens."""

    def configured(self) -> bool:
        """Whether any webhook configuration exists (else writes skip admission entirely)."""
        for plural in (MUTATING, VALIDATING):
            rtype = self.store.registry.lookup(GROUP, "v1", plural)
            if rtype is not None and self.store.list(rtype, None, lambda obj: True)[0]:
                return True
        return False

    async def mutate(self, attrs: AdmissionAttributes) -> dict[str, Any] | None:
        """Run the matching mutating webhooks in order; the object they leave (attrs.object is updated too)."""
        for hook in self._hooks(MUTATING, attrs):
            try:
                response = await self._call(hook, attrs, mutating=True)
            except _CallError as err:
                if hook.spec.get("failurePolicy", "Fail") == "Ignore":
                    log.warning("failing open: %s", err)
                    continue
                raise internal_error(str(err)) from None
            if response is not None:
                attrs.object = self._patched(hook, attrs, response)
        return attrs.object

    async def validate(self, attrs: AdmissionAttributes) -> None:
        """Run the matching validating webhooks in parallel; the first refusal (in webhook order) is raised."""
        hooks = list(self._hooks(VALIDATING, attrs))
        results = await asyncio.gather(*(self._validate_one(h, attrs) for h in hooks), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _validate_one(self, hook: _Hook, attrs: AdmissionAttributes) -> None:
        try:
            await self._call(hook, attrs, mutating=False)
        except _CallError as err:
            if hook.spec.get("failurePolicy", "Fail") == "Ignore":
                log.warning("failing open: %s", err)
                return
            raise internal_error(str(err)) from None

    # --- which webhooks -----------------------------------------------------------------------------------------

    def _hooks(self, plural: str, attrs: AdmissionAttributes) -> Iterable[_Hook]:
        if attrs.rtype.group == GROUP and attrs.rtype.kind in _EXEMPT_KINDS:
            return []
        rtype = self.store.registry.lookup(GROUP, "v1", plural)
        if rtype is None:
            return []
        configurations, _ = self.store.list(rtype, None, lambda obj: True)
        configurations.sort(key=lambda c: c["metadata"]["name"])
        hooks = [_Hook(c["metadata"]["name"], w) for c in configurations for w in c.get("webhooks") or ()]
        return [h for h in hooks if self._should_call(h, attrs)]

    def _should_call(self, hook: _Hook, attrs: AdmissionAttributes) -> bool:
        if not any(rule_matches(rule, attrs) for rule in hook.spec.get("rules") or ()):
            return False
        if not self._namespace_matches(hook.spec.get("namespaceSelector"), attrs):
            return False
        object_selector = hook.spec.get("objectSelector")
        return (not object_selector or selector_matches(object_selector, _labels(attrs.object))
                or selector_matches(object_selector, _labels(attrs.old_object)))

    def _namespace_matches(self, selector: Mapping[str, Any] | None, attrs: AdmissionAttributes) -> bool:
        """A cluster-scoped object (not a Namespace) always matches; a Namespace is judged by its own new labels
        on create and update; anything else by its Namespace's labels (404 if that namespace does not exist)."""
        is_namespace = attrs.rtype.group == "" and attrs.rtype.plural == "namespaces"
        if not attrs.namespace and not is_namespace:
            return True
        if not selector or not (selector.get("matchLabels") or selector.get("matchExpressions")):
            return True
        if is_namespace and not attrs.subresource and attrs.operation in (CREATE, UPDATE):
            labels = _labels(attrs.object)
        else:
            ns_type = self.store.registry.lookup("", "v1", "namespaces")
            if ns_type is None:
                return True
            labels = _labels(self.store.get(ns_type, "", attrs.namespace or attrs.name))
        return selector_matches(selector, labels)

    # --- the call -----------------------------------------------------------------------------------------------

    async def _call(self, hook: _Hook, attrs: AdmissionAttributes, *, mutating: bool) -> Mapping[str, Any] | None:
        """POST one AdmissionReview; the verified response (None when the request is allowed unchanged)."""
        spec = hook.spec
        if attrs.dry_run:
            side_effects = spec.get("sideEffects")
            if side_effects is None:
                raise _CallError(hook.name, "Webhook SideEffects is nil")
            if side_effects not in ("None", "NoneOnDryRun"):
                raise StatusError(400, "BadRequest", f'admission webhook "{hook.name}" does not support dry run')
        if "v1" not in (spec.get("admissionReviewVersions") or ()):
            raise _CallError(hook.name, "webhook does not accept known AdmissionReview versions (this server "
                                        "speaks v1 only: add \"v1\" to admissionReviewVersions)")
        timeout = spec.get("timeoutSeconds") or DEFAULT_TIMEOUT_SECONDS
        target = self._target(hook, timeout)
        uid = str(uuid.uuid4())
        review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": _request(uid, attrs)}
        try:
            context = _ssl_context(spec.get("clientConfig", {}).get("caBundle") or "")
        except (ValueError, ssl.SSLError) as err:
            raise _CallError(hook.name, f"could not get REST client: clientConfig.caBundle: {err}") from None
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
                session.post(target.dial_url, json=review, ssl=context, server_hostname=target.host,
                             headers={"Host": target.netloc, "Accept": "application/json"}) as resp,
            ):
                body = await resp.read()
                status = resp.status
        except TimeoutError:
            raise _CallError(hook.name, f'failed to call webhook: Post "{target.url}": context deadline exceeded') \
                from None
        except aiohttp.ClientConnectorCertificateError as err:
            reason = f"tls: failed to verify certificate: {err.certificate_error}"
            raise _CallError(hook.name, f'failed to call webhook: Post "{target.url}": {reason}') from None
        except (aiohttp.ClientError, OSError) as err:
            raise _CallError(hook.name, f'failed to call webhook: Post "{target.url}": {err}') from None
        if status != 200:
            raise _CallError(hook.name, f"failed to call webhook: {_error_text(status, body)}")
        try:
            answer = json.loads(body)
        except ValueError as err:
            raise _CallError(hook.name, f"failed to call webhook: the response is not JSON: {err}") from None
        response = _verified(hook.name, uid, answer, mutating)
        for warning in response.get("warnings") or ():
            if isinstance(warning, str) and warning not in attrs.warnings:
                attrs.warnings.append(warning)
        if not response.get("allowed"):
            raise _Denied(hook.name, response.get("status"))
        return response if response.get("patch") else None

    def _target(self, hook: _Hook, timeout: int) -> _Target:
        config = hook.spec.get("clientConfig") or {}
        query = f"timeout={timeout}s"
        if config.get("url"):
            url = str(config["url"])
            parts = urlsplit(url)
            if parts.scheme != "https" or not parts.hostname:
                raise _CallError(hook.name, f"clientConfig.url {url!r} must be an https:// URL")
            full = f"{url}{'&' if parts.query else '?'}{query}"
            return _Target(full, full, parts.hostname, parts.netloc)
        service = config.get("service") or {}
        namespace, name = service.get("namespace", ""), service.get("name", "")
        if not namespace or not name:
            raise _CallError(hook.name, "clientConfig needs a url or a service with namespace and name")
        port = int(service.get("port") or DEFAULT_SERVICE_PORT)
        path = service.get("path") or "/"
        host = f"{name}.{namespace}.svc"
        address = self.services.get((namespace, name), f"127.0.0.1:{port}")
        return _Target(f"https://{host}:{port}{path}?{query}", f"https://{address}{path}?{query}", host,
                       f"{host}:{port}")

    def _patched(self, hook: _Hook, attrs: AdmissionAttributes, response: Mapping[str, Any]) -> dict[str, Any]:
        try:
            ops = json.loads(base64.b64decode(response["patch"], validate=True))
        except (binascii.Error, ValueError, TypeError) as err:
            raise internal_error(str(_CallError(
                hook.name, f"received undecodable patch in webhook response: {err}"))) from None
        if not ops:
            return attrs.object or {}
        if attrs.object is None:
            raise internal_error(f'admission webhook "{hook.name}" attempted to modify the object, which is not '
                                 "supported for this operation")
        if not isinstance(ops, list):
            raise internal_error(str(_CallError(
                hook.name, "received undecodable patch in webhook response: not a list of JSON patch operations")))
        try:
            return apply_json_patch(attrs.object, ops)
        except (JsonPatchError, ValueError) as err:
            raise internal_error(str(err)) from None


@dataclass(frozen=True)
class _Target:
    url: str
    """The URL as the webhook configuration names it (what error messages show)."""
    dial_url: str
    """Where the request actually goes (a service's resolved address)."""
    host: str
    """The TLS server name the certificate must carry."""
    netloc: str


def _request(uid: str, attrs: AdmissionAttributes) -> dict[str, Any]:
    rtype = attrs.rtype
    gvk = {"group": rtype.group, "version": rtype.version, "kind": rtype.kind}
    gvr = {"group": rtype.group, "version": rtype.version, "resource": rtype.plural}
    request: dict[str, Any] = {
        "uid": uid,
        "kind": gvk,
        "resource": gvr,
        "requestKind": gvk,
        "requestResource": gvr,
        "name": attrs.name,
        "operation": attrs.operation,
        "userInfo": dict(attrs.user),
        "object": copy.deepcopy(attrs.object),
        "oldObject": copy.deepcopy(attrs.old_object),
        "dryRun": attrs.dry_run,
        "options": attrs.options,
    }
    if attrs.subresource:
        request["subResource"] = request["requestSubResource"] = attrs.subresource
    if attrs.namespace:
        request["namespace"] = attrs.namespace
    elif rtype.group == "" and rtype.plural == "namespaces":
        request["namespace"] = attrs.name  # kube-apiserver's request info names a Namespace's own namespace so
    return request


def _verified(webhook: str, uid: str, answer: Any, mutating: bool) -> Mapping[str, Any]:
    """`VerifyAdmissionResponse`: the response must be a v1 AdmissionReview for our uid, with a JSONPatch (only
    from a mutating webhook) and its patchType together."""

    def invalid(reason: str) -> _CallError:
        return _CallError(webhook, f"received invalid webhook response: {reason}")

    if not isinstance(answer, Mapping) or not isinstance(answer.get("response"), Mapping):
        raise invalid("webhook response was absent")
    response = answer["response"]
    if response.get("uid") != uid:
        raise invalid(f'expected response.uid="{uid}", got "{response.get("uid", "")}"')
    gvk = f"{answer.get('apiVersion', '')}, Kind={answer.get('kind', '')}"
    if gvk != "admission.k8s.io/v1, Kind=AdmissionReview":
        raise invalid(f"expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got {gvk}")
    patch, patch_type = response.get("patch"), response.get("patchType")
    if mutating:
        if patch and patch_type is None:
            raise invalid("webhook returned response.patch but not response.patchType")
        if not patch and patch_type is not None:
            raise invalid("webhook returned response.patchType but not response.patch")
        if patch and patch_type != "JSONPatch":
            raise _CallError(webhook, f'unsupported patch type "{patch_type}"')
    elif patch:
        raise invalid("validating webhook may not return response.patch")
    elif patch_type is not None:
        raise invalid("validating webhook may not return response.patchType")
    return dict(response)


def _error_text(status: int, body: bytes) -> str:
    """What client-go says of a non-2xx answer: the Status message if the body is one."""
    try:
        decoded = json.loads(body)
    except ValueError:
        decoded = None
    if isinstance(decoded, Mapping) and decoded.get("kind") == "Status" and decoded.get("message"):
        return str(decoded["message"])
    return f"the server responded with the status code {status} but did not return more information"


@functools.lru_cache(maxsize=64)
def _ssl_context(ca_bundle: str) -> ssl.SSLContext:
    """Verify the webhook against the configuration's CA bundle (base64 PEM), or the system roots without one."""
    if not ca_bundle:
        return ssl.create_default_context()
    pem = base64.b64decode(ca_bundle, validate=True).decode("ascii")
    return ssl.create_default_context(cadata=pem)


# --- label selectors (metav1.LabelSelector) -----------------------------------------------------------------------


def _labels(obj: Mapping[str, Any] | None) -> Mapping[str, str]:
    labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
    return labels if isinstance(labels, Mapping) else {}


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """matchLabels and matchExpressions (In, NotIn, Exists, DoesNotExist), all of which must hold."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or ():
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or ()
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            raise internal_error(f'"{op}" is not a valid label selector operator')
    return True


# --- rules (admissionregistration/v1 RuleWithOperations) ----------------------------------------------------------


def _exact_or_wildcard(items: Sequence[str], requested: str) -> bool:
    return any(item in ("*", requested) for item in items)


def rule_matches(rule: Mapping[str, Any], attrs: AdmissionAttributes) -> bool:
    """kube-apiserver's `rules.Matcher`: scope, operation, group, version, and resource/subresource
    ("pods" only the main resource, "pods/status" one subresource, "pods/*" and "*/*" everything)."""
    rtype = attrs.rtype
    is_namespace = rtype.group == "" and rtype.plural == "namespaces"
    scope = rule.get("scope") or "*"
    if scope == "Namespaced" and (is_namespace or not attrs.namespace):
        return False
    if scope == "Cluster" and not (is_namespace or not attrs.namespace):
        return False
    if scope not in ("*", "Namespaced", "Cluster"):
        return False
    if not _exact_or_wildcard(rule.get("operations") or (), attrs.operation):
        return False
    if not _exact_or_wildcard(rule.get("apiGroups") or (), rtype.group):
        return False
    if not _exact_or_wildcard(rule.get("apiVersions") or (), rtype.version):
        return False
    for resource in rule.get("resources") or ():
        res, _, sub = str(resource).partition("/")
        if res in ("*", rtype.plural) and sub in ("*", attrs.subresource):
            return True
    return False
