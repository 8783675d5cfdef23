"""`vdpactl cni-server`: the node's CNI server. The `vdpa-cni` shim POSTs each request to `/cni` on a unix
socket; the server runs it on its one worker thread (the Host is synchronous, and one request at a time makes
parallel ADD/DEL for different containers safe by construction) and answers `{"exitCode", "stdout"}`.

With a Kubernetes client it also reads what OVN-Kubernetes would: the pod's `k8s.ovn.org/pod-networks`
annotation for an ADD whose config has no `ipam` section.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aiohttp import web

from vdpa_operator.cni.answer import answer
from vdpa_operator.cni.plugin import VdpaCni
from vdpa_operator.cni.spec import CniRequest

logger = logging.getLogger(__name__)

PodAnnotation = Callable[[str, str], Coroutine[Any, Any, str | None]]
"""(namespace, pod) → the pod's k8s.ovn.org/pod-networks annotation, or None."""
MAX_REQUEST = 1 << 20
"""A CNI config with a prevResult is a few KiB; anything near this is not one."""


class CniServer:
    def __init__(self, plugin: VdpaCni, socket: Path, *, pod_annotation: PodAnnotation | None = None) -> None:
        self.plugin = plugin
        self.socket = socket
        self.pod_annotation = pod_annotation
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cni")
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_REQUEST)
        app.router.add_post("/cni", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.socket.parent.mkdir(parents=True, exist_ok=True)
        self.socket.unlink(missing_ok=True)
        await web.SockSite(self._runner, private_unix_socket(self.socket)).start()
        logger.info("CNI server listening on %s (bridge %s)", self.socket, self.plugin.settings.bridge)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.socket.unlink(missing_ok=True)
        self._worker.shutdown(wait=True)

    async def _handle(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            env = {str(k): str(v) for k, v in dict(body["env"]).items()}
            stdin = str(body["config"]).encode()
            device_info = body.get("deviceInfo")
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"error": f"not a vdpa-cni request: {exc}"}, status=400)
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        code, stdout = await loop.run_in_executor(self._worker, lambda: answer(
            lambda r: self._run(r, loop), env, stdin, device_info if isinstance(device_info, str) else None))
        logger.info("%s %s: exit %d in %.1f ms", env.get("CNI_COMMAND", "?"), env.get("CNI_CONTAINERID", "")[:12],
                    code, (time.perf_counter() - started) * 1000)
        return web.json_response({"exitCode": code, "stdout": stdout})

    def _run(self, request: CniRequest, loop: asyncio.AbstractEventLoop) -> dict[str, Any] | None:
        """On the worker thread; the pod's annotation, when needed, is read by the event loop meanwhile."""
        return self.plugin.run(request, pod_networks=self._pod_networks(request, loop))

    def _pod_networks(self, request: CniRequest, loop: asyncio.AbstractEventLoop) -> str | None:
        """For an ADD without IPAM config: the pod's annotation, as OVN-K's CNI reads it (no wait: without it
        the node allocator serves)."""
        namespace, pod = request.pod
        if self.pod_annotation is None or request.command != "ADD" or request.config.ipam.get("type") \
                or not namespace or not pod:
            return None
        try:
            return asyncio.run_coroutine_threadsafe(self.pod_annotation(namespace, pod), loop).result()
        except Exception as exc:
            logger.warning("cannot read pod %s/%s's annotations: %s", namespace, pod, exc)
            return None


def private_unix_socket(path: Path) -> socket.socket:
    """A unix socket bound at `path` with mode 0600 from the first moment (only root, the runtime, may ask for
    interfaces): Linux gives the bound file the socket inode's mode, which fchmod sets before bind."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        os.fchmod(sock.fileno(), 0o600)
        sock.bind(str(path))
    except OSError:
        sock.close()
        raise
    return sock
