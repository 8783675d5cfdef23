"""The small kubelet: a thin loop over its parts. At start: what a killed predecessor left undone (`leftovers`),
the device manager's sockets, the Node registered, the API server's address served inside the node's network
namespace (`serviceproxy`); then, until stopped: heartbeats (Lease, Ready, the devices as capacity/allocatable),
the pods bound to this node started and stopped as they come and go (a pod with a deletionTimestamp is stopped,
then deleted with grace 0 as kubelet confirms a deletion), the scheduler when enabled, and a status file saying
what runs here. On the way out it stops every pod it started (processes, CNI DEL, devices, namespaces) and its
sockets.

The exec/log server (`streaming`) runs beside the other tasks on `settings.streaming_port`, answering only the
API server's kubelet-client token (`--kubelet-token-file`); `Kubelet.processes` tells it where each container
runs. Webhook Services the API server calls on this machine (`settings.webhook_services`) are relayed into the
pod serving them when it runs here (`webhookrelay`)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import secrets
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lightkube import AsyncClient

from vdpa_operator.bounded import ParseError
from vdpa_operator.controller.leader import LeaderElector
from vdpa_operator.fileio import write_atomically
from vdpa_operator.kubeclient import (
    SYNCED,
    ClusterError,
    Informer,
    NodeResource,
    PodResource,
    api_errors,
    connect_client,
    load_config,
)
from vdpa_operator.sim.kubelet import leftovers, scheduler, streaming
from vdpa_operator.sim.kubelet.assignments import Assignments
from vdpa_operator.sim.kubelet.devicemanager import DeviceManager
from vdpa_operator.sim.kubelet.errors import KubeletError
from vdpa_operator.sim.kubelet.nodestatus import NodeStatus
from vdpa_operator.sim.kubelet.podprocesses import PodProcesses
from vdpa_operator.sim.kubelet.pods import PodWorker, Runtime
from vdpa_operator.sim.kubelet.serviceproxy import ServiceProxy
from vdpa_operator.sim.kubelet.settings import KubeletSettings
from vdpa_operator.sim.kubelet.volumes import VolumeMaker
from vdpa_operator.sim.kubelet.webhookrelay import WebhookRelays
from vdpa_operator.yamlio import load_one

logger = logging.getLogger(__name__)


def service_env(server: str) -> dict[str, str]:
    """The variables kubelet gives every container for the `kubernetes` Service (here: the API server itself)."""
    url = urlsplit(server)
    host, port = url.hostname or "127.0.0.1", str(url.port or 443)
    return {"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port,
            "KUBERNETES_SERVICE_PORT_HTTPS": port, "KUBERNETES_PORT": f"tcp://{host}:{port}",
            "KUBERNETES_PORT_443_TCP": f"tcp://{host}:{port}", "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
            "KUBERNETES_PORT_443_TCP_ADDR": host, "KUBERNETES_PORT_443_TCP_PORT": port}


def cluster_ca(kubeconfig: str) -> tuple[str, bytes]:
    """(server URL, CA certificate PEM) of the kubeconfig's current context; ClusterError naming the file when
    it has none."""
    try:
        parsed = load_one(Path(kubeconfig).read_text(), kubeconfig)
    except (OSError, ParseError) as exc:
        raise ClusterError(f"Kubernetes configuration {kubeconfig}: {exc}") from exc
    if not isinstance(parsed, dict) or not parsed.get("clusters") or not parsed.get("current-context"):
        raise ClusterError(f"Kubernetes configuration {kubeconfig}: not a kubeconfig (it needs clusters, users and "
                           "a current-context; `vdpactl sim apiserver --kubeconfig FILE` writes one)")
    try:
        context = load_config(kubeconfig).get()
    except Exception as exc:  # lightkube raises whatever its parsing meets
        raise ClusterError(f"Kubernetes configuration {kubeconfig}: {type(exc).__name__}: {exc}") from exc
    if context is None or context.cluster is None or not context.cluster.server:
        raise ClusterError(f"Kubernetes configuration {kubeconfig}: no current context with a cluster server")
    cluster = context.cluster
    ca = b""
    if cluster.certificate_auth_data:
        ca = base64.b64decode(cluster.certificate_auth_data)
    elif cluster.certificate_auth:
        with open(cluster.certificate_auth, "rb") as f:
            ca = f.read()
    return cluster.server, ca


async def _elect(elector: LeaderElector) -> None:
    """Stand for the scheduler's Lease again whenever leadership is lost."""
    while True:
        await elector.run()
        await asyncio.sleep(1.0)


