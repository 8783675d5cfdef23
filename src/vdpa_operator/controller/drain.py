"""The drain controller: the operator's half of the daemon's drain handshake (upstream `DrainReconcile`, §4.4).

The daemon asks by setting the Node annotation `sriovnetwork.openshift.io/state` to `Drain_Required` or
`Reboot_Required`; this controller answers on the NodeState's `current-state`: `Draining` once the node's pool
has room (fewer than `maxUnavailable` nodes Draining or DrainComplete; nodes in no pool share a default pool of
1), then cordon and evict, then `DrainComplete`. When the daemon is done it sets the request back to `Idle`; the
controller uncordons and answers `Idle`. `Drain_Required` evicts only pods that request a resource with the
operator's resource prefix; `Reboot_Required` evicts every pod except DaemonSet and mirror pods, and does
nothing on a single-node cluster. Missing annotations are created as `Idle` first. A NodeState annotated
`use-external-drainer: "true"` is left to an external tool.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lightkube import AsyncClient
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Pod
from lightkube.types import PatchType

from vdpa_operator.api.admission import MaxUnavailableError, max_unavailable
from vdpa_operator.api.kube import Node
from vdpa_operator.api.models import (
    ANNOTATION_PREFIX,
    CURRENT_STATE,
    DESIRED_STATE,
    DRAIN_COMPLETE,
    DRAIN_IDLE,
    DRAIN_REQUIRED,
    DRAINING,
    NODE_STATE,
    REBOOT_REQUIRED,
    SriovNetworkNodeState,
    SriovNetworkPoolConfig,
)
from vdpa_operator.controller.events import Recorder
from vdpa_operator.controller.informer_cache import ClusterCache, observe
from vdpa_operator.controller.metrics import Metrics
from vdpa_operator.controller.settings import OperatorSettings
from vdpa_operator.errors import VdpaOperatorError
from vdpa_operator.kubeclient import ClusterError, NodeResource, NodeStateResource, PodResource, api_errors, http_code
from vdpa_operator.render.policy_sync import RenderError, label_selector_matches

log = logging.getLogger(__name__)

EXTERNAL_DRAINER = ANNOTATION_PREFIX + "use-external-drainer"
MIRROR_POD = "kubernetes.io/config.mirror"
DEFAULT_POOL = "default"


class DrainError(VdpaOperatorError, RuntimeError):
    """The handshake cannot go on for this node (bad pool configuration, unknown request)."""


@dataclass(frozen=True)
class PoolSlots:
    pool: str
    limit: int
    """-1: no limit."""
    busy: int
    """Nodes of the pool that are Draining or DrainComplete."""

    @property
    def full(self) -> bool:
        return self.limit != -1 and self.busy >= self.limit


def pool_slots(
    node: Node,
    nodes: Sequence[Node],
    pools: Iterable[SriovNetworkPoolConfig],
    states: Mapping[str, SriovNetworkNodeState],
) -> PoolSlots:
    """Upstream `findNodePoolConfig` + `MaxUnavailable`: the node's pool, its limit and how many of its nodes
    are being drained. Nodes in no pool form the default pool with `maxUnavailable: 1`."""
    real_pools = [p for p in pools if not p.spec.ovs_hardware_offload_config.name]
    matching = []
    in_some_pool: set[str] = set()
    for pool in real_pools:
        owner = f"SriovNetworkPoolConfig {pool.name}"
        try:
            members = {n.name for n in nodes
                       if label_selector_matches(pool.spec.node_selector, n.labels, owner=owner)}
        except RenderError as err:
            raise DrainError(str(err)) from err
        in_some_pool |= members
        if node.name in members:
            matching.append((pool, members))
    if len(matching) > 1:
        raise DrainError(f"node {node.name} is part of more than one SriovNetworkPoolConfig "
                         f"({', '.join(p.name for p, _ in matching)}); make their nodeSelectors disjoint")
    if matching:
        pool, members = matching[0]
        try:
            limit = max_unavailable(_int_or_string(pool.spec.max_unavailable), len(members))
        except MaxUnavailableError as err:
            raise DrainError(f"SriovNetworkPoolConfig {pool.name}: maxUnavailable: {err}") from err
        name = pool.name
    else:
        members = {n.name for n in nodes} - in_some_pool
        limit, name = 1, DEFAULT_POOL
    busy = sum(1 for m in members if m in states
               and states[m].metadata.annotations.get(CURRENT_STATE) in (DRAINING, DRAIN_COMPLETE))
    return PoolSlots(name, limit, busy)


def _int_or_string(value: Any) -> int | str | None:
    return value if value is None or isinstance(value, int | str) else str(value)


def pods_to_evict(pods: Iterable[Mapping[str, Any]], *, full: bool, resource_prefix: str) -> list[Mapping[str, Any]]:
    """What `kubectl drain --force --ignore-daemonsets --delete-emptydir-data` would evict (not mirror pods, not
    running pods controlled by a DaemonSet), narrowed for a partial drain to pods whose containers request a
    resource with `resource_prefix` (upstream's filter)."""
    chosen = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        if MIRROR_POD in (meta.get("annotations") or {}):
            continue
        finished = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
        controller = next((o for o in meta.get("ownerReferences") or [] if o.get("controller")), None)
        if controller is not None and controller.get("kind") == "DaemonSet" and not finished:
            continue  # kubectl's daemonSetFilter: a running DaemonSet pod would come straight back
        if not full and not any(
            str(resource).startswith(resource_prefix)
            for container in (pod.get("spec") or {}).get("containers") or []
            for resource in ((container.get("resources") or {}).get("requests") or {})
        ):
            continue
        chosen.append(pod)
    return chosen


class DrainController:
    """`KeyedQueue` handler keyed by node name."""

    def __init__(self, client: AsyncClient, cache: ClusterCache, settings: OperatorSettings, recorder: Recorder,
                 metrics: Metrics) -> None:
        self._client = client
        self._cache = cache
        self._settings = settings
        self._recorder = recorder
        self._metrics = metrics
        self._slot_lock = asyncio.Lock()
        self._waiting: set[str] = set()
        """Nodes told to wait for a pool slot, so the log says it once."""

    @staticmethod
    def node_changed(new: Mapping[str, Any] | None, old: Mapping[str, Any] | None) -> bool:
        """The drain controller's Node predicate: created, or its drain request annotation changed."""
        return _annotation(new, NODE_STATE) != _annotation(old, NODE_STATE) or old is None

    @staticmethod
    def state_changed(new: Mapping[str, Any] | None, old: Mapping[str, Any] | None) -> bool:
        """The NodeState predicate: created, or its desired/current drain annotations changed."""
        return old is None or any(_annotation(new, k) != _annotation(old, k) for k in (DESIRED_STATE, CURRENT_STATE))

    async def __call__(self, name: str) -> float | None:
        namespace = self._settings.namespace
        node_raw = self._cache.nodes.informer.get(name)
        state_raw = self._cache.node_states.informer.get(name, namespace)
        if node_raw is None or state_raw is None:
            return None
        if _annotation(state_raw, EXTERNAL_DRAINER) == "true":
            log.info("NodeState %s uses an external drainer; not draining it", name)
            return None
        created = False
        for key in (CURRENT_STATE, DESIRED_STATE):
            if _annotation(state_raw, key) is None:
                state_raw = await self._annotate_state(name, key, DRAIN_IDLE)
                created = True
        if _annotation(node_raw, NODE_STATE) is None:
            node_raw = await self._patch_node(name, {"metadata": {"annotations": {NODE_STATE: DRAIN_IDLE}}},
                                              f"annotate {NODE_STATE}={DRAIN_IDLE} on")
            created = True
        if created:
            return 0.0
        request = _annotation(node_raw, NODE_STATE)
        current = _annotation(state_raw, CURRENT_STATE)
        if request == DRAIN_IDLE:
            if current in (DRAINING, DRAIN_COMPLETE):
                await self._patch_node(name, {"spec": {"unschedulable": None}}, "uncordon")
                state_raw = await self._annotate_state(name, CURRENT_STATE, DRAIN_IDLE)
                await self._recorder.normal(state_raw, "CompleteDrain", "node un drain completed")
            return None
        if request not in (DRAIN_REQUIRED, REBOOT_REQUIRED):
            raise DrainError(f"Node {name}: unexpected {NODE_STATE} annotation {request!r} (want {DRAIN_IDLE}, "
                             f"{DRAIN_REQUIRED} or {REBOOT_REQUIRED})")
        if current == DRAIN_COMPLETE:
            return None
        if current == DRAIN_IDLE:
            node = self._cache.nodes.get(name)
            if node is None:
                raise DrainError(f"Node {name} does not decode; see the log")
            async with self._slot_lock:
                slots = pool_slots(node, self._cache.nodes.all(), self._cache.pools.all(),
                                   {s.name: s for s in self._cache.node_states.all()})
                if slots.full:
                    if name not in self._waiting:  # one line when it starts waiting, not one per look
                        log.info("node %s waits to drain: pool %s has %d of %d nodes draining", name, slots.pool,
                                 slots.busy, slots.limit)
                        self._waiting.add(name)
                    return self._settings.drain.requeue
                self._waiting.discard(name)
                state_raw = await self._annotate_state(name, CURRENT_STATE, DRAINING)
                limit = "no limit" if slots.limit == -1 else f"{slots.busy + 1} of {slots.limit}"
                await self._recorder.normal(state_raw, "DrainNode", f"node drain started (pool {slots.pool}: {limit})")
        full = request == REBOOT_REQUIRED
        if not (full and len(self._cache.nodes.informer.cache) == 1) and not await self._drain(name, full):
            await self._recorder.warn(state_raw, "DrainNode", "node drain operation was not completed")
            return self._settings.drain.requeue
        state_raw = await self._annotate_state(name, CURRENT_STATE, DRAIN_COMPLETE)
        await self._recorder.normal(state_raw, "DrainNode", "node drain completed")
        return None

    async def _drain(self, name: str, full: bool) -> bool:
        """Cordon, evict, and report whether the pods to evict are gone."""
        await self._patch_node(name, {"spec": {"unschedulable": True}}, "cordon")
        pods = await self._pods_on(name, full)
        for pod in pods:
            meta = pod["metadata"]
            eviction = Pod.Eviction(metadata=ObjectMeta(name=meta["name"], namespace=meta["namespace"]))
            try:
                with api_errors("evict", f"Pod {meta['namespace']}/{meta['name']}"):
                    await self._client.create(eviction, meta["name"], namespace=meta["namespace"])
                log.info("evicted pod %s/%s from node %s", meta["namespace"], meta["name"], name)
            except ClusterError as err:
                if http_code(err) != 404:
                    log.warning("%s", err)
        return not pods or not await self._pods_on(name, full)

    async def _pods_on(self, name: str, full: bool) -> list[Mapping[str, Any]]:
        with api_errors("list pods of", f"Node {name}"):
            pods = [dict(p) async for p in self._client.list(PodResource, namespace="*",
                                                               fields={"spec.nodeName": name})]
        return pods_to_evict(pods, full=full, resource_prefix=self._settings.resource_prefix)

    async def _annotate_state(self, name: str, key: str, value: str) -> dict[str, Any]:
        namespace = self._settings.namespace
        with api_errors(f"annotate {key}={value} on", f"SriovNetworkNodeState {namespace}/{name}"):
            obj = await self._client.patch(NodeStateResource, name, {"metadata": {"annotations": {key: value}}},
                                           namespace=namespace, patch_type=PatchType.MERGE)
        observe(self._cache.node_states.informer, obj)
        if key == CURRENT_STATE:
            self._metrics.drains.labels(value).inc()
            log.info("node %s: %s=%s", name, key, value)
        return dict(obj)

    async def _patch_node(self, name: str, patch: dict[str, Any], action: str) -> dict[str, Any]:
        with api_errors(action, f"Node {name}"):
            obj = await self._client.patch(NodeResource, name, patch, patch_type=PatchType.MERGE)
        observe(self._cache.nodes.informer, obj)
        return dict(obj)


def _annotation(obj: Mapping[str, Any] | None, key: str) -> str | None:
    if obj is None:
        return None
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(key)
    return None if value is None else str(value)
