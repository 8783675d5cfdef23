"""The network controllers: SriovNetwork, SriovIBNetwork and OVSNetwork → NetworkAttachmentDefinition.

The decisions are `render.networks.plan_network` (upstream `genericNetworkReconciler`); this module watches the
three kinds in every namespace (upstream's global manager), plus NADs and Namespaces so that a NAD deleted or
edited by hand is put back and a network waiting for its namespace proceeds when the namespace appears, then
carries the plan's steps out through the API and records an Event per change.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping
from typing import Any

from lightkube import AsyncClient
from lightkube.types import PatchType

from vdpa_operator.api.decoding import decode_from_cluster
from vdpa_operator.api.kube import NetworkAttachmentDefinition
from vdpa_operator.api.models import OVSNetwork, SriovIBNetwork, SriovNetwork
from vdpa_operator.controller.events import Recorder
from vdpa_operator.controller.informer_cache import DecodedCache
from vdpa_operator.controller.loop import KeyedQueue
from vdpa_operator.controller.settings import OperatorSettings
from vdpa_operator.kubeclient import (
    ClusterError,
    Informer,
    NadResource,
    NamespaceResource,
    OVSNetworkResource,
    SriovIBNetworkResource,
    SriovNetworkResource,
    api_errors,
    delete_if_present,
    get_or_none,
    what,
)
from vdpa_operator.render.networks import (
    OWNER_REF_ANNOTATION,
    AnnotateNetwork,
    CreateAttachment,
    DeleteAttachment,
    Network,
    ReplaceAttachment,
    SetFinalizers,
    SetReadyCondition,
    apply_ready_condition,
    plan_network,
    target_namespace,
    write_failed_condition,
)

log = logging.getLogger(__name__)

NetworkKey = tuple[str, str, str]
"""(kind, namespace, name)."""

_KINDS: dict[str, tuple[type[Network], Any]] = {
    SriovNetwork.KIND: (SriovNetwork, SriovNetworkResource),
    SriovIBNetwork.KIND: (SriovIBNetwork, SriovIBNetworkResource),
    OVSNetwork.KIND: (OVSNetwork, OVSNetworkResource),
}


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


class NetworkController:
    """Informers for the three network kinds, NADs and Namespaces, and the `KeyedQueue` that reconciles."""

    def __init__(self, client: AsyncClient, settings: OperatorSettings, recorder: Recorder) -> None:
        self._client = client
        self._settings = settings
        self._recorder = recorder
        self.queue: KeyedQueue[NetworkKey] = KeyedQueue("network", self._reconcile, workers=4,
                                                           backoff=settings.backoff)
        self.networks: dict[str, DecodedCache[Any]] = {}
        for kind, (model, resource) in _KINDS.items():
            informer = Informer(client, resource, on_event=self._network_event(kind))
            self.networks[kind] = DecodedCache(informer, model)
        self.nads = Informer(client, NadResource, on_event=self._nad_event)
        self.namespaces = Informer(client, NamespaceResource, on_event=self._namespace_event)

    @property
    def informers(self) -> list[Informer]:
        return [c.informer for c in self.networks.values()] + [self.nads, self.namespaces]


    # --- what makes a network reconcile ---------------------------------------------------------------------

    def _network_event(self, kind: str) -> Any:
        def handler(_type: str, new: Mapping[str, Any] | None, old: Mapping[str, Any] | None) -> None:
            if new is None and old is None:
                return  # SYNCED: the per-object events already said what changed
            meta = (new or old or {}).get("metadata") or {}
            self.queue.add((kind, meta.get("namespace", ""), meta.get("name", "")))
        return handler

    def _nad_event(self, _type: str, new: Mapping[str, Any] | None, old: Mapping[str, Any] | None) -> None:
        """A NAD written by a network (its owner-ref annotation `<Kind>.<group>/<ns>/<name>`) changed or went."""
        annotations = ((new or old or {}).get("metadata") or {}).get("annotations") or {}
        owner = str(annotations.get(OWNER_REF_ANNOTATION, ""))
        kind_group, _, rest = owner.partition("/")
        namespace, _, name = rest.partition("/")
        kind = kind_group.split(".", 1)[0]
        if kind in _KINDS and name:
            self.queue.add((kind, namespace, name))

    def _namespace_event(self, type_: str, new: Mapping[str, Any] | None, _old: Mapping[str, Any] | None) -> None:
        if type_ != "ADDED" or new is None:
            return
        created = new["metadata"]["name"]
        for kind, cache in self.networks.items():
            for network in cache.all():
                if target_namespace(network) == created:
                    self.queue.add((kind, network.namespace, network.name))

    # --- reconcile ------------------------------------------------------------------------------------------

    async def _reconcile(self, key: NetworkKey) -> float | None:
        kind, namespace, name = key
        network = self.networks[kind].get(name, namespace)
        if network is None:
            return None  # gone: its NAD is owned (garbage-collected) or was removed by the finalizer step
        target = target_namespace(network)
        live = await self._live_nad(target, network.name)
        exists = live is not None or self.namespaces.get(target) is not None \
            or await get_or_none(self._client, NamespaceResource, target) is not None
        plan = plan_network(network, operator_namespace=self._settings.namespace,
                            resource_prefix=self._settings.resource_prefix, namespace_exists=exists, live=live)
        resource = _KINDS[kind][1]
        subject = what(kind, name, namespace)
        for step in plan.steps:
            if isinstance(step, SetFinalizers):
                with api_errors("set finalizers of", subject):
                    await self._client.patch(resource, name, {"metadata": {"finalizers": list(step.finalizers)}},
                                             namespace=namespace, patch_type=PatchType.MERGE)
            elif isinstance(step, DeleteAttachment):
                await self._delete_nad(network, step.namespace, step.name)
            elif isinstance(step, AnnotateNetwork):
                with api_errors(f"annotate {step.key} on", subject):
                    await self._client.patch(resource, name, {"metadata": {"annotations": {step.key: step.value}}},
                                             namespace=namespace, patch_type=PatchType.MERGE)
            elif isinstance(step, CreateAttachment | ReplaceAttachment):
                await self._write_nad(network, step)
            elif isinstance(step, SetReadyCondition):
                await self._set_ready(network, resource, step)
        return None

    async def _live_nad(self, namespace: str, name: str) -> NetworkAttachmentDefinition | None:
        raw = await get_or_none(self._client, NadResource, name, namespace=namespace)
        if raw is None:
            return None
        return decode_from_cluster(raw, NetworkAttachmentDefinition)

    async def _delete_nad(self, network: Network, namespace: str, name: str) -> None:
        if await delete_if_present(self._client, NadResource, name, namespace=namespace):
            await self._recorder.normal(network, "NetworkAttachmentDefinitionDeleted",
                                        f"deleted NetworkAttachmentDefinition {namespace}/{name}")

    async def _write_nad(self, network: Network, step: CreateAttachment | ReplaceAttachment) -> None:
        nad = step.nad
        body = NadResource.from_dict(nad.to_go_dict())
        verb = "create" if isinstance(step, CreateAttachment) else "update"
        try:
            with api_errors(verb, what(nad.KIND, nad.name, nad.namespace)):
                if verb == "create":
                    await self._client.create(body)
                else:
                    await self._client.replace(body)
        except ClusterError as err:
            resource = _KINDS[network.KIND][1]
            await self._set_ready(network, resource, SetReadyCondition(write_failed_condition(network, str(err))))
            raise
        await self._recorder.normal(network, f"NetworkAttachmentDefinition{verb.capitalize()}d",
                                    f"{verb}d NetworkAttachmentDefinition {nad.namespace}/{nad.name}")

    async def _set_ready(self, network: Network, resource: Any, step: SetReadyCondition) -> None:
        conditions = apply_ready_condition(network.status.conditions, step.ready, _now())
        if conditions is None:
            return
        body = {"status": {"conditions": [c.to_dict() for c in conditions]}}
        with api_errors("set the Ready condition of", what(network.KIND, network.name, network.namespace)):
            await self._client.patch(resource.Status, network.name, body, namespace=network.namespace,
                                     patch_type=PatchType.MERGE)
        if not step.ready.status:
            await self._recorder.warn(network, step.ready.reason, step.ready.message)
