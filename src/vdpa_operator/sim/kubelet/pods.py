"""One pod on this node, from start to removal: devices allocated through the device plugins, a network
namespace (the node's for hostNetwork), the default network's CNI chain as Multus runs it, volumes, init
containers to completion, then the containers as host processes restarted per restartPolicy; its status
(phase, conditions, podIP, containerStatuses) written whenever it changes. `stop` undoes it all in reverse:
processes, CNI DEL, devices, the namespace, the pod's directory."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightkube import AsyncClient
from lightkube.types import PatchType

from vdpa_operator.api.multus import DEFAULT_NETWORK_ANNOTATION, NETWORK_STATUS_ANNOTATION, RESOURCE_NAME_ANNOTATION
from vdpa_operator.kubeclient import (
    ClusterError,
    NadResource,
    PodResource,
    api_errors,
    get_or_none,
    new_event,
    record_event,
    rfc3339,
)
from vdpa_operator.sim.kubelet import cnibin, containers, leftovers, multus
from vdpa_operator.sim.kubelet.assignments import Assignments
from vdpa_operator.sim.kubelet.devicemanager import DeviceManager
from vdpa_operator.sim.kubelet.errors import KubeletError
from vdpa_operator.sim.kubelet.mounts import Mount, entering, node_view
from vdpa_operator.sim.kubelet.podprocesses import ContainerProcess, PodProcesses
from vdpa_operator.sim.kubelet.quantity import container_requests
from vdpa_operator.sim.kubelet.serviceproxy import ServiceProxy
from vdpa_operator.sim.kubelet.settings import KubeletSettings
from vdpa_operator.sim.kubelet.volumes import PodVolumes, VolumeMaker

logger = logging.getLogger(__name__)

IFNAME = "eth0"


def _now() -> str:
    return rfc3339(datetime.datetime.now(datetime.UTC))


@dataclass
class Runtime:
    """What every pod worker of this kubelet shares."""

    settings: KubeletSettings
    client: AsyncClient
    devices: DeviceManager
    assignments: Assignments
    processes: PodProcesses
    volumes: VolumeMaker
    base_env: dict[str, str]
    """KUBERNETES_SERVICE_HOST/PORT (and _PORT_443_TCP…) from the API server's address."""
    proxy: ServiceProxy
    """That address served inside each pod's network namespace."""


@dataclass
class Running:
    """One container's state as kubelet reports it."""

    spec: Mapping[str, Any]
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    started_at: str = ""
    last: dict[str, Any] | None = None
    """The last termination (`state.terminated` shape)."""
    waiting: str = "ContainerCreating"
    message: str = ""


@dataclass
class Sandbox:
    netns_name: str = ""
    netns_path: str = ""
    container_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    attachment: multus.Attachment | None = None
    cni_result: dict[str, Any] = field(default_factory=dict)
    ips: list[str] = field(default_factory=list)


