"""The network-resources-injector as the operator serves it: the `/mutate` route on the operator's webhook
server, and its `MutatingWebhookConfiguration`, kept while `SriovOperatorConfig` `default` says
`enableInjector: true` and deleted otherwise (upstream's operator renders `bindata/manifests/webhook` then, or
deletes those objects).

Upstream runs the injector as its own DaemonSet behind `network-resources-injector-service`; here the operator's
server answers it, so the configuration names that server (`operator-webhook-service`, whose certificate the API
server already trusts). The configuration keeps upstream's name, webhook name, path, rules (pods, CREATE) and
`failurePolicy: Ignore` — with the `resourceInjectorMatchCondition` feature gate, `Fail` plus the CEL condition
that limits the calls to pods with a `k8s.v1.cni.cncf.io/networks` annotation, as upstream. Like upstream, no
namespace or object selector: pods in every namespace, the operator's own included, are seen.

NADs are read from the operator's NAD informer; one not there yet (created a moment ago) is fetched from the API,
as upstream's cache falls back to a GET.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from aiohttp import web

from vdpa_operator.api.models import SriovOperatorConfig
from vdpa_operator.controller.injector import (
    InjectionRefused,
    NadAnnotations,
    NadMissing,
    NetworkSelection,
    injection,
    not_found,
    pod_networks,
)
from vdpa_operator.controller.webhook import (
    Endpoint,
    Handler,
    ReviewError,
    bad_request,
    read_request,
    register_webhooks,
    review_response,
    unregister_webhook,
)
from vdpa_operator.kubeclient import ClusterError, Informer, NadResource, get_or_none

log = logging.getLogger(__name__)

PATH = "/mutate"
CONFIGURATION_NAME = "network-resources-injector-config"
"""Upstream `consts.InjectorWebHookName`."""
WEBHOOK_NAME = "network-resources-injector-config.k8s.io"
MATCH_CONDITION_GATE = "resourceInjectorMatchCondition"
KIND = "MutatingWebhookConfiguration"

NadLookup = Callable[[str, str], Awaitable[NadAnnotations | NadMissing]]
"""(namespace, name) → the NAD's annotations, or why it could not be had."""


def nad_lookup(informer: Informer, client: Any) -> NadLookup:
    """The informer's copy, else a GET (a NAD created just before its pod may not have reached the watch)."""

    async def lookup(namespace: str, name: str) -> NadAnnotations | NadMissing:
        raw = informer.get(name, namespace)
        if raw is None:
            try:
                raw = await get_or_none(client, NadResource, name, namespace=namespace)
            except ClusterError as err:
                return NadMissing(str(err))
        if raw is None:
            return not_found(name)
        annotations = (raw.get("metadata") or {}).get("annotations") or {}
        return {str(k): str(v) for k, v in annotations.items()}

    return lookup


async def review_pod(pod: Mapping[str, Any], namespace: str, lookup: NadLookup) -> dict[str, Any]:
    """The AdmissionReview `response` (without uid) for one pod."""
    try:
        networks = pod_networks(pod, namespace)
        nads = {network.key: await lookup(network.namespace, network.name) for network in _unique(networks)}
        decided = injection(pod, networks, nads)
    except InjectionRefused as err:
        log.info("refused pod %s/%s: %s", namespace, _name(pod), err)
        return {"allowed": False, "status": {"metadata": {}, "message": str(err)}}
    if not decided.patch:
        return {"allowed": True}
    if decided.resources:
        log.info("pod %s/%s: requesting %s", namespace, _name(pod), dict(decided.resources))
    patch = json.dumps(decided.patch, separators=(",", ":")).encode()
    return {"allowed": True, "patchType": "JSONPatch", "patch": base64.b64encode(patch).decode()}


def _unique(networks: Sequence[NetworkSelection]) -> list[NetworkSelection]:
    return list({network.key: network for network in networks}.values())


def _name(pod: Mapping[str, Any]) -> str:
    metadata = pod.get("metadata") or {}
    return str(metadata.get("name") or metadata.get("generateName") or "")


def handler(lookup: NadLookup) -> Handler:
    """The `/mutate` route: pods on CREATE; any other review is allowed unchanged."""

    async def mutate(http: web.Request) -> web.Response:
        try:
            request = await read_request(http)
        except ReviewError as err:
            return bad_request(err)
        if request.kind != "Pod" or request.obj is None or request.operation.value != "CREATE":
            return web.json_response(review_response(request.uid, {"allowed": True}))
        response = await review_pod(request.obj, request.namespace, lookup)
        return web.json_response(review_response(request.uid, response))

    return mutate


def routes(lookup: NadLookup) -> dict[str, Handler]:
    return {PATH: handler(lookup)}


# --- The configuration ---------------------------------------------------------------------------------------


def wanted_configuration(config: SriovOperatorConfig | None, endpoint: Endpoint) -> dict[str, Any] | None:
    """Upstream `003-webhook.yaml` for this server, or None: no injector (no `default` config, or
    `enableInjector` false)."""
    if config is None or not config.spec.enable_injector:
        return None
    webhook: dict[str, Any] = {
        "name": WEBHOOK_NAME,
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "failurePolicy": "Ignore",
        "clientConfig": endpoint.client_config(PATH),
        "rules": [{"operations": ["CREATE"], "apiGroups": ["apps", ""], "apiVersions": ["v1"],
                   "resources": ["pods"]}],
    }
    if config.spec.feature_gates.get(MATCH_CONDITION_GATE):
        webhook["failurePolicy"] = "Fail"
        webhook["matchConditions"] = [{
            "name": "include-networks-annotation",
            "expression": 'has(object.metadata.annotations) && '
                          '"k8s.v1.cni.cncf.io/networks" in object.metadata.annotations',
        }]
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": KIND,
            "metadata": {"name": CONFIGURATION_NAME}, "webhooks": [webhook]}


async def sync_configuration(client: Any, config: SriovOperatorConfig | None, endpoint: Endpoint) -> None:
    """Create or update the injector's configuration, or delete it when the injector is off."""
    wanted = wanted_configuration(config, endpoint)
    if wanted is None:
        await unregister_webhook(client, KIND, CONFIGURATION_NAME)
    else:
        await register_webhooks(client, wanted)
