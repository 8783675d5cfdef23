"""`vdpactl operator`: wires the informers, the three controllers, the admission webhooks (the policy webhooks and
the pod resource injector), leader election and the probe/metrics listener around one lightkube client, then runs
until stopped or leadership is lost.

Every replica serves the webhooks and probes and keeps the injector's webhook configuration as `enableInjector`
says; only the leader runs the controllers (policy sync, drain, networks).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from lightkube import AsyncClient

from vdpa_operator.api.nics import NicTableError, SupportedNics
from vdpa_operator.controller.drain import DrainController
from vdpa_operator.controller.events import COMPONENT, Recorder
from vdpa_operator.controller.health import health_app
from vdpa_operator.controller.informer_cache import ClusterCache
from vdpa_operator.controller.leader import LeaderElector
from vdpa_operator.controller.loop import KeyedQueue
from vdpa_operator.controller.metrics import Metrics
from vdpa_operator.controller.networks import NetworkController
from vdpa_operator.controller.settings import OperatorSettings
from vdpa_operator.controller.sync import PolicySync
from vdpa_operator.errors import VdpaOperatorError
from vdpa_operator.kubeclient import (
    ClusterError,
    ConfigMapResource,
    connect_client,
    get_or_none,
)

log = logging.getLogger(__name__)

SYNC_KEY = "node-policy-sync-event"
"""Upstream's single synthetic request name for the full policy sync."""
SUPPORTED_NICS_CONFIGMAP = "supported-nic-ids"
INJECTOR_KEY = "injector"


@dataclass
class OperatorOptions:
    kubeconfig: str | None = None
    settings: OperatorSettings = field(default_factory=OperatorSettings)
    health_address: tuple[str, int] | None = ("127.0.0.1", 8080)
    """Where /healthz, /readyz and /metrics listen (host "": every interface); None: not served."""
    webhook: Any = None
    """`controller.webhook.WebhookOptions`, or None to serve no admission webhooks."""
    leader_election: bool = True
    identity: str = field(default_factory=lambda: f"{socket.gethostname()}_{uuid.uuid4()}")