class Kubelet:
    def __init__(self, settings: KubeletSettings) -> None:
        self.settings = settings
        server, ca = cluster_ca(str(settings.kubeconfig))
        self.client: AsyncClient = connect_client(str(settings.kubeconfig), "default", "kubelet")
        self.devices = DeviceManager(settings.device_plugin_dir, settings.plugins_registry,
                                     node_path=settings.node_path)
        self.processes = PodProcesses()
        env = service_env(server)
        self.proxy = ServiceProxy(env["KUBERNETES_SERVICE_HOST"], int(env["KUBERNETES_SERVICE_PORT"]))
        self.runtime = Runtime(settings, self.client, self.devices, Assignments(settings.kubelet_dir),
                               self.processes, VolumeMaker(self.client, settings, ca), env, self.proxy)
        self.node = NodeStatus(self.client, settings)
        self.workers: dict[str, PodWorker] = {}
        self._stopping: dict[str, tuple[PodWorker, asyncio.Task[None]]] = {}
        self._pods_changed = asyncio.Event()
        self._schedule = asyncio.Event()
        self.relays = WebhookRelays(self.client, dict(settings.webhook_services))

    def _token(self) -> str:
        """The API server's kubelet-client token; without a file, a random one (no exec or log through it)."""
        if self.settings.kubelet_token_file is None:
            logger.warning("no --kubelet-token-file: kubectl exec and logs will not reach this kubelet")
            return secrets.token_urlsafe(32)
        return self.settings.kubelet_token_file.read_text().strip()

    async def run(self, stop: asyncio.Event) -> None:
        settings = self.settings
        settings.plugins_registry.mkdir(parents=True, exist_ok=True)
        await self.devices.start()
        tasks: list[asyncio.Task[Any]] = []
        server: streaming.StreamingServer | None = None
        try:
            await leftovers.clean(settings, self.runtime.assignments)
            try:
                server = await streaming.start(self.processes, self._token(), "127.0.0.1", settings.streaming_port)
            except OSError as exc:
                raise KubeletError(f"--streaming-port {settings.streaming_port}: cannot serve exec and logs on "
                                   f"127.0.0.1: {exc.strerror}; choose another port, or 0 for a free one") from None
            self.node.streaming_port = server.port
            subprocess.run(["ip", "-n", settings.node_netns, "link", "set", "lo", "up"], check=False,
                           capture_output=True)
            await self.proxy.open(f"/var/run/netns/{settings.node_netns}")  # for hostNetwork pods
            await self.node.register()
            mine = Informer(self.client, PodResource, fields={"spec.nodeName": settings.node_name},
                            on_event=self._on_pod_event)
            tasks = [asyncio.create_task(mine.run(), name="pods of this node"),
                     asyncio.create_task(self._heartbeats(), name="heartbeats"),
                     asyncio.create_task(self._sync(mine), name="pod sync"),
                     asyncio.create_task(self._refresh_volumes(), name="volume refresh")]
            if settings.schedule:
                every = Informer(self.client, PodResource, on_event=self._on_any_event)
                nodes = Informer(self.client, NodeResource, on_event=self._on_any_event)
                elector = LeaderElector(self.client, "kube-system", settings.node_name, name=scheduler.LEASE)
                tasks += [asyncio.create_task(every.run(), name="all pods"),
                          asyncio.create_task(nodes.run(), name="nodes"),
                          asyncio.create_task(_elect(elector), name="scheduler election"),
                          asyncio.create_task(scheduler.run(self.client, every, nodes, self._schedule,
                                                            settings.timing.schedule_interval, elector.leading),
                                              name="scheduler")]
            logger.info("kubelet of node %s running (root %s, node netns %s, CNI bin %s)", settings.node_name,
                        settings.root, settings.node_netns, settings.cni_bin_dir)
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            if tasks:
                _, stuck = await asyncio.wait(tasks, timeout=5)
                for task in stuck:
                    logger.warning("%s did not stop when cancelled; leaving it", task.get_name())
            await asyncio.gather(*(w.stop() for w in self.workers.values()), return_exceptions=True)
            await asyncio.gather(*(task for _, task in self._stopping.values()), return_exceptions=True)
            self.workers.clear()
            if server is not None:
                await server.stop()
            await self.relays.close_all()
            await self.proxy.close_all()
            self._write_status()
            await self.devices.stop(wipe=False)
            await self.client.close()
            logger.info("kubelet of node %s stopped", settings.node_name)

    def _on_pod_event(self, kind: str, new: dict[str, Any] | None, old: dict[str, Any] | None) -> None:
        self._pods_changed.set()

    def _on_any_event(self, kind: str, new: dict[str, Any] | None, old: dict[str, Any] | None) -> None:
        if kind != SYNCED:
            self._schedule.set()

    def _device_counts(self) -> dict[str, tuple[int, int]]:
        return {name: (len(e.devices), len(e.healthy())) for name, e in self.devices.endpoints.items()}

    async def _heartbeats(self) -> None:
        while True:
            self.node.devices = sent = self._device_counts()
            try:
                await self.node.heartbeat()
            except ClusterError as exc:
                logger.warning("%s", exc)
            async with self.devices.changed:
                if self._device_counts() != sent:
                    continue  # changed while the heartbeat was on its way (a plugin's first ListAndWatch answer)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.settings.timing.heartbeat):
                        await self.devices.changed.wait()

    async def _refresh_volumes(self) -> None:
        while True:
            await asyncio.sleep(self.settings.timing.volume_refresh)
            for worker in list(self.workers.values()):
                await worker.refresh_volumes()

    async def _sync(self, mine: Informer) -> None:
        """Start workers for new pods, stop those of pods gone or terminating."""
        await mine.synced.wait()
        while True:
            self._pods_changed.clear()
            present = {}
            for pod in mine.objects():
                meta = pod["metadata"]
                if meta.get("deletionTimestamp"):
                    if meta["uid"] not in self.workers and meta["uid"] not in self._stopping:
                        await self._confirm_deletion(pod)  # nothing runs for it here: confirm at once
                    continue
                finished = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
                if finished and meta["uid"] not in self.workers:
                    continue
                present[meta["uid"]] = pod
            await self.relays.sync([w for w in self.workers.values() if w.uid in present])
            for uid, pod in present.items():
                if uid not in self.workers and uid not in self._stopping:
                    worker = PodWorker(self.runtime, pod)
                    self.workers[uid] = worker
                    logger.info("pod %s/%s: starting", pod["metadata"]["namespace"], pod["metadata"]["name"])
                    worker.start()
            for uid in [u for u in self.workers if u not in present]:
                worker = self.workers.pop(uid)
                self._stopping[uid] = (worker, asyncio.create_task(self._remove(worker, mine)))
            self._write_status()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._pods_changed.wait()

    async def _confirm_deletion(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        with contextlib.suppress(ClusterError), api_errors("delete", f"Pod {meta['namespace']}/{meta['name']}"):
            await self.client.delete(PodResource, meta["name"], namespace=meta["namespace"], grace_period=0)

    async def _remove(self, worker: PodWorker, mine: Informer) -> None:
        try:
            await worker.stop()
            pod = mine.get(worker.name, worker.namespace)
            if pod is not None and pod["metadata"].get("uid") == worker.uid:
                await self._confirm_deletion(pod)  # kubelet confirms the deletion: grace period 0
        finally:
            self._stopping.pop(worker.uid, None)
            self._write_status()
            self._schedule.set()

    def _write_status(self) -> None:
        status: dict[str, Any] = {"node": self.settings.node_name, "netns": self.settings.node_netns,
                  "cniBinDir": str(self.settings.cni_bin_dir),
                  "cniTypes": {p.name: p.resolve().name for p in sorted(self.settings.cni_bin_dir.glob("*"))
                               if p.is_symlink()} if self.settings.cni_bin_dir.is_dir() else {},
                  "pods": {w.key: w.describe() for w in self.workers.values()}}
        for worker, _ in self._stopping.values():
            status["pods"][worker.key] = {**worker.describe(), "phase": "Terminating"}
        self.settings.kubelet_dir.mkdir(parents=True, exist_ok=True)
        write_atomically(self.settings.status_file, json.dumps(status, indent=1, sort_keys=True).encode(),
                         mode=0o644)
