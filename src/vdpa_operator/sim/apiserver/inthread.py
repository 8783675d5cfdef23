"""Run the API server on its own event loop in a background thread, with a kubeconfig pointing at it.

Tests and the simulated cluster use this to give real clients a real HTTP endpoint while their own code runs
on another loop (or none). The kubeconfig carries the admin token; `ServerHandle.token_for` and
`kubeconfig_for` give a ServiceAccount's token and kubeconfig instead, to run a component with its own rights.
"""

from __future__ import annotations

import asyncio
import functools
import shutil
import ssl
import tempfile
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from vdpa_operator.sim.apiserver.authn import DEFAULT_EXPIRATION
from vdpa_operator.sim.apiserver.credentials import Credentials
from vdpa_operator.sim.apiserver.kubeconfigs import write_kubeconfig
from vdpa_operator.sim.apiserver.rbac import Authorizer
from vdpa_operator.sim.apiserver.resources import CORE_TYPES, NETWORK_ATTACHMENT_DEFINITION_CRD, project_crds
from vdpa_operator.sim.apiserver.server import RunningServer, start
from vdpa_operator.sim.apiserver.store import Store


def default_store(crds: Iterable[dict[str, Any]] | None = None, **kwargs: Any) -> Store:
    """A store serving the built-in kinds and, installed as CRD objects, the project's CRDs and multus's
    NetworkAttachmentDefinition (or the given CRDs). `kwargs` go to `Store` (persist_dir, bookmark_interval…)."""
    installed = [*project_crds(), NETWORK_ATTACHMENT_DEFINITION_CRD] if crds is None else list(crds)
    return Store(CORE_TYPES, crds=installed, **kwargs)


@dataclass
class ServerHandle:
    """A server running in a background thread. `store` is thread-safe, so tests may seed or compact it."""

    store: Store
    port: int
    url: str
    kubeconfig_path: Path
    _server: RunningServer
    _loop: asyncio.AbstractEventLoop
    _thread: threading.Thread
    _tmpdir: Path | None = field(default=None)

    @property
    def admin_token(self) -> str:
        """The bearer token of `vdpa-admin` (system:masters), the one the kubeconfig carries."""
        return self._server.credentials.admin_token

    @functools.cached_property
    def verify(self) -> ssl.SSLContext:
        """A client TLS context that trusts the server's CA (what the kubeconfig's certificate-authority-data
        says), for raw HTTP clients: `httpx.Client(base_url=api.url, headers=api.headers, verify=api.verify)`."""
        return self._server.credentials.client_context()

    @property
    def headers(self) -> dict[str, str]:
        """HTTP headers that authenticate as the admin, for raw HTTP clients."""
        return {"Authorization": f"Bearer {self.admin_token}"}

    @property
    def kubelet_token(self) -> str:
        """The token kubelets must require of the API server (sim/kubelet/streaming.py): hand it to each."""
        return self._server.kubelet_token

    @property
    def authorizer(self) -> Authorizer:
        """RBAC: `denials` lists the requests it refused (and the 401s), `allowed` who was allowed what."""
        return self._server.authorizer

    def token_for(self, namespace: str, service_account: str, *, expiration_seconds: int = DEFAULT_EXPIRATION,
                  pod: tuple[str, str] | None = None) -> str:
        """A token of ServiceAccount `namespace/service_account` (which must exist), as the kubelet mounts into
        a pod: `pod` = (name, uid) binds it to that pod, so it stops working when the pod goes."""
        bound = None if pod is None else {"kind": "Pod", "apiVersion": "v1", "name": pod[0], "uid": pod[1]}
        issued = self._server.authenticator.issue(namespace, service_account, expiration_seconds=expiration_seconds,
                                                  bound=bound)
        return issued.token

    def kubeconfig_for(self, path: str | Path, namespace: str, service_account: str) -> Path:
        """Write a kubeconfig (0600) that authenticates as the ServiceAccount, with its namespace as default."""
        config = self._server.kubeconfig(self.token_for(namespace, service_account), namespace, user=service_account)
        return write_kubeconfig(Path(path), config)

    def compact(self, keep_last: int = 0) -> None:
        """Forget old watch events: a watch resuming from before them gets 410 Gone."""
        self.store.compact(keep_last)

    def end_watches(self) -> None:
        """End every open watch stream now, as a server-side timeout would: clients re-watch from the last
        version they saw (and get 410 if `compact()` dropped it)."""
        done = threading.Event()

        def run() -> None:
            self._server.end_watches()
            done.set()

        self._loop.call_soon_threadsafe(run)
        done.wait(5)

    def stop(self, timeout: float = 5.0) -> None:
        """End open watches, close the listener, stop the loop and join the thread. Idempotent."""
        if self._thread.is_alive():
            future = asyncio.run_coroutine_threadsafe(self._server.stop(), self._loop)
            try:
                future.result(timeout)
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(timeout)
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()


def serve_in_thread(
    kubeconfig_path: str | Path | None = None,
    *,
    store: Store | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    namespace: str = "default",
    data_dir: str | Path | None = None,
    webhook_services: Mapping[tuple[str, str], str] | None = None,
) -> ServerHandle:
    """Start a server (a `default_store()` unless one is given) on https://host:port (0: any free port) and write
    a kubeconfig for it, with the admin token and the server's CA, to `kubeconfig_path` (default: a temporary file
    removed by `stop()`). `data_dir`: keep the default store's state and the server's credentials there, so a
    server started later on the same directory carries on from it and the tokens handed out stay good.
    `webhook_services`: where admission webhooks given as a Service listen, (namespace, name) → "host:port"."""
    if store is not None and data_dir is not None:
        raise ValueError("data_dir is for the default store: give the store persist_dir=... instead")
    store = store if store is not None else default_store(persist_dir=data_dir)
    credentials = Credentials.load_or_create(None if data_dir is None else Path(data_dir))
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box: dict[str, Any] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            box["server"] = loop.run_until_complete(start(store, host, port, credentials=credentials,
                                                            webhook_services=webhook_services))
        except BaseException as err:  # reported to the caller below
            box["error"] = err
            ready.set()
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    thread = threading.Thread(target=run, name=f"apiserver-{host}:{port}", daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("the simulated API server did not start within 10 s")
    if "error" in box:
        thread.join()
        raise box["error"]
    server: RunningServer = box["server"]

    tmpdir = None
    if kubeconfig_path is None:
        tmpdir = Path(tempfile.mkdtemp(prefix="vdpa-apiserver-"))
        kubeconfig_path = tmpdir / "kubeconfig"
    path = write_kubeconfig(Path(kubeconfig_path), server.kubeconfig(namespace=namespace))
    return ServerHandle(store, server.port, server.url, path, server, loop, thread, tmpdir)