class Operator:
    """The running operator; `ports` tells where the listeners ended up (port 0 = any free port)."""

    def __init__(self, options: OperatorOptions, client: AsyncClient | None = None) -> None:
        self.options = options
        self.settings = options.settings
        self.client = client or connect_client(options.kubeconfig, self.settings.namespace, COMPONENT)
        self.recorder = Recorder(self.client)
        self.ports: dict[str, int] = {}
        self._runners: list[web.AppRunner] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self.cache = ClusterCache.create(self.client, self.settings.namespace, handlers={
            "sriovnetworknodepolicies": self._on_policy_input,
            "sriovnetworkpoolconfigs": self._on_pool_change,
            "sriovoperatorconfigs": self._on_operator_config,
            "sriovnetworknodestates": self._on_node_state,
            "nodes": self._on_node,
        })
        self.metrics = Metrics(self.cache.node_states.all)
        lease = self.settings.lease
        self.elector = LeaderElector(self.client, self.settings.namespace, options.identity,
                                     lease_duration=lease.duration, renew_deadline=lease.renew_deadline,
                                     retry_period=lease.retry_period)

    def _build_controllers(self) -> None:
        """The controllers, with the settings as completed by `start` (the supported-NIC list)."""
        settings, backoff = self.settings, self.settings.backoff
        self.policy_sync = PolicySync(self.client, self.cache, settings, self.recorder, self.metrics)
        self.sync_queue: KeyedQueue[str] = KeyedQueue("policy sync", self.policy_sync, backoff=backoff)
        self.drain = DrainController(self.client, self.cache, settings, self.recorder, self.metrics)
        self.drain_queue: KeyedQueue[str] = KeyedQueue("drain", self.drain, workers=settings.drain.workers,
                                                       backoff=backoff)
        self.networks = NetworkController(self.client, settings, self.recorder)
        self.injector_queue: KeyedQueue[str] = KeyedQueue("injector configuration", self._sync_injector,
                                                          backoff=backoff)
        self._injector_endpoint: Any = None

    # --- event routing ------------------------------------------------------------------------------------------

    def _request_sync(self) -> None:
        self.sync_queue.add(SYNC_KEY, self.settings.sync.enqueue_delay)

    def _on_policy_input(self, _kind: str, _new: dict[str, Any] | None, _old: dict[str, Any] | None) -> None:
        self._request_sync()

    def _on_operator_config(self, kind: str, new: dict[str, Any] | None, old: dict[str, Any] | None) -> None:
        self._request_sync()
        self.injector_queue.add(INJECTOR_KEY)

    def _on_pool_change(self, kind: str, new: dict[str, Any] | None, old: dict[str, Any] | None) -> None:
        self._request_sync()
        # A pool's maxUnavailable may free drain slots for waiting nodes.
        for state in self.cache.node_states.informer.objects():
            self.drain_queue.add(state["metadata"]["name"])

    def _on_node(self, kind: str, new: dict[str, Any] | None, old: dict[str, Any] | None) -> None:
        if kind != "MODIFIED" or _labels(new) != _labels(old):
            self._request_sync()
        if new is not None and DrainController.node_changed(new, old):
            self.drain_queue.add(new["metadata"]["name"])

    def _on_node_state(self, kind: str, new: dict[str, Any] | None, old: dict[str, Any] | None) -> None:
        # Upstream waits for the 5-minute resync after a daemon first reports its NICs; we render at once.
        if kind == "DELETED" or _interfaces(new) != _interfaces(old):
            self._request_sync()
        if new is not None and DrainController.state_changed(new, old):
            self.drain_queue.add(new["metadata"]["name"])

    # --- lifecycle ----------------------------------------------------------------------------------------------

    async def serve(self, name: str, app: web.Application, host: str, port: int, ssl: Any = None) -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port, ssl_context=ssl)
        await site.start()
        self._runners.append(runner)
        self.ports[name] = runner.addresses[-1][1] if runner.addresses else port

    def ready(self) -> bool:
        return all(i.synced.is_set() for i in (*self.cache.informers, *self.networks.informers))

    async def _load_supported_nics(self) -> None:
        """Upstream reads `supported-nic-ids` once at start; absent, the built-in list stays."""
        namespace = self.settings.namespace
        try:
            raw = await get_or_none(self.client, ConfigMapResource, SUPPORTED_NICS_CONFIGMAP, namespace=namespace)
        except ClusterError as err:
            log.warning("%s; using the built-in supported NIC list", err)
            return
        if raw is None:
            return
        try:
            nics = SupportedNics.from_configmap_data(raw.get("data") or {})
        except NicTableError as err:
            log.error("%s; using the built-in supported NIC list", err)
            return
        self.settings = dataclasses.replace(self.settings, nics=nics)
        log.info("supported NICs from ConfigMap %s/%s: %d entries", namespace, SUPPORTED_NICS_CONFIGMAP,
                 len(nics.entries))

    async def start(self) -> None:
        """Read the supported-NIC list, open the listeners and start watching; the controllers start once this
        replica leads."""
        await self._load_supported_nics()
        self._build_controllers()
        if self.options.health_address is not None:
            host, port = self.options.health_address
            await self.serve("health", health_app(self.metrics, {"informers": self.ready}), host, port)
        if self.options.webhook is not None:
            from vdpa_operator.controller import injector_webhook, webhook

            lookup = injector_webhook.nad_lookup(self.networks.nads, self.client)
            self._injector_endpoint = await webhook.start(self, self.options.webhook,
                                                          injector_webhook.routes(lookup))
            if self._injector_endpoint is not None:
                self._tasks.append(asyncio.create_task(self.injector_queue.run(), name="injector configuration"))
        self._tasks += [asyncio.create_task(i.run(), name=f"informer {i.name}") for i in self.cache.informers]
        self._tasks += [asyncio.create_task(i.run(), name=f"informer {i.name}") for i in self.networks.informers]
        self._tasks.append(asyncio.create_task(self._lead(), name="leader"))

    async def _sync_injector(self, _key: str) -> None:
        """Every replica that registers the webhooks keeps the injector's configuration as `default` says (they
        all write the same object), once the config informer has listed."""
        if self._injector_endpoint is None or not self.cache.operator_configs.informer.synced.is_set():
            return
        from vdpa_operator.controller import injector_webhook

        await injector_webhook.sync_configuration(self.client, self.cache.operator_config(), self._injector_endpoint)

    async def _lead(self) -> None:
        if self.options.leader_election:
            election = asyncio.create_task(self.elector.run())
            await self.elector.leading.wait()
        await self.cache.wait_synced()
        self._request_sync()
        for state in self.cache.node_states.informer.objects():
            self.drain_queue.add(state["metadata"]["name"])
        queues = [asyncio.create_task(q.run()) for q in (self.sync_queue, self.drain_queue, self.networks.queue)]
        if self.options.leader_election:
            queues.append(election)
            done, _ = await asyncio.wait(queues, return_when=asyncio.FIRST_COMPLETED)
            if election in done:
                raise LeadershipLost("leadership lost; stopping so a restart begins from a clean state")
        await asyncio.gather(*queues)

    async def run(self) -> None:
        """Start and run until cancelled or a background task fails (leadership lost)."""
        await self.start()
        try:
            done, _ = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
        finally:
            await self.stop()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()
        with contextlib.suppress(Exception):
            await self.client.close()


class LeadershipLost(VdpaOperatorError, RuntimeError):
    """Another replica holds the lease now: this one stops its controllers and exits, and its pod restarts."""


def _labels(obj: dict[str, Any] | None) -> dict[str, Any]:
    return dict(((obj or {}).get("metadata") or {}).get("labels") or {})


def _interfaces(obj: dict[str, Any] | None) -> Any:
    return ((obj or {}).get("status") or {}).get("interfaces")
