"""The HTTP face of the store: kube-apiserver's URL layout, discovery, JSON bodies, watch streams.

Handlers only translate: a URL becomes a `Target` (type, namespace, name, subresource), a request becomes one
store call, a `StatusError` becomes a `Status` body. Behaviour lives in the store.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from vdpa_operator.sim.apiserver import errors
from vdpa_operator.sim.apiserver.errors import StatusError, bad_request
from vdpa_operator.sim.apiserver.resources import Registry, ResourceType
from vdpa_operator.sim.apiserver.selectors import both, field_selector, label_selector
from vdpa_operator.sim.apiserver.store import Store, WatchEvent

log = logging.getLogger(__name__)

STORE = web.AppKey("store", Store)
WATCHES = web.AppKey("watches", set[asyncio.Queue[WatchEvent | None]])

DEFAULT_WATCH_TIMEOUT = 1800
"""kube-apiserver ends a watch after --min-request-timeout (1800 s) when the client sets no timeoutSeconds."""
VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0+vdpa-sim",
    "gitCommit": "",
    "gitTreeState": "clean",
    "buildDate": "1970-01-01T00:00:00Z",
    "goVersion": "python",
    "compiler": "vdpa-operator",
    "platform": "linux/amd64",
}


def _json(body: Any, status: int = 200) -> web.Response:
    # Exactly "application/json", no charset: lightkube only decodes a Status from that content type.
    return web.Response(body=json.dumps(body).encode(), status=status, content_type="application/json")


def _error(err: StatusError) -> web.Response:
    return _json(err.status(), err.code)


def _no_such_path() -> StatusError:
    return StatusError(404, "NotFound", "the server could not find the requested resource")


@dataclass(frozen=True)
class Target:
    """What a resource URL names."""

    rtype: ResourceType
    namespace: str | None
    """None for a cluster-scoped type, or a namespaced collection across all namespaces."""
    name: str | None
    subresource: str | None


def resolve(registry: Registry, group: str, version: str, tail: str) -> Target:
    """`[namespaces/<ns>/]<plural>[/<name>[/<subresource>]]` under a group/version; 404 when nothing is there.

    `namespaces/<x>/<y>` is ambiguous: it is a namespaced collection when <y> is a namespaced type of this
    group/version, else the Namespace <x>'s subresource <y>.
    """
    parts = [p for p in tail.split("/") if p]
    namespace = None
    if len(parts) >= 3 and parts[0] == "namespaces":
        inner = registry.lookup(group, version, parts[2])
        if inner is not None and inner.namespaced:
            namespace, parts = parts[1], parts[2:]
    if not parts or len(parts) > 3:
        raise _no_such_path()
    rtype = registry.lookup(group, version, parts[0])
    if rtype is None:
        raise _no_such_path()
    name = parts[1] if len(parts) > 1 else None
    subresource = parts[2] if len(parts) > 2 else None
    if rtype.namespaced and namespace is None and name is not None:
        raise _no_such_path()
    if subresource is not None and (subresource != "status" or not rtype.status_subresource):
        raise _no_such_path()
    return Target(rtype, namespace, name, subresource)


# --- discovery ------------------------------------------------------------------------------------------------


def _resource_list(registry: Registry, group: str, version: str) -> dict[str, Any]:
    resources: list[dict[str, Any]] = []
    for rtype in registry.in_group_version(group, version):
        entry: dict[str, Any] = {
            "name": rtype.plural,
            "singularName": rtype.singular,
            "namespaced": rtype.namespaced,
            "kind": rtype.kind,
            "verbs": rtype.verbs,
        }
        if rtype.short_names:
            entry["shortNames"] = list(rtype.short_names)
        resources.append(entry)
        if rtype.status_subresource:
            resources.append({
                "name": f"{rtype.plural}/status",
                "singularName": "",
                "namespaced": rtype.namespaced,
                "kind": rtype.kind,
                "verbs": ["get", "patch", "update"],
            })
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": _gv(group, version), "resources": resources}


def _gv(group: str, version: str) -> str:
    return f"{group}/{version}" if group else version


def _api_group(group: str, versions: list[str]) -> dict[str, Any]:
    listed = [{"groupVersion": _gv(group, v), "version": v} for v in versions]
    return {"name": group, "versions": listed, "preferredVersion": listed[0]}


async def _version(request: web.Request) -> web.Response:
    return _json(VERSION)


async def _core_versions(request: web.Request) -> web.Response:
    return _json({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": request.host}],
    })


async def _groups(request: web.Request) -> web.Response:
    groups = request.app[STORE].registry.group_versions()
    listed = [_api_group(g, vs) for g, vs in groups.items() if g]
    return _json({"kind": "APIGroupList", "apiVersion": "v1", "groups": listed})


async def _group(request: web.Request) -> web.Response:
    versions = request.app[STORE].registry.group_versions().get(request.match_info["group"])
    if not versions:
        return _error(_no_such_path())
    return _json({"kind": "APIGroup", "apiVersion": "v1", **_api_group(request.match_info["group"], versions)})


async def _core_resources(request: web.Request) -> web.Response:
    return _json(_resource_list(request.app[STORE].registry, "", "v1"))


async def _group_resources(request: web.Request) -> web.Response:
    group, version = request.match_info["group"], request.match_info["version"]
    registry = request.app[STORE].registry
    if not registry.in_group_version(group, version):
        return _error(_no_such_path())
    return _json(_resource_list(registry, group, version))


# --- resources ------------------------------------------------------------------------------------------------


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return json.loads(raw)
    except ValueError as err:
        raise bad_request(f"the request body is not valid JSON: {err}") from None


def _is_watch(request: web.Request) -> bool:
    return request.query.get("watch", "").lower() in ("true", "1")


async def _resources(request: web.Request) -> web.StreamResponse:
    """Every request under /api/v1/… and /apis/<group>/<version>/…."""
    store = request.app[STORE]
    group = request.match_info.get("group", "")
    version = request.match_info.get("version", "v1")
    try:
        target = resolve(store.registry, group, version, request.match_info["tail"])
        if request.method == "GET" and target.name is None and _is_watch(request):
            return await _watch(request, store, target)
        return await _dispatch(request, store, target)
    except StatusError as err:
        return _error(err)
    except Exception as err:  # a bug here must still answer like an API server, and say what broke
        log.exception("%s %s failed", request.method, request.path)
        return _error(StatusError(500, "InternalError", f"an error on the server ({err!r}) has prevented the request"))


async def _dispatch(request: web.Request, store: Store, t: Target) -> web.Response:
    ns = t.namespace or ""
    method = request.method
    if t.name is None:
        if method == "GET":
            match = both(label_selector(request.query.get("labelSelector")),
                         field_selector(request.query.get("fieldSelector")))
            items, rv = store.list(t.rtype, t.namespace, match)
            if not t.rtype.custom:  # core lists carry the kind once, not per item
                items = [{k: v for k, v in i.items() if k not in ("apiVersion", "kind")} for i in items]
            return _json({
                "apiVersion": t.rtype.api_version,
                "kind": f"{t.rtype.kind}List",
                "metadata": {"resourceVersion": str(rv)},
                "items": items,
            })
        if method == "POST" and (t.namespace is not None or not t.rtype.namespaced):
            return _json(store.create(t.rtype, ns, await _body(request)), 201)
        raise errors.method_not_allowed(f"{method} is not supported on the {t.rtype.group_resource} collection here")
    if method == "GET":
        return _json(store.get(t.rtype, ns, t.name))
    if method == "PUT":
        return _json(store.update(t.rtype, ns, t.name, await _body(request), subresource=t.subresource))
    if method == "PATCH":
        patch = await _body(request)
        return _json(store.patch(t.rtype, ns, t.name, request.content_type, patch, subresource=t.subresource))
    if method == "DELETE" and t.subresource is None:
        return _json(store.delete(t.rtype, ns, t.name))
    raise errors.method_not_allowed(f"{method} is not supported on {t.rtype.group_resource} {t.name!r}")


def _event_line(kind: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"type": kind, "object": obj}).encode() + b"\n"


async def _watch(request: web.Request, store: Store, t: Target) -> web.StreamResponse:
    """Newline-delimited watch events until timeoutSeconds, the client leaving, or server shutdown.

    A too-old resourceVersion is not an HTTP error: like kube-apiserver, the stream opens and carries one
    ERROR event whose object is a 410 Status.
    """
    query = request.query
    match = both(label_selector(query.get("labelSelector")), field_selector(query.get("fieldSelector")))
    try:
        timeout = float(query.get("timeoutSeconds") or DEFAULT_WATCH_TIMEOUT)
    except ValueError:
        raise bad_request(f"invalid timeoutSeconds {query.get('timeoutSeconds')!r}") from None
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[WatchEvent | None] = asyncio.Queue()

    def listener(event: WatchEvent) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, event)

    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    try:
        watch = store.watch(t.rtype, t.namespace, query.get("resourceVersion"), match, listener)
    except StatusError as err:
        if err.code != 410:
            raise
        await response.prepare(request)
        await response.write(_event_line("ERROR", err.status()))
        await response.write_eof()
        return response

    watches = request.app[WATCHES]
    watches.add(queue)
    try:
        await response.prepare(request)
        for replayed in watch.backlog:
            await response.write(_event_line(replayed.type, replayed.object))
        deadline = loop.time() + timeout
        while (remaining := deadline - loop.time()) > 0:
            try:
                event = await asyncio.wait_for(queue.get(), remaining)
            except TimeoutError:
                break
            if event is None:  # end_watches(): shutdown, or a test dropping streams
                break
            await response.write(_event_line(event.type, event.object))
        await response.write_eof()
    except (ConnectionError, RuntimeError) as err:  # the client went away mid-stream
        log.debug("watch of %s ended: %s", t.rtype.group_resource, err)
    finally:
        watch.cancel()
        watches.discard(queue)
    return response


def end_watches(app: web.Application) -> None:
    """End every open watch stream cleanly, as a server-side timeout does; call on the server's loop."""
    queues: set[asyncio.Queue[WatchEvent | None]] = app[WATCHES]
    for queue in list(queues):
        queue.put_nowait(None)


