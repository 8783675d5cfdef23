"""The policy sync (upstream `SriovNetworkNodePolicyReconciler`): one full pass renders every NodeState spec, the
device-plugin ConfigMap and the nodes' device-plugin labels, and writes only what differs.

The rendering is `render.policy_sync.render_for_config`, which `vdpactl render` prints too; this module adds
what upstream does around it: owner references to the `default` SriovOperatorConfig, the stale-NodeState timer
(`keep-state-until`, deleted when it passes), label removal from nodes that lost their NodeState, and the
writes themselves. `plan_node_state_writes` is pure;
`PolicySync` performs the plan through the API and records an Event per change.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lightkube import AsyncClient
from lightkube.types import PatchType

from vdpa_operator.api.jsonpatch import pointer
from vdpa_operator.api.kube import ConfigMap, Node
from vdpa_operator.api.models import (
    API_VERSION,
    SriovNetworkNodeState,
    SriovNetworkNodeStateSpec,
    SriovOperatorConfig,
)
from vdpa_operator.controller.events import Recorder
from vdpa_operator.controller.informer_cache import ClusterCache, observe
from vdpa_operator.controller.metrics import Metrics
from vdpa_operator.controller.settings import OperatorSettings
from vdpa_operator.kubeclient import (
    ClusterError,
    ConfigMapResource,
    NodeResource,
    NodeStateResource,
    api_errors,
    delete_if_present,
    get_or_none,
    parse_rfc3339,
    rfc3339,
    what,
)
from vdpa_operator.render.policy_sync import (
    CONFIGMAP_NAME,
    DEVICE_PLUGIN_LABEL,
    KEEP_UNTIL_ANNOTATION,
    ClusterRender,
    RenderError,
    render_for_config,
)

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class Write:
    """One object write of a sync pass."""

    action: str
    """create | update | mark-stale | delete | unlabel | label"""
    name: str
    body: Any = None
    """JSON for create, a JSON patch (list of operations) for update, a merge patch for the others."""
    reason: str = ""



def owner_reference(config: SriovOperatorConfig) -> dict[str, Any]:
    """The controller reference to the `default` SriovOperatorConfig upstream sets on what the sync owns."""
    return {
        "apiVersion": API_VERSION,
        "kind": SriovOperatorConfig.KIND,
        "name": config.name,
        "uid": config.metadata.uid or "",
        "controller": True,
        "blockOwnerDeletion": True,
    }


def plan_node_state_writes(
    rendered: ClusterRender,
    live: Mapping[str, SriovNetworkNodeState],
    live_raw: Callable[[str], Mapping[str, Any] | None],
    nodes: Mapping[str, Node],
    owner: dict[str, Any],
    *,
    now: datetime.datetime,
    stale_delay_minutes: int,
) -> tuple[list[Write], datetime.datetime | None]:
    """NodeState and node-label writes of one sync, and the earliest moment a stale NodeState must be deleted.

    `rendered.node_states` carry the new spec (and no keep-until mark); a live state without a rendered one
    belongs to a node that is gone or no longer selected."""
    writes: list[Write] = []
    go_dicts: dict[int, dict[str, Any]] = {}

    def go_dict(spec: SriovNetworkNodeStateSpec) -> dict[str, Any]:
        # Specs are shared between nodes (render and cache both share them): convert each object once.
        found = go_dicts.get(id(spec))
        if found is None:
            found = go_dicts[id(spec)] = spec.to_go_dict()
        return found

    for state in rendered.node_states:
        existing = live.get(state.name)
        spec = go_dict(state.spec)
        if existing is None:
            created = {
                "apiVersion": API_VERSION,
                "kind": SriovNetworkNodeState.KIND,
                "metadata": {"name": state.name, "namespace": state.namespace, "ownerReferences": [owner]},
                "spec": spec,
            }
            writes.append(Write("create", state.name, created, "new selected node"))
            continue
        raw = live_raw(state.name) or {}
        metadata = raw.get("metadata") or {}
        unmarked = KEEP_UNTIL_ANNOTATION in (metadata.get("annotations") or {})
        same_owner = [dict(o) for o in metadata.get("ownerReferences") or []] == [owner]
        same_spec = spec == go_dict(existing.spec)
        if same_spec and same_owner and not unmarked:
            continue
        # A JSON patch of exactly what the operator owns, so the daemon's and the drain controller's concurrent
        # annotation writes never turn a spec update into a 409 (upstream's Update would conflict and retry).
        ops: list[dict[str, Any]] = []
        if not same_spec:
            ops.append({"op": "add", "path": "/spec", "value": spec})
        if not same_owner:
            ops.append({"op": "add", "path": "/metadata/ownerReferences", "value": [owner]})
        if unmarked:
            ops.append({"op": "remove", "path": pointer("metadata", "annotations", KEEP_UNTIL_ANNOTATION)})
        reasons = [r for r, changed in (("spec", not same_spec), ("owner", not same_owner),
                                        ("node is back", unmarked)) if changed]
        writes.append(Write("update", state.name, ops, ", ".join(reasons)))

    for name, value in rendered.node_labels.items():
        node = nodes.get(name)
        if node is not None and node.labels.get(DEVICE_PLUGIN_LABEL) != value:
            writes.append(Write("label", name, {"metadata": {"labels": {DEVICE_PLUGIN_LABEL: value}}}, value))

    rendered_names = {s.name for s in rendered.node_states}
    next_deletion: datetime.datetime | None = None
    for name in sorted(set(live) - rendered_names):
        node = nodes.get(name)
        if node is not None and DEVICE_PLUGIN_LABEL in node.labels:
            writes.append(Write("unlabel", name, {"metadata": {"labels": {DEVICE_PLUGIN_LABEL: None}}},
                                "node not selected"))
        if stale_delay_minutes == 0:
            writes.append(Write("delete", name, None, "node gone or not selected; no cleanup delay"))
            continue
        mark = live[name].metadata.annotations.get(KEEP_UNTIL_ANNOTATION)
        keep_until = parse_rfc3339(mark) if mark else None
        if keep_until is None:
            keep_until = now + datetime.timedelta(minutes=stale_delay_minutes)
            patch = {"metadata": {"annotations": {KEEP_UNTIL_ANNOTATION: rfc3339(keep_until)}}}
            writes.append(Write("mark-stale", name, patch, f"kept until {rfc3339(keep_until)}"))
        elif now >= keep_until:
            writes.append(Write("delete", name, None, f"kept until {mark}, which has passed"))
            continue
        next_deletion = keep_until if next_deletion is None else min(next_deletion, keep_until)
    return writes, next_deletion


_PATCHES = {
    "update": (PatchType.JSON, "SpecUpdated", "NodeState updated: "),
    "mark-stale": (PatchType.MERGE, "NodeGone", "node is gone or not selected; "),
}
"""The NodeState patches of a sync: patch type, Event reason and message (the write's reason follows)."""


class PolicySync:
    """The sync as a `KeyedQueue` handler: returns when it wants to run again."""

    def __init__(
        self,
        client: AsyncClient,
        cache: ClusterCache,
        settings: OperatorSettings,
        recorder: Recorder,
        metrics: Metrics,
        *,
        clock: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
    ) -> None:
        self._client = client
        self._cache = cache
        self._settings = settings
        self._recorder = recorder
        self._metrics = metrics
        self._clock = clock
        self._waiting_for_config = False

    async def __call__(self, _key: str) -> float | None:
        started = time.perf_counter()
        try:
            return await self._sync()
        except Exception:
            self._metrics.sync_failed()
            raise
        finally:
            self._metrics.observe_sync(time.perf_counter() - started)

    async def _sync(self) -> float:
        cache, settings = self._cache, self._settings
        timing = settings.sync
        config = cache.operator_config()
        if config is None:
            if not self._waiting_for_config:  # one line when it goes missing, not one per retry
                log.info("SriovOperatorConfig %s/default not found, cannot reconcile SriovNetworkNodePolicies; "
                         "looking again every %.0f s", settings.namespace, timing.no_config_requeue)
            self._waiting_for_config = True
            return timing.no_config_requeue
        self._waiting_for_config = False
        states, all_nodes = cache.node_states.all(), cache.nodes.all()
        try:
            rendered = render_for_config(config, cache.policies.all(), all_nodes, states, namespace=settings.namespace,
                                         nics=settings.nics, pool_configs=cache.pools.all())
        except RenderError as err:
            await self._recorder.warn(config, "SyncFailed", str(err))
            raise
        owner = owner_reference(config)
        live = {s.name: s for s in states if s.namespace == settings.namespace}
        nodes = {n.name: n for n in all_nodes}
        now = self._clock()
        writes, next_deletion = plan_node_state_writes(
            rendered, live, lambda name: cache.node_states.informer.get(name, settings.namespace), nodes, owner,
            now=now, stale_delay_minutes=settings.stale_delay_minutes)
        errors = await self._perform(writes)
        errors += await self._sync_config_map(rendered.config_map, owner)
        if errors:
            raise errors[0]
        if writes:
            log.info("policy sync: %d writes (%s)", len(writes), _summary(writes))
        if next_deletion is None:
            return timing.resync_period
        return max(1.0, min(timing.resync_period, (next_deletion - now).total_seconds()))

    async def _perform(self, writes: Sequence[Write]) -> list[ClusterError]:
        gate = asyncio.Semaphore(self._settings.sync.write_concurrency)
        errors: list[ClusterError] = []

        async def one(write: Write) -> None:
            async with gate:
                try:
                    await self._write(write)
                except ClusterError as err:
                    log.warning("%s", err)
                    errors.append(err)

        await asyncio.gather(*(one(w) for w in writes))
        return errors

    async def _write(self, write: Write) -> None:
        namespace = self._settings.namespace
        target = what(SriovNetworkNodeState.KIND, write.name, namespace)
        informer = self._cache.node_states.informer
        if write.action in ("label", "unlabel"):
            with api_errors(f"{write.action} device-plugin on", what("Node", write.name)):
                node = await self._client.patch(NodeResource, write.name, write.body, patch_type=PatchType.MERGE)
            observe(self._cache.nodes.informer, node)
            label = f"{DEVICE_PLUGIN_LABEL}={write.reason}" if write.action == "label" else DEVICE_PLUGIN_LABEL
            await self._recorder.normal(node, "DevicePluginLabel", f"{write.action} {label}")
            return
        if write.action == "create":
            with api_errors("create", target):
                obj = await self._client.create(NodeStateResource.from_dict(write.body))
            observe(informer, obj)
            await self._recorder.normal(obj, "Created", "NodeState created for a selected node")
        elif write.action in _PATCHES:
            patch_type, reason, message = _PATCHES[write.action]
            with api_errors(write.action, target):
                obj = await self._client.patch(NodeStateResource, write.name, write.body, namespace=namespace,
                                               patch_type=patch_type)
            observe(informer, obj)
            await self._recorder.normal(obj, reason, message + write.reason)
        elif write.action == "delete":
            raw = informer.get(write.name, namespace) or {"metadata": {"name": write.name, "namespace": namespace}}
            await delete_if_present(self._client, NodeStateResource, write.name, namespace=namespace)
            informer.cache.pop((namespace, write.name), None)
            await self._recorder.normal(raw, "Deleted", f"NodeState deleted: {write.reason}")

    async def _sync_config_map(self, wanted: ConfigMap, owner: dict[str, Any]) -> list[ClusterError]:
        """Create or update `device-plugin-config` (owned by the operator config), as upstream does each pass."""
        namespace = self._settings.namespace
        target = what("ConfigMap", CONFIGMAP_NAME, namespace)
        try:
            current = await get_or_none(self._client, ConfigMapResource, CONFIGMAP_NAME, namespace=namespace)
            if current is None:
                body = {"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": CONFIGMAP_NAME, "namespace": namespace, "ownerReferences": [owner]},
                        "data": dict(wanted.data)}
                with api_errors("create", target):
                    created = await self._client.create(ConfigMapResource.from_dict(body))
                log.info("created %s for %d nodes", target, len(wanted.data))
                await self._recorder.normal(created, "Created", f"device-plugin config for {len(wanted.data)} nodes")
                return []
            data = dict(current.get("data") or {})
            owners = [dict(o) for o in (current.get("metadata") or {}).get("ownerReferences") or []]
            if data == dict(wanted.data) and owners == [owner]:
                return []
            body = dict(current)
            body["data"] = dict(wanted.data)
            body["metadata"] = {**current["metadata"], "ownerReferences": [owner]}
            with api_errors("update", target):
                updated = await self._client.replace(ConfigMapResource.from_dict(body))
            changed = sorted(k for k in set(data) | set(wanted.data) if data.get(k) != wanted.data.get(k))
            summary = f"{len(changed)} nodes changed ({', '.join(changed[:5])}{', …' if len(changed) > 5 else ''})"
            log.info("updated %s: %s", target, summary)
            await self._recorder.normal(updated, "Updated", f"device-plugin config: {summary}")
            return []
        except ClusterError as err:
            log.warning("%s", err)
            return [err]


def _summary(writes: Sequence[Write]) -> str:
    counts: dict[str, int] = {}
    for w in writes:
        counts[w.action] = counts.get(w.action, 0) + 1
    return ", ".join(f"{n} {a}" for a, n in sorted(counts.items()))
