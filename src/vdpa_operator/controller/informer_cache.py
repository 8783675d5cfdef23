"""The operator's local picture of the cluster: one informer per watched kind, decoded into `api` models.

Like controller-runtime's cache, policies, pool configs, the operator config and NodeStates are watched in the
operator namespace only (upstream's manager cache is restricted to it), Nodes cluster-wide. Decoding is memoised
per resourceVersion, so a full sync over 1,000 unchanged NodeStates decodes nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from lightkube import AsyncClient

from vdpa_operator.api import admission
from vdpa_operator.api.decoding import DecodeError, decode_from_cluster
from vdpa_operator.api.kube import Node
from vdpa_operator.api.meta import KubeModel, Resource
from vdpa_operator.api.models import (
    DEFAULT_NAME,
    SriovNetworkNodePolicy,
    SriovNetworkNodeState,
    SriovNetworkPoolConfig,
    SriovOperatorConfig,
)
from vdpa_operator.kubeclient import (
    Informer,
    Key,
    NodeResource,
    NodeStateResource,
    OnEvent,
    OperatorConfigResource,
    PolicyResource,
    PoolConfigResource,
    key_of,
)

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Resource)
T = TypeVar("T")


class SharedValues:
    """Equal JSON values kept once. Most nodes of a cluster get the same NodeState spec, and a thousand equal
    copies of it (as JSON and as a model) would be most of the operator's memory. Shared values are read, never
    mutated in place (writes build new objects)."""

    def __init__(self) -> None:
        self._table: dict[str, Any] = {}

    def share(self, value: T) -> T:
        plain = value.to_dict() if isinstance(value, KubeModel) else value
        key = json.dumps(plain, sort_keys=True, separators=(",", ":"))
        return cast(T, self._table.setdefault(key, value))

    def keep_only(self, values: Iterable[Any]) -> None:
        """Forget shared values nothing refers to any more (specs of old policy versions)."""
        alive = {id(v) for v in values}
        self._table = {k: v for k, v in self._table.items() if id(v) in alive}

    def __len__(self) -> int:
        return len(self._table)


class DecodedCache(Generic[M]):
    """The informer's objects as models of one kind; an object that does not decode is logged once and left out
    (a newer operator's extra fields are dropped, as `decode(lenient=True)` does)."""

    def __init__(self, informer: Informer, model: type[M], *, share_spec: bool = False) -> None:
        self.informer = informer
        self._model = model
        self._memo: dict[Key, tuple[str, M | None]] = {}
        self._shared_raw = SharedValues() if share_spec else None
        self._shared_model = SharedValues() if share_spec else None

    def _decode(self, raw: Mapping[str, Any]) -> M | None:
        try:
            return decode_from_cluster(raw, self._model)
        except DecodeError as err:
            log.warning("%s %s left out: %s", self._model.KIND, "/".join(key_of(raw)).strip("/"), err)
            return None

    def get(self, name: str, namespace: str = "") -> M | None:
        raw = self.informer.get(name, namespace)
        return None if raw is None else self._memoised(raw)

    def _memoised(self, raw: Mapping[str, Any]) -> M | None:
        key = key_of(raw)
        version = str(raw.get("metadata", {}).get("resourceVersion", ""))
        hit = self._memo.get(key)
        if hit is not None and hit[0] == version and version:
            return hit[1]
        model = self._decode(raw)
        if model is not None and self._shared_raw is not None and self._shared_model is not None \
                and isinstance(raw.get("spec"), dict):
            self.informer.cache[key]["spec"] = self._shared_raw.share(raw["spec"])
            model.spec = self._shared_model.share(model.spec)  # type: ignore[attr-defined]
        self._memo[key] = (version, model)
        return model

    def all(self) -> list[M]:
        models = [self._memoised(raw) for raw in self.informer.objects()]
        live = set(self.informer.cache)
        for gone in self._memo.keys() - live:
            del self._memo[gone]
        present = [m for m in models if m is not None]
        if self._shared_raw is not None and self._shared_model is not None:
            self._shared_raw.keep_only(raw.get("spec") for raw in self.informer.cache.values())
            self._shared_model.keep_only(m.spec for m in present)  # type: ignore[attr-defined]
        return present


@dataclass
class ClusterCache:
    """Everything the policy sync, the drain controller and the webhooks read, kept current by watches."""

    policies: DecodedCache[SriovNetworkNodePolicy]
    pools: DecodedCache[SriovNetworkPoolConfig]
    operator_configs: DecodedCache[SriovOperatorConfig]
    node_states: DecodedCache[SriovNetworkNodeState]
    nodes: DecodedCache[Node]
    namespace: str

    @classmethod
    def create(cls, client: AsyncClient, namespace: str, handlers: Mapping[str, OnEvent] | None = None,
               ) -> ClusterCache:
        """Informers for the five kinds; `handlers` maps a kind's plural to its change callback."""
        handlers = handlers or {}

        def informer(resource: Any, scoped: bool, transform: Any = None) -> Informer:
            plural = resource._api_info.plural
            return Informer(client, resource, namespace=namespace if scoped else None,
                            on_event=handlers.get(plural), transform=transform)

        return cls(
            policies=DecodedCache(informer(PolicyResource, True), SriovNetworkNodePolicy),
            pools=DecodedCache(informer(PoolConfigResource, True), SriovNetworkPoolConfig),
            operator_configs=DecodedCache(informer(OperatorConfigResource, True), SriovOperatorConfig),
            node_states=DecodedCache(informer(NodeStateResource, True), SriovNetworkNodeState, share_spec=True),
            nodes=DecodedCache(informer(NodeResource, False, node_without_status), Node),
            namespace=namespace,
        )

    @property
    def informers(self) -> list[Informer]:
        return [c.informer for c in (self.policies, self.pools, self.operator_configs, self.node_states, self.nodes)]

    async def wait_synced(self) -> None:
        await asyncio.gather(*(i.synced.wait() for i in self.informers))

    def operator_config(self) -> SriovOperatorConfig | None:
        return self.operator_configs.get(DEFAULT_NAME, self.namespace)

    def admission_view(self) -> admission.ClusterView:
        """What the validating webhook's dynamic rules read: live nodes, node states, policies, config."""
        return admission.ClusterView(
            nodes=tuple(self.nodes.all()),
            node_states=tuple(self.node_states.all()),
            policies=tuple(self.policies.all()),
            operator_config=self.operator_config(),
        )


def node_without_status(node: dict[str, Any]) -> dict[str, Any]:
    """A Node as the operator reads it (labels, annotations, spec): a real node's status (images, conditions,
    addresses) and managedFields are most of its size and change every few seconds."""
    metadata = {k: v for k, v in (node.get("metadata") or {}).items() if k != "managedFields"}
    return {k: v for k, v in node.items() if k not in ("status", "metadata")} | {"metadata": metadata}


def observe(informer: Informer, obj: Mapping[str, Any]) -> None:
    """Write-through: put an object the API just returned into the cache unless the watch already brought a
    newer version, so the next decision does not act on what we have just changed."""
    key = key_of(obj)
    current = informer.cache.get(key)
    new_version = _int_version(obj)
    if current is None or _int_version(current) <= new_version:
        informer.cache[key] = informer.transform(dict(obj))


def _int_version(obj: Mapping[str, Any]) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0