async def _end_watches_on_shutdown(app: web.Application) -> None:
    """Without this, shutdown waits for open watches to reach their timeouts."""
    end_watches(app)


def make_app(store: Store) -> web.Application:
    """The aiohttp application serving `store`."""
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app[STORE] = store
    app[WATCHES] = set()
    routes = app.router
    routes.add_get("/version", _version)
    for path in ("/api", "/api/"):
        routes.add_get(path, _core_versions)
    for path in ("/apis", "/apis/"):
        routes.add_get(path, _groups)
    routes.add_get("/api/v1", _core_resources)
    routes.add_get("/apis/{group}", _group)
    routes.add_get("/apis/{group}/{version}", _group_resources)
    routes.add_route("*", "/api/v1/{tail:.+}", _resources)
    routes.add_route("*", "/apis/{group}/{version}/{tail:.+}", _resources)
    app.on_shutdown.append(_end_watches_on_shutdown)
    return app


@dataclass
class RunningServer:
    """A started server: where it listens and how to stop it (on its own loop)."""

    runner: web.AppRunner
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def end_watches(self) -> None:
        """End open watch streams (clients re-watch from their last version); call on the server's loop."""
        end_watches(self.runner.app)

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start(store: Store, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
    """Serve `store` on host:port (0: a free port) in the running loop."""
    runner = web.AppRunner(make_app(store), access_log=None, handler_cancellation=True, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]
    return RunningServer(runner, host, bound)