class PodWorker:
    def __init__(self, runtime: Runtime, pod: Mapping[str, Any]) -> None:
        self.rt = runtime
        self.pod = dict(pod)
        meta = pod["metadata"]
        self.namespace, self.name, self.uid = meta["namespace"], meta["name"], meta["uid"]
        self.dir = runtime.settings.pods_dir / self.uid
        self.sandbox = Sandbox()
        self.env_by_container: dict[str, dict[str, str]] = {}
        self.pod_volumes: PodVolumes | None = None
        self.device_mounts: dict[str, list[Mount]] = {}
        """Container → the device plugins' device nodes and mounts (source and target differ)."""
        self.made_targets: set[Path] = set()
        """Mount points made on this machine for device nodes (empty files), removed with the pod."""
        self.running: dict[str, Running] = {}
        self.phase = "Pending"
        self.initialized = False
        self.message = ""
        self._task: asyncio.Task[None] | None = None
        self._last_status: dict[str, Any] = {}
        self._transitions: dict[str, tuple[str, str]] = {}

    @property
    def netns(self) -> str:
        """The pod's network namespace (a path), "" until made."""
        return self.sandbox.netns_path

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"pod {self.key}")
        self._task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error("pod %s: worker failed", self.key, exc_info=task.exception())

    # --- start -------------------------------------------------------------------------------------------------

    async def _run(self) -> None:
        delay = self.rt.settings.timing.restart_backoff
        while True:
            try:
                await self._setup()
                break
            except (KubeletError, ClusterError) as exc:
                if self.message != str(exc):
                    await self._event("FailedCreatePodSandBox", str(exc), warning=True)
                self.message = str(exc)
                logger.warning("pod %s: %s; retrying in %.0f s", self.key, exc, delay)
                await self._report()
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.rt.settings.timing.restart_backoff_max)
        if not await self._init_containers():
            return
        self.initialized = True
        self.phase = "Running"
        self.message = ""
        for spec in containers.init_and_main(self.pod)[1]:
            self.running[spec["name"]] = Running(spec)
        await asyncio.gather(*(self._keep(r) for r in self.running.values()))

    async def _setup(self) -> None:
        """Devices, network namespace, CNI ADD, volumes: each kept once done (a retry goes on from there)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if not self.env_by_container:
            self.env_by_container = await self._allocate()
        if not self.sandbox.netns_path:
            self._create_netns()
            if self.sandbox.netns_name:
                await self.rt.proxy.open(self.sandbox.netns_path)
        if self.sandbox.attachment is None and not self._host_network():
            await self._attach()
        if self.pod_volumes is None:
            self.pod_volumes = await self.rt.volumes.make(self.pod, self.dir)

    async def refresh_volumes(self) -> None:
        """configMap and secret volumes follow their objects once the pod has them (kubelet's periodic sync)."""
        if self.pod_volumes is None:
            return
        try:
            for name in await self.rt.volumes.refresh(self.pod, self.dir):
                logger.info("pod %s: volume %s updated", self.key, name)
        except OSError as exc:  # the pod going away under it
            logger.warning("pod %s: volumes not refreshed: %s", self.key, exc)

    def _host_network(self) -> bool:
        return bool((self.pod.get("spec") or {}).get("hostNetwork"))

    async def _allocate(self) -> dict[str, dict[str, str]]:
        """Per container: Allocate for each extended resource it requests; the env the plugin answered (its
        device specs and mounts are kept for the container's mounts)."""
        envs: dict[str, dict[str, str]] = {}
        self.device_mounts = {}
        init, main = containers.init_and_main(self.pod)
        for spec in [*init, *main]:
            env: dict[str, str] = {}
            for resource, count in container_requests(spec).items():
                endpoint = self.rt.devices.endpoints.get(resource)
                if endpoint is None or not endpoint.connected:
                    raise KubeletError(f"resource {resource}: no device plugin registered for it")
                healthy = endpoint.healthy()
                preferred = await self.rt.devices.preferred(resource, [i for i in healthy
                                                                       if i not in self.rt.assignments.used(resource)],
                                                            [], count)
                ids = self.rt.assignments.take(f"{self.uid}/{spec['name']}", resource, count, healthy, preferred)
                answer = (await self.rt.devices.allocate(resource, [ids])).container_responses[0]
                env.update(answer.envs)
                self.device_mounts.setdefault(spec["name"], []).extend(
                    [*(m for d in answer.devices for m in self._device_mounts(d.host_path, d.container_path, False)),
                     *(m for a in answer.mounts for m in self._device_mounts(a.host_path, a.container_path,
                                                                              a.read_only))])
                logger.info("pod %s container %s: %s %s allocated", self.key, spec["name"], resource, ",".join(ids))
            envs[spec["name"]] = env
        return envs

    def _device_mounts(self, host_path: str, container_path: str, read_only: bool) -> list[Mount]:
        """A device plugin's DeviceSpec or Mount: `host_path` is a path of the node (under the root when the
        simulated node has it, else the machine's own). A plugin on a simulated host names the host's device
        nodes by their place under the node root (`<root>/dev/vhost-vdpa-0`), which is also what its
        device-info says; the container gets them there and where a real node's plugin puts them
        (`/dev/vhost-vdpa-0`), so the pod sees what it would on a real node."""
        node = self.rt.settings.node_path(host_path)
        source = node if node.exists() else Path(host_path)
        if not source.exists():
            raise KubeletError(f"device plugin's path {host_path} exists neither at {node} nor on this machine")
        mounts = [Mount(source, container_path, read_only)]
        if Path(container_path).is_relative_to(self.rt.settings.root):
            mounts.append(Mount(source, "/" + str(Path(container_path).relative_to(self.rt.settings.root)),
                                read_only))
        return mounts

    def _create_netns(self) -> None:
        if self._host_network():
            self.sandbox.netns_path = f"/var/run/netns/{self.rt.settings.node_netns}"
            return
        name = f"{self.rt.settings.node_netns}-{self.uid[:13]}"  # under the cluster's tag: `sim down` finds it
        subprocess.run(["ip", "netns", "add", name], check=False, capture_output=True)
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True, capture_output=True)
        self.sandbox.netns_name, self.sandbox.netns_path = name, f"/var/run/netns/{name}"
        self._journal()

    def _journal(self) -> None:
        """What `leftovers.clean` needs should this kubelet die before `stop`."""
        leftovers.record(self.dir, (self.namespace, self.name, self.uid), self.sandbox.netns_name,
                         self.sandbox.netns_path, self.sandbox.container_id, self.sandbox.attachment,
                         self.sandbox.cni_result, [r.process.pid for r in self.running.values() if r.process])

    def _devices_of(self, resource: str) -> list[str]:
        prefix = f"{self.uid}/"
        return [i for owner, held in self.rt.assignments.by_pod.items() if owner.startswith(prefix)
                for i in held.get(resource, [])]

    async def _attach(self) -> None:
        settings = self.rt.settings
        annotations = (self.pod.get("metadata") or {}).get("annotations") or {}
        selected = multus.default_network(annotations, settings.multus_namespace)
        if selected is None:
            self.sandbox.attachment = multus.Attachment("", (), "", "", "")
            return
        nad = await get_or_none(self.rt.client, NadResource, selected[1], namespace=selected[0])
        if nad is None:
            raise KubeletError(f"NetworkAttachmentDefinition {selected[0]}/{selected[1]} (annotation "
                               f"{DEFAULT_NETWORK_ANNOTATION}) not found")
        network = f"{selected[0]}/{selected[1]}"
        resource = ((nad.get("metadata") or {}).get("annotations") or {}).get(RESOURCE_NAME_ANNOTATION, "")
        device_id, info = "", ""
        if resource:
            held = self._devices_of(resource)
            if not held:
                raise KubeletError(f"network {network} needs a device of {resource}, and the pod requests none "
                                   f"(add resources.limits {resource}: 1)")
            device_id = held[0]
            info = multus.cni_device_info(settings.root, resource, device_id, network, self.sandbox.container_id,
                                          IFNAME)
        _, plugins = multus.plugins_of(nad)
        attachment = multus.Attachment(network, tuple(multus.with_device(p, device_id, info) for p in plugins),
                                       resource, device_id, info)
        for plugin in plugins:
            served = cnibin.serve(settings.cni_bin_dir, plugin["type"])
            if served is not None:
                logger.info("pod %s: CNI type %s is served by %s", self.key, plugin["type"], served)
        # Set first: a pod stopped while its ADD runs still gets its DEL (DEL is idempotent). A failed ADD is
        # undone at once, as a runtime does before it tries the sandbox again.
        self.sandbox.attachment = attachment
        self._journal()
        try:
            result = await multus.add(self._cni_call(), attachment)
        except KubeletError:
            await multus.delete(self._cni_call(), attachment, {})
            self.sandbox.attachment = None
            raise
        self.sandbox.cni_result = result
        self._journal()
        self.sandbox.ips = multus.pod_ips(result)
        status = multus.network_status(network, result, IFNAME, info, settings.root)
        annotations = {NETWORK_STATUS_ANNOTATION: json.dumps(status)}
        await self._patch({"metadata": {"annotations": annotations}}, status=False)
        logger.info("pod %s: network %s on %s (device %s): %s", self.key, network, IFNAME, device_id or "none",
                    ", ".join(self.sandbox.ips) or "no address")

    def _cni_call(self) -> multus.CniCall:
        settings = self.rt.settings
        return multus.CniCall(settings.cni_bin_dir, self.sandbox.netns_path, self.sandbox.container_id, IFNAME,
                              (self.namespace, self.name, self.uid), tuple(node_view(settings.root)),
                              f"/var/run/netns/{settings.node_netns}", settings.container_env)

    # --- containers --------------------------------------------------------------------------------------------

    def _env(self, spec: Mapping[str, Any]) -> dict[str, str]:
        pod = dict(self.pod)
        pod["status"] = {**(pod.get("status") or {}), **self._ip_status()}
        base = {**self.rt.base_env, **self.env_by_container.get(spec["name"], {})}
        return {**containers.environment(pod, spec, base), **dict(self.rt.settings.container_env)}

    async def _launch(self, running: Running) -> asyncio.subprocess.Process:
        spec = running.spec
        env = self._env(spec)
        argv = containers.command(spec, env, self.rt.settings.venv_bin)
        log_file = self.rt.settings.logs_dir / f"{self.namespace}_{self.name}_{self.uid}" / f"{spec['name']}.log"
        log_file.parent.mkdir(parents=True, exist_ok=True)
        devices = [m for m in self.device_mounts.get(spec["name"], []) if m.source != Path(m.target)]
        self.made_targets |= {Path(m.target) for m in devices if not os.path.lexists(m.target)}
        volumes = self.pod_volumes.mounts(spec) if self.pod_volumes is not None else []
        full = entering(self.sandbox.netns_path, [*volumes, *devices], argv,
                        keep_visible=self.rt.settings.image_paths)
        with log_file.open("ab") as log:
            process = await asyncio.create_subprocess_exec(
                *full, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
                env=containers.process_env(env, self.rt.settings.venv_bin), start_new_session=True,
                cwd=spec.get("workingDir") or "/")
        self.rt.processes.put(ContainerProcess(self.namespace, self.name, spec["name"], self.sandbox.netns_path,
                                               log_file, containers.process_env(env, self.rt.settings.venv_bin),
                                               argv, process.pid, running.restarts,
                                               Path(spec["workingDir"]) if spec.get("workingDir") else None))
        running.process, running.started_at, running.waiting, running.message = process, _now(), "", ""
        self._journal()
        logger.info("pod %s container %s started (pid %d): %s", self.key, spec["name"], process.pid,
                    " ".join(argv))
        await self._event("Started", f"Started container {spec['name']}")
        return process

    async def _init_containers(self) -> bool:
        """Each init container to completion, in order; False when the pod failed (restartPolicy Never)."""
        policy = (self.pod.get("spec") or {}).get("restartPolicy") or "Always"
        for spec in containers.init_and_main(self.pod)[0]:
            running = Running(spec)
            self.running[spec["name"]] = running
            delay = self.rt.settings.timing.restart_backoff
            while True:
                code = await self._run_once(running)
                if code == 0:
                    break
                if policy == "Never":
                    self.phase = "Failed"
                    await self._report()
                    return False
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.rt.settings.timing.restart_backoff_max)
                running.restarts += 1
            del self.running[spec["name"]]
        return True

    async def _run_once(self, running: Running) -> int:
        try:
            process = await self._launch(running)
        except KubeletError as exc:
            running.waiting, running.message = "CreateContainerError", str(exc)
            await self._report()
            return 128
        await self._report()
        code = await process.wait()
        if code < 0:
            code = 128 - code  # killed by a signal: the runtime's exit code, as a shell reports it (SIGKILL 137)
        running.process = None
        entry = self.rt.processes.lookup(self.namespace, self.name, running.spec["name"])
        if entry is not None and entry.pid == process.pid:
            entry.pid = None
        running.last = {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                        "startedAt": running.started_at, "finishedAt": _now(), "containerID": f"sim://{process.pid}"}
        logger.info("pod %s container %s exited %d", self.key, running.spec["name"], code)
        return code

    async def _keep(self, running: Running) -> None:
        """Run the container, and again per restartPolicy, with kubelet's doubling back-off."""
        policy = (self.pod.get("spec") or {}).get("restartPolicy") or "Always"
        delay = self.rt.settings.timing.restart_backoff
        while True:
            code = await self._run_once(running)
            if policy == "Never" or (policy == "OnFailure" and code == 0):
                break
            running.waiting = "CrashLoopBackOff"
            running.message = f"back-off {delay:g}s restarting failed container"
            await self._event("BackOff", f"Back-off restarting container {running.spec['name']} (exit {code})",
                              warning=True)
            await self._report()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.rt.settings.timing.restart_backoff_max)
            running.restarts += 1
        if all(r.process is None and r.last is not None for r in self.running.values()):
            failed = any(r.last and r.last["exitCode"] != 0 for r in self.running.values())
            self.phase = "Failed" if failed else "Succeeded"
        await self._report()

    # --- status ------------------------------------------------------------------------------------------------

    def _ip_status(self) -> dict[str, Any]:
        status: dict[str, Any] = {"hostIP": "127.0.0.1", "hostIPs": [{"ip": "127.0.0.1"}]}
        ips = ["127.0.0.1"] if self._host_network() else self.sandbox.ips
        if ips:
            status |= {"podIP": ips[0], "podIPs": [{"ip": ip} for ip in ips]}
        return status

    def _container_status(self, running: Running) -> dict[str, Any]:
        spec = running.spec
        entry: dict[str, Any] = {"name": spec["name"], "image": spec.get("image", ""), "imageID": "",
                                 "restartCount": running.restarts, "ready": running.process is not None,
                                 "started": running.process is not None}
        if running.process is not None:
            entry["containerID"] = f"sim://{running.process.pid}"
            entry["state"] = {"running": {"startedAt": running.started_at}}
        elif running.waiting:
            entry["state"] = {"waiting": {"reason": running.waiting, **({"message": running.message}
                                                                         if running.message else {})}}
        elif running.last is not None:
            entry["state"] = {"terminated": running.last}
        if running.last is not None and entry["state"].get("terminated") is None:
            entry["lastState"] = {"terminated": running.last}
        return entry

    def status(self) -> dict[str, Any]:
        init, main = containers.init_and_main(self.pod)
        statuses = [self._container_status(self.running.get(c["name"]) or Running(c)) for c in main]
        ready = bool(statuses) and all(s["ready"] for s in statuses)
        conditions = [self._condition(t, ok) for t, ok in (("PodScheduled", True), ("Initialized", self.initialized),
                                                            ("ContainersReady", ready), ("Ready", ready))]
        status: dict[str, Any] = {"phase": self.phase, "conditions": conditions, "containerStatuses": statuses,
                                  "qosClass": "BestEffort", **self._ip_status()}
        if self.message:
            status["message"] = self.message
            status["reason"] = "ContainerCreating"
        if init:
            status["initContainerStatuses"] = [
                {"name": c["name"], "image": c.get("image", ""), "imageID": "", "ready": self.initialized,
                 "restartCount": (self.running[c["name"]].restarts if c["name"] in self.running else 0),
                 "state": ({"terminated": {"exitCode": 0, "reason": "Completed"}} if self.initialized else
                           {"waiting": {"reason": "PodInitializing"}})} for c in init]
        return status

    def _condition(self, kind: str, ok: bool) -> dict[str, str]:
        """A condition whose lastTransitionTime moves only when its status does."""
        status = "True" if ok else "False"
        before = self._transitions.get(kind)
        if before is None or before[0] != status:
            before = self._transitions[kind] = (status, _now())
        return {"type": kind, "status": status, "lastTransitionTime": before[1]}

    async def _report(self) -> None:
        status = self.status()
        if status == self._last_status:
            return
        cleared = {key: None for key in self._last_status if key not in status}  # a merge patch keeps what it omits
        self._last_status = status
        try:
            await self._patch({"status": {**cleared, **status}}, status=True)
        except ClusterError as exc:
            logger.warning("pod %s: %s", self.key, exc)

    async def _event(self, reason: str, message: str, *, warning: bool = False) -> None:
        """An Event on the pod, as kubelet's recorder writes it (best effort)."""
        involved = {"apiVersion": "v1", "kind": "Pod", "name": self.name, "namespace": self.namespace,
                    "uid": self.uid}
        await record_event(self.rt.client, new_event(involved, reason, message, component="kubelet",
                                                     host=self.rt.settings.node_name, warning=warning))

    async def _patch(self, body: dict[str, Any], *, status: bool) -> None:
        resource = PodResource.Status if status else PodResource
        with api_errors("update status of" if status else "annotate", f"Pod {self.key}"):
            await self.rt.client.patch(resource, self.name, body, namespace=self.namespace,
                                       patch_type=PatchType.MERGE)

    # --- stop --------------------------------------------------------------------------------------------------

    async def stop(self) -> None:
        """Processes, CNI DEL, devices, namespace, files, in that order; every step runs even if one fails."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        grace = min(float((self.pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30)),
                    self.rt.settings.timing.stop_grace_max)
        await asyncio.gather(*(_terminate(r.process, grace) for r in self.running.values() if r.process))
        self.rt.processes.drop(self.namespace, self.name)
        attachment = self.sandbox.attachment
        if attachment is not None and attachment.plugins:
            await multus.delete(self._cni_call(), attachment, self.sandbox.cni_result)
            if attachment.device_info_file:
                (self.rt.settings.root / attachment.device_info_file.lstrip("/")).unlink(missing_ok=True)
        for owner in [o for o in self.rt.assignments.by_pod if o.startswith(f"{self.uid}/")]:
            freed = self.rt.assignments.release(owner)
            if freed:
                logger.info("pod %s: freed %s", self.key, "; ".join(f"{r} {','.join(i)}" for r, i in freed.items()))
        if self.sandbox.netns_name:
            await self.rt.proxy.close(self.sandbox.netns_path)
            removed = subprocess.run(["ip", "netns", "del", self.sandbox.netns_name], check=False,
                                     capture_output=True, text=True)
            if removed.returncode != 0:
                logger.warning("pod %s: ip netns del %s: %s", self.key, self.sandbox.netns_name,
                               removed.stderr.strip())
        for target in self.made_targets:
            with contextlib.suppress(OSError):
                if target.is_file() and not target.stat().st_size:
                    target.unlink()
        shutil.rmtree(self.dir, ignore_errors=True)
        logger.info("pod %s stopped and cleaned up", self.key)

    def describe(self) -> dict[str, Any]:
        """For the kubelet's status file."""
        return {"uid": self.uid, "netns": self.sandbox.netns_path, "ips": self.sandbox.ips, "phase": self.phase,
                "network": self.sandbox.attachment.network if self.sandbox.attachment else "",
                "cniTypes": [p["type"] for p in self.sandbox.attachment.plugins] if self.sandbox.attachment else [],
                "devices": {o.split("/", 1)[1]: held for o, held in self.rt.assignments.by_pod.items()
                            if o.startswith(f"{self.uid}/")},
                "containers": {n: {"pid": r.process.pid if r.process else None, "restarts": r.restarts}
                               for n, r in self.running.items()}}


async def _terminate(process: asyncio.subprocess.Process, grace: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        async with asyncio.timeout(grace):
            await process.wait()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
