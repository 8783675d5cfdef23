"""Run the API server on its own event loop in a background thread, with a kubeconfig pointing at it.

Tests and the simulated cluster use this to give real clients a real HTTP endpoint while their own code runs
on another loop (or none).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from vdpa_operator.sim.apiserver.resources import CORE_TYPES, NETWORK_ATTACHMENT_DEFINITION_CRD, project_crds
from vdpa_operator.sim.apiserver.server import RunningServer, start
from vdpa_operator.sim.apiserver.store import Store

CONTEXT = "vdpa-sim"


def default_store(crds: Iterable[dict[str, Any]] | None = None, **kwargs: Any) -> Store:
    """A store serving the built-in kinds and, installed as CRD objects, the project's CRDs and multus's
    NetworkAttachmentDefinition (or the given CRDs). `kwargs` go to `Store` (persist_dir, bookmark_interval…)."""
    installed = [*project_crds(), NETWORK_ATTACHMENT_DEFINITION_CRD] if crds is None else list(crds)
    return Store(CORE_TYPES, crds=installed, **kwargs)


def kubeconfig(url: str, namespace: str = "default") -> dict[str, Any]:
    """A kubeconfig for `url`. It has a (dummy) token user: lightkube refuses a context without a user."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {"server": url}}],
        "users": [{"name": CONTEXT, "user": {"token": "vdpa-sim"}}],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": namespace}}],
        "current-context": CONTEXT,
    }


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
) -> ServerHandle:
    """Start a server (a `default_store()` unless one is given) on host:port (0: any free port) and write a
    kubeconfig for it to `kubeconfig_path` (default: a temporary file removed by `stop()`). `data_dir`: keep the
    default store's state there, so a server started later on the same directory carries on from it."""
    if store is not None and data_dir is not None:
        raise ValueError("data_dir is for the default store: give the store persist_dir=... instead")
    store = store if store is not None else default_store(persist_dir=data_dir)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box: dict[str, Any] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            box["server"] = loop.run_until_complete(start(store, host, port))
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
    path = Path(kubeconfig_path)
    path.write_text(json.dumps(kubeconfig(server.url, namespace), indent=2) + "\n", encoding="utf-8")
    return ServerHandle(store, server.port, server.url, path, server, loop, thread, tmpdir)
